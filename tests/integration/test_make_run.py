"""`make run`'s script: API and mock bot start together, plans appear, Ctrl-C stops both."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, free_port


def test_run_script_serves_mock_plans_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "API_PORT": str(port),
        "DATABASE_PATH": str(tmp_path / "plans.db"),
        "OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "CHART_STORE_DIR": str(tmp_path / "charts"),
    }
    for name in ("DATABASE_URL", "INTERNAL_API_TOKEN", "MOCK_MODE", "CONFIG_FILE", "API_BASE_URL"):
        env.pop(name, None)
    log = tmp_path / "run.log"
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
    try:
        url = f"http://127.0.0.1:{port}"
        plans: dict[str, object] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(plans) < 4:
            with contextlib.suppress(httpx.TransportError):
                plans = httpx.get(f"{url}/api/coach-plans/all").json()
            time.sleep(0.3)
        assert sorted(plans) == ["coach_d", "coach_i", "coach_n", "coach_s"], log.read_text()
        assert httpx.get(f"{url}/api/coach-plans/", params={"coach": "coach_d"}).status_code == 200
        assert httpx.get(f"{url}/health").json()["bot_connected"] is True
    finally:
        os.killpg(script.pid, signal.SIGINT)
        script.wait(30)
    output = log.read_text()
    assert "Coach Plans is up" in output
    assert "MOCK MODE" in output
    assert "Finished server process" in output
