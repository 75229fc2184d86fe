"""`make run`'s script: API and mock bot start together, plans appear, Ctrl-C stops both.

It says "is up" only when what it promises is true: its own API answers and the mock plans,
with real chart pictures archived by the API, are stored.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, ServiceProcess, free_port

pytestmark = pytest.mark.slow
BANNER = "Coach Plans is up"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "API_PORT": str(port),
        "DATABASE_PATH": str(tmp_path / "plans.db"),
        "OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "CHART_STORE_DIR": str(tmp_path / "charts"),
    }
    for name in (
        "DATABASE_URL",
        "INTERNAL_API_TOKEN",
        "MOCK_MODE",
        "CONFIG_FILE",
        "API_BASE_URL",
        "API_HOST",
        "CHART_ALLOWED_HOSTS",
        "PUBLIC_BASE_URL",
    ):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    """Start scripts/run-dev.sh as a terminal would; Ctrl-C (SIGINT to its group) afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"run-{len(started)}.log"
        with log.open("wb") as out:
            # Its own process group, like a terminal's: Ctrl-C reaches the script and its children.
            script = subprocess.Popen(
                [str(REPO / "scripts" / "run-dev.sh")],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(script)
        return script, log

    yield start
    for script in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGINT)
        script.wait(30)


def wait_for(predicate: Callable[[], Any], what: str, log: Path, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            result = predicate()
            if result:
                return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s:\n{log.read_text(errors='replace')}")


def test_banner_comes_after_the_mock_plans_and_charts_are_real_pictures(
    tmp_path: Path, run_script: Callable[..., tuple[subprocess.Popen[bytes], Path]]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script, log = run_script(run_env(tmp_path, port))
    wait_for(lambda: BANNER in log.read_text(errors="replace"), "no banner", log)
    # The banner is a promise: today's plans are there the moment it is printed.
    plans = httpx.get(f"{url}/api/coach-plans/all").json()
    assert sorted(plans) == ["coach_d", "coach_i", "coach_n", "coach_s"], log.read_text()
    assert httpx.get(f"{url}/api/coach-plans/", params={"coach": "coach_d"}).status_code == 200
    assert httpx.get(f"{url}/health").json()["bot_connected"] is True

    # The mock charts take the path of Discord attachments: the API archives them.
    def archived() -> list[dict[str, Any]]:
        charts: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/plans", params={"coach": "coach_d"}).json()[
            "items"
        ][0]["charts"]
        return charts if all(c["archive_status"] == "archived" for c in charts) else []

    charts = wait_for(archived, "charts not archived", log, timeout=30)
    assert len(charts) == 2
    assert len({c["sha256"] for c in charts}) == 2  # two different pictures
    for chart in charts:
        assert chart["url"] == f"http://localhost:{port}/charts/{chart['sha256']}.png"
        image = httpx.get(f"{url}/charts/{chart['sha256']}.png")
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG_SIGNATURE)
    legacy = httpx.get(f"{url}/api/coach-plans/", params={"coach": "coach_d"}).json()
    assert legacy["charts"] == [c["url"] for c in charts]
    dashboard = httpx.get(f"{url}/").text
    assert f'src="{charts[0]["url"]}"' in dashboard
    assert "in #mock-plans" in dashboard
    assert "##" not in dashboard

    os.killpg(script.pid, signal.SIGINT)
    script.wait(30)
    output = log.read_text()
    assert output.index("MOCK MODE") < output.index(BANNER)
    assert "Finished server process" in output


def test_a_taken_port_is_refused_before_anything_starts(
    tmp_path: Path,
    run_script: Callable[..., tuple[subprocess.Popen[bytes], Path]],
    start_api: Callable[..., ServiceProcess],
) -> None:
    other = start_api(API_HOST="0.0.0.0")
    script, log = run_script(run_env(tmp_path, other.port))
    assert script.wait(60) == 1
    output = log.read_text()
    assert f"make run: port {other.port} on 0.0.0.0 is taken" in output
    assert f"API_PORT={other.port + 1} make run" in output
    assert BANNER not in output
    assert not (tmp_path / "plans.db").exists()  # nothing ran: not even the migration
    assert httpx.get(f"{other.url}/api/coach-plans/all").json() == {}


def test_another_api_answering_the_url_is_never_taken_for_its_own(
    tmp_path: Path,
    run_script: Callable[..., tuple[subprocess.Popen[bytes], Path]],
    start_api: Callable[..., ServiceProcess],
) -> None:
    # The port is free where this API listens (127.0.0.2) but API_BASE_URL reaches another
    # instance: /health answers, from the wrong process. Its instance id tells them apart.
    other = start_api()
    env = run_env(tmp_path, other.port, API_HOST="127.0.0.2", API_BASE_URL=other.url)
    script, log = run_script(env)
    assert script.wait(60) == 1
    output = log.read_text()
    assert f"make run: {other.url} is answered by another process" in output
    assert re.search(r"instance [0-9a-f]{16}", output)
    assert BANNER not in output
    assert httpx.get(f"{other.url}/api/coach-plans/all").json() == {}  # the bot never posted there
