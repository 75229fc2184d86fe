"""Start and stop the servers under test as real processes, wait until they answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# Settings of the developer's shell that would change what is measured.
UNSET = frozenset(
    {
        "CONFIG_FILE",
        "LOG_FILE",
        "REDIS_URL",
        "DATABASE_PATH",
        "CACHE_TTL_SECONDS",
        "MAX_CACHE_SIZE",
        "COACHES",
        "PLAN_TIMEZONE",
    }
)
INTERNAL_TOKEN = "bench-internal-token-7c2e-0123456789abcdef"  # noqa: S105 - throwaway, local processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One server process on 127.0.0.1:`port`, its output kept in `log_path`."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def start(self, ready_path: str, timeout: float = 60) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                self.args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + ready_path, timeout=5).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.logs()}")

    def stop(self, timeout: float = 20, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS of /proc/<pid>/status), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for {self.name} (pid {self.pid})")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def api_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The API's settings for a bench: no rate limit, no log lines in the hot path."""
    return {
        "CHART_STORE_DIR": str(Path(tempfile.gettempdir()) / "coach-plans-bench-charts"),
        "DATABASE_URL": database_url,
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "MOCK_MODE": "false",
        **extra,
    }


def migrate_api(database_url: str, log_path: Path) -> None:
    """`python -m coach_plans_api migrate`, as `make run` and compose do before serving."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(api_env(database_url, 5000))  # migrate opens no port
    result = subprocess.run(
        [sys.executable, "-m", "coach_plans_api", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def start_api(database_url: str, workdir: Path, name: str, **extra_env: str) -> Server:
    """`python -m coach_plans_api serve` on a free port; ready when /health answers."""
    port = free_port()
    server = Server(
        name,
        [sys.executable, "-m", "coach_plans_api", "serve"],
        workdir / f"{name}.log",
        env=api_env(database_url, port, **extra_env),
        port=port,
    )
    return server.start("/health", timeout=120)


def start_baseline(module: str, workdir: Path, *extra_args: str) -> Server:
    """A baseline server from `bench/baselines/`, run with `python -m bench.baselines.<module>`."""
    port = free_port()
    server = Server(
        module,
        [sys.executable, "-m", f"bench.baselines.{module}", "--port", str(port), *extra_args],
        workdir / f"{module}.log",
        port=port,
    )
    return server.start("/health" if module == "legacy_flask" else "/")
