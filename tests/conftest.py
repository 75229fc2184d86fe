"""Shared fixtures: a migrated temporary database, the real API app, real API processes."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from coach_plans_api import migrate
from coach_plans_api.app import create_app
from coach_plans_api.config import Settings

INTERNAL_TOKEN = "test-internal-token-5f1c-0123456789abcdef"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[1]
# Databases and Redis keys of this run carry this id, so two runs on one server never meet.
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def api_today() -> dt.date:
    """The API's today: the date now in its default PLAN_TIMEZONE, America/New_York."""
    return dt.datetime.now(ZoneInfo("America/New_York")).date()


def run_in_process(
    main: Callable[[list[str]], int], argv: list[str], env: dict[str, str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """A command line's `main` run here as its console script runs in a new process: the
    environment is exactly `env`, stdout and stderr are captured, and what the command set up in
    logging is undone. Milliseconds instead of the 2 s a new interpreter takes to import the
    service; the console scripts themselves are run as processes elsewhere."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with logging_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            # A connection the command left open is a ResourceWarning (an error here) in this test,
            # where a process of its own would have lost it unseen at exit.
            gc.collect()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def require_service(name: str, host: str, port: int) -> None:
    """Skip (outside CI) or fail (in CI) when a server the test needs is not listening."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        reason = f"{name} not reachable at {host}:{port} ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)


def create_postgres_database(hint: str) -> str:
    """A new empty PostgreSQL database named for this run; returns its URL."""
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"cp_{hint}_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = make_url(url).database
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own for one test; dropped afterwards."""
    url = create_postgres_database("t")
    yield url
    drop_postgres_database(url)


@dataclass(frozen=True)
class RedisNamespace:
    url: str
    prefix: str


@pytest.fixture
def redis_namespace() -> Iterator[RedisNamespace]:
    """The test Redis with a key prefix of this test's own; its keys are removed afterwards."""
    import redis

    require_service("Redis", "127.0.0.1", 6379)
    namespace = RedisNamespace(REDIS_URL, f"cp-test-{RUN_ID}-{uuid.uuid4().hex[:6]}")
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{namespace.prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "plans.db"
    migrate.upgrade(make_url(f"sqlite:///{path}"))
    return path


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "plans.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def internal_token() -> str:
    return INTERNAL_TOKEN


@pytest.fixture
def internal_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "internal_api_token": INTERNAL_TOKEN,
        "mock_mode": False,
        "rate_limit_per_minute": 0,
        "log_file": None,
        "redis_url": None,
        "chart_archiver": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def api_settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def api_app(api_settings: Settings) -> Iterator[FastAPI]:
    """The real app with its lifespan running (its resources open) for the whole test."""
    app = create_app(api_settings)
    with TestClient(app):
        yield app


@pytest.fixture
def api_client(api_app: FastAPI) -> TestClient:
    return TestClient(api_app)


def as_httpx_client(client: TestClient) -> httpx.Client:
    """The test client where our client takes an ``httpx.Client``, to run it against the app.

    Starlette's TestClient subclasses httpx2's Client, which has httpx's request API (all our
    client calls); the types differ only by the package they come from.
    """
    return cast(httpx.Client, client)


PutPlan = Callable[..., dict[str, Any]]


def plan_body(
    text: str = "NVDA above 950, add on a reclaim of 960",
    charts: list[str] | None = None,
    user_id: str = "1001",
    name: str = "Dan",
    message_id: str = "5001",
    is_admin: bool = False,
) -> dict[str, Any]:
    return {
        "plan_text": text,
        "charts": [{"url": u} for u in (charts or [])],
        "actor": {"user_id": user_id, "display_name": name, "is_admin": is_admin},
        "message_id": message_id,
        "channel": "trading-plans",
        "channel_id": "777",
    }


@pytest.fixture
def put_plan(api_client: TestClient, internal_headers: dict[str, str]) -> PutPlan:
    """Store a plan through the internal PUT; returns the plan as the API answered it."""
    counter = iter(range(900_000, 999_999))

    def put(coach: str = "coach_d", date: str = "2026-11-25", **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("message_id", str(next(counter)))
        response = api_client.put(
            f"/internal/plans/{coach}/{date}", json=plan_body(**kwargs), headers=internal_headers
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    return put


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A service run as a real local process, the way `make run` and compose start it."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str | None = "/health", timeout: float = 30) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        if wait_path is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + wait_path, timeout=1).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.args} did not answer in {timeout} s:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_api(tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `coach-plans-api serve` on a free port (migrated first); stopped after the test.

    The database is migrated in this process (a new SQLite file starts as a copy of the migrated
    template); the CLI tests run the `migrate` command itself. `measured=False` leaves the
    service out of coverage: a load test gains nothing from tracing, which makes it several times
    slower."""
    started: list[ServiceProcess] = []

    def start(database_url: str | None = None, *, measured: bool = True, **env: str) -> ServiceProcess:
        url = database_url or f"sqlite:///{tmp_path / 'api.db'}"
        port = free_port()
        full_env = {
            **os.environ,
            "DATABASE_URL": url,
            "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "MOCK_MODE": "false",
            **env,
        }
        full_env.pop("CONFIG_FILE", None) if "CONFIG_FILE" not in env else None
        if not measured:
            full_env.pop("COVERAGE_PROCESS_CONFIG", None)
        database = make_url(full_env["DATABASE_URL"])
        if database.get_backend_name() == "sqlite" and not Path(database.database or "").exists():
            shutil.copy(sqlite_template, database.database or "")
        migrate.upgrade(database)
        proc = ServiceProcess(
            [sys.executable, "-m", "coach_plans_api", "serve"],
            full_env,
            tmp_path / f"api-{port}.log",
            port=port,
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Logging as it was before: the root logger's handlers and level (new handlers closed), and
    the loggers the services tune (httpx, uvicorn.access)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    tuned = [logging.getLogger(name) for name in ("httpx", "uvicorn.access")]
    states = [(logger.level, logger.disabled) for logger in tuned]
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for logger, (tuned_level, disabled) in zip(tuned, states, strict=True):
            logger.setLevel(tuned_level)
            logger.disabled = disabled


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Logging as it was before the test configured it."""
    with logging_kept():
        yield
