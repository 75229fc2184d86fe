"""The API as a real process: plans survive a restart; SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
from collections.abc import Callable

import httpx

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

# uvicorn shuts down gracefully, then re-raises the signal so a supervisor sees why it stopped.
CLEAN_EXIT = (0, -signal.SIGTERM)
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def test_plans_survive_a_restart(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    response = httpx.put(
        f"{api.url}/internal/plans/d/2026-11-25",
        json=plan_body(text="persist me", charts=["https://c.example/1.png", "https://c.example/2.png"]),
        headers=AUTH,
    )
    assert response.status_code == 201
    assert api.stop() in CLEAN_EXIT
    assert "plan stored" in api.logs()
    assert INTERNAL_TOKEN not in api.logs()
    api.start()
    body = httpx.get(f"{api.url}/api/coach-plans/", params={"coach": "coach_d", "date": "2026-11-25"}).json()
    assert body["plan"] == "persist me"
    assert body["charts"] == ["https://c.example/1.png", "https://c.example/2.png"]
    assert httpx.get(f"{api.url}/health").json()["plans_count"] == 1


def test_sigterm_exits_zero_and_access_log_has_status_and_duration(
    start_api: Callable[..., ServiceProcess],
) -> None:
    api = start_api(LOG_FORMAT="json")
    httpx.get(f"{api.url}/api/coach-plans/", params={"coach": "d", "date": "2026-11-25"})
    assert api.stop(signal.SIGTERM) in CLEAN_EXIT
    assert "Finished server process" in api.logs()
    lines = [line for line in api.logs().splitlines() if "coach_plans_api.access" in line]
    assert any("GET /api/coach-plans/?coach=d&date=2026-11-25 404" in line and "ms" in line for line in lines)


def test_what_is_built_at_startup_is_kept_out_of_full_collections(
    start_api: Callable[..., ServiceProcess],
) -> None:
    """The served process freezes its startup heap (modules, app, resources: over 100,000
    objects), so a full garbage collection under load no longer walks it."""
    api = start_api()
    metrics = httpx.get(f"{api.url}/metrics").text
    line = next(line for line in metrics.splitlines() if line.startswith("coach_plans_gc_frozen_objects "))
    assert float(line.split()[1]) > 100_000
