"""Crashes and races lose nothing: SIGKILL mid-stream, 50 writers on one coach and day."""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stop_during_1000_writes_keeps_every_acknowledged_write(
    start_api: Callable[..., ServiceProcess], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    api = start_api(measured=False)
    acknowledged: dict[tuple[str, str], str] = {}
    killed = threading.Event()

    def write_stream() -> None:
        with httpx.Client(base_url=api.url, headers=AUTH, timeout=5) as client:
            for n in range(1000):
                coach, day = "disn"[n % 4], f"20{10 + n // 336:02d}-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}"
                try:
                    response = client.put(
                        f"/internal/plans/{coach}/{day}",
                        json=plan_body(text=f"write {n}", message_id=str(n + 1)),
                    )
                except httpx.TransportError:
                    assert killed.is_set()
                    return
                assert response.status_code == 201, response.text
                acknowledged[(f"coach_{coach}", day)] = f"write {n}"
                if n == 400:
                    assert api.process is not None
                    api.process.send_signal(stop_signal)
                    killed.set()

    writer = threading.Thread(target=write_stream)
    writer.start()
    writer.join(60)
    assert killed.is_set()
    assert api.process is not None
    # SIGTERM: uvicorn drains in-flight requests, then re-raises the signal to report it.
    assert api.process.wait(30) == -stop_signal
    assert len(acknowledged) >= 401
    database = tmp_path / "api.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    api.start()
    with httpx.Client(base_url=api.url) as client:
        stored: dict[tuple[str, str], str] = {}
        cursor = None
        while True:
            page = client.get(
                "/api/v1/plans", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
            ).json()
            stored.update({(p["coach"], p["date"]): p["plan"] for p in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                break
    missing = {key: text for key, text in acknowledged.items() if stored.get(key) != text}
    assert missing == {}


def test_50_concurrent_writes_from_two_processes(
    start_api: Callable[..., ServiceProcess], shared_database: str
) -> None:
    one = start_api(shared_database, measured=False)
    two = start_api(shared_database, measured=False)

    def write(n: int) -> int:
        api = (one, two)[n % 2]
        response = httpx.put(
            f"{api.url}/internal/plans/d/2026-11-25",
            headers=AUTH,
            timeout=30,
            json=plan_body(text=f"writer {n}", message_id=str(7000 + n)),
        )
        assert "locked" not in response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(write, range(50)))
    assert sorted(statuses) == [200] * 49 + [201]
    items = httpx.get(f"{one.url}/api/v1/plans", params={"coach": "d"}).json()["items"]
    assert len(items) == 1
    revisions = httpx.get(f"{two.url}/api/v1/plans/{items[0]['id']}/revisions").json()["revisions"]
    assert len(revisions) == 50
    assert [r["action"] for r in revisions].count("create") == 1
    assert "database is locked" not in one.logs() + two.logs()
