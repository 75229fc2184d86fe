"""`docker compose up` for real: the images built, the stack started and used through its ports.

A private Docker daemon (tests/deploy/docker_sandbox.py) builds the Dockerfiles and runs
docker-compose.yml as a user would, on stand-ins for the registry images. Needs root and
Debian's docker.io and debootstrap (`make test` installs them); skips with the reason
elsewhere, and fails in CI (CI=true) instead of skipping. docs/deploy.md ("How CI tests it").
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, REPO, plan_body
from tests.deploy.docker_sandbox import DockerSandbox, SandboxError, machine_lock, missing_requirements
from tests.deploy.test_static import build_args, compose_binary, dockerfile
from tests.integration.test_events import Subscriber

# Cold (first debootstrap, empty build cache) takes longer than warm; both stay far below this.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = "coach-plans-test"
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
OUR_SERVICES = ("api", "bot", "api-scaled")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the compose test")
    pytest.skip(reason)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports, below the ephemeral range (32768 and up),
    where outgoing connections of other programs cannot take one between our check and Docker's."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 32000 - count)
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


class Stack:
    """docker-compose.yml in the sandbox, as project `coach-plans-test`."""

    def __init__(self, sandbox: DockerSandbox, env_file: Path, port: int) -> None:
        self.sandbox = sandbox
        self.env_file = env_file
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

    def compose(self, *args: str, timeout: float = 300) -> str:
        options = ["--project-name", PROJECT, "--project-directory", str(REPO)]
        options += ["--file", str(REPO / "docker-compose.yml"), "--env-file", str(self.env_file)]
        return self.sandbox.compose(*options, *args, timeout=timeout).stdout

    def containers(self, service: str) -> list[dict[str, Any]]:
        ids = self.compose("--profile", "scale", "ps", "--quiet", service).split()
        found: list[dict[str, Any]] = json.loads(self.sandbox.docker("inspect", *ids).stdout)
        return found

    def exec_python(self, service: str, code: str) -> str:
        return self.compose("exec", "-T", service, "python", "-c", code).strip()

    def published(self, service: str, index: int) -> str:
        address = self.compose("port", "--index", str(index), service, "5000").strip()
        return "http://127.0.0.1:" + address.rsplit(":", 1)[1]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DockerSandbox]:
    reason = missing_requirements()
    if reason is not None:
        unavailable(reason)
    with contextlib.ExitStack() as cleanup:
        try:
            cleanup.enter_context(machine_lock(timeout=600))
        except SandboxError as exc:
            unavailable(str(exc))
        box = DockerSandbox(compose_binary())
        cleanup.callback(box.stop)
        try:
            box.start()
        except SandboxError as exc:
            unavailable(str(exc))
        cleanup.callback(box.docker, "image", "prune", "--force", check=False)  # before stop
        args = build_args(dockerfile("api"))
        box.build_standins(
            python_image=args["PYTHON_IMAGE"],
            uv_image=f"ghcr.io/astral-sh/uv:{args['UV_VERSION']}",
            uv_version=args["UV_VERSION"],
        )
        yield box


@pytest.fixture(scope="module")
def stack(sandbox: DockerSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_ports(1)
    scaled = free_ports(4)  # a range with room to spare for two replicas
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text(
        f"INTERNAL_API_TOKEN={INTERNAL_TOKEN}\n"
        f"API_PUBLISHED_PORT={port}\n"
        f"API_SCALED_PUBLISHED_PORT={scaled}-{scaled + 3}\n"
    )
    stack = Stack(sandbox, env_file, port)
    stack.compose("--profile", "scale", "down", "--volumes", "--remove-orphans")  # an interrupted run
    try:
        stack.compose("build", timeout=600)
        stack.compose("up", "--wait", "--wait-timeout", "240", timeout=300)
        yield stack
    finally:
        logs = stack.sandbox.compose(
            "--project-name", PROJECT, "--file", str(REPO / "docker-compose.yml"),
            "--env-file", str(env_file), "--profile", "scale", "logs", "--no-color", "--tail", "200",
            check=False,
        )  # fmt: skip
        (tmp_path_factory.getbasetemp() / "compose.log").write_text(logs.stdout + logs.stderr)
        stack.compose("--profile", "scale", "down", "--volumes", "--remove-orphans", timeout=180)


def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s")


def test_the_default_stack_serves_health_mock_plans_charts_and_offline_docs(stack: Stack) -> None:
    health = httpx.get(f"{stack.url}/health").json()
    assert health["status"] == "healthy"
    assert health["bot_connected"] is True  # `up --wait` waited for the bot's healthcheck on it
    plans = httpx.get(f"{stack.url}/api/coach-plans/all").json()
    assert sorted(plans) == ["coach_d", "coach_i", "coach_n", "coach_s"]
    legacy = httpx.get(f"{stack.url}/api/coach-plans/", params={"coach": "coach_d"}).json()
    assert "NVDA" in legacy["plan"]

    # The mock bot's charts are archived by the API from http://bot:<port>/, like attachments.
    def archived() -> list[dict[str, Any]]:
        items = httpx.get(f"{stack.url}/api/v1/plans", params={"coach": "coach_d"}).json()["items"]
        charts: list[dict[str, Any]] = items[0]["charts"]
        return charts if all(c["archive_status"] == "archived" for c in charts) else []

    charts = eventually(archived, "the mock charts were not archived")
    for chart in charts:
        assert chart["url"] == f"http://localhost:{stack.port}/charts/{chart['sha256']}.png"
        image = httpx.get(f"{stack.url}/charts/{chart['sha256']}.png")
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG_SIGNATURE)

    docs = httpx.get(f"{stack.url}/docs")
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert httpx.get(f"{stack.url}{asset}").status_code == 200, asset


def test_containers_run_as_non_root_with_the_declared_hardening(stack: Stack) -> None:
    declared = json.loads(stack.compose("config", "--format", "json"))["services"]
    for service in ("api", "bot"):
        [container] = stack.containers(service)
        host = container["HostConfig"]
        assert container["Config"]["User"] == "10001:10001", service
        assert container["State"]["Health"]["Status"] == "healthy", service
        assert host["ReadonlyRootfs"] is declared[service]["read_only"] is True
        assert host["CapDrop"] == declared[service]["cap_drop"] == ["ALL"]
        assert host["SecurityOpt"] == declared[service]["security_opt"] == ["no-new-privileges:true"]
        assert host["Init"] is declared[service]["init"] is True
        assert "/tmp" in host["Tmpfs"]
        # What the kernel enforces on the service's processes, seen from inside.
        status = stack.exec_python(service, "print(open('/proc/1/status').read())")
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[:2] == ["10001", "10001"], service
        assert int(fields["CapEff"], 16) == int(fields["CapBnd"], 16) == 0, service
        assert fields["NoNewPrivs"].strip() == "1", service
        read_only = stack.exec_python(service, "import os; print(os.statvfs('/').f_flag & os.ST_RDONLY)")
        assert read_only == "1", service


def test_plans_survive_an_api_restart_in_the_named_volume(stack: Stack) -> None:
    before = httpx.get(f"{stack.url}/health").json()["instance_id"]
    plans = httpx.get(f"{stack.url}/api/coach-plans/all").json()
    stack.compose("restart", "api")

    def restarted() -> dict[str, Any] | None:
        health: dict[str, Any] = httpx.get(f"{stack.url}/health").json()
        return health if health["instance_id"] != before and health["status"] == "healthy" else None

    eventually(restarted, "the API did not come back")
    assert httpx.get(f"{stack.url}/api/coach-plans/all").json() == plans


def test_scale_profile_replicas_share_postgres_and_redis(stack: Stack) -> None:
    stack.compose(
        "--profile", "scale", "up", "--wait", "--wait-timeout", "240", "--scale", "api-scaled=2",
        timeout=300,
    )  # fmt: skip
    replicas = [stack.published("api-scaled", index) for index in (1, 2)]
    one, two = replicas
    assert len(set(replicas)) == 2
    ids = {httpx.get(f"{url}/health").json()["instance_id"] for url in replicas}
    assert len(ids) == 2  # two API processes, not one answering twice
    for container in stack.containers("api-scaled"):
        env = {name: value for name, _, value in (item.partition("=") for item in container["Config"]["Env"])}
        assert env["DATABASE_URL"].startswith("postgresql://coach_plans:")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert container["Config"]["User"] == "10001:10001"
        assert container["HostConfig"]["ReadonlyRootfs"] is True

    path = "/api/coach-plans/?coach=coach_i&date=2026-11-25"
    assert httpx.get(two + path).status_code == 404  # now cached as a miss on `two`
    subscriber = Subscriber(two)
    for n, message_id in enumerate(("7001", "7002")):
        put = httpx.put(
            f"{one}/internal/plans/i/2026-11-25",
            json=plan_body(text=f"version {n}", message_id=message_id),
            headers=AUTH,
        )
        assert put.status_code in (200, 201), put.text
        # Seen at once through the other replica: no stale cache entry, no wait.
        assert httpx.get(two + path).json()["plan"] == f"version {n}"
    kinds = [(kind, data["coach"]) for _, kind, data in subscriber.take(2)]
    assert kinds == [("plan.created", "coach_i"), ("plan.updated", "coach_i")]
