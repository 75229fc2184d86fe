"""Concurrent writes committed together: each acknowledged one is durable, each refused one leaves nothing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from coach_plans_api import repository as repo
from coach_plans_api.db import Database
from coach_plans_api.repository import Conn
from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
WRITERS = 16


def all_plans(url: str) -> dict[tuple[str, str], str]:
    stored: dict[tuple[str, str], str] = {}
    cursor = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/plans", params=params).json()
            stored.update({(p["coach"], p["date"]): p["plan"] for p in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                return stored


def test_sigkill_during_concurrent_writes_keeps_every_acknowledged_write(
    start_api: Callable[..., ServiceProcess], shared_database: str
) -> None:
    api = start_api(shared_database, measured=False)
    acknowledged: dict[tuple[str, str], str] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=api.url, headers=AUTH, timeout=10) as client:
            for n in range(200):
                coach, day = "disn"[w % 4], f"{2000 + w}-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}"
                try:
                    response = client.put(
                        f"/internal/plans/{coach}/{day}",
                        json=plan_body(text=f"writer {w} post {n}", message_id=str(w * 1000 + n + 1)),
                    )
                except httpx.TransportError:
                    assert killed.is_set()
                    return
                assert response.status_code == 201, response.text
                with lock:
                    acknowledged[(f"coach_{coach}", day)] = f"writer {w} post {n}"
                    if len(acknowledged) == 400 and not killed.is_set():
                        assert api.process is not None
                        api.process.send_signal(signal.SIGKILL)  # right after an acknowledgement
                        killed.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert killed.is_set()
    assert api.process is not None
    api.process.wait(30)
    api.start()
    stored = all_plans(api.url)
    assert {key: text for key, text in acknowledged.items() if stored.get(key) != text} == {}


def test_refused_writes_in_a_batch_leave_the_others_whole(
    start_api: Callable[..., ServiceProcess], shared_database: str
) -> None:
    api = start_api(shared_database, measured=False)
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=30) as client:
        days = [f"2026-11-{d:02d}" for d in range(1, 9)]
        ids = [
            client.put(f"/internal/plans/d/{day}", json=plan_body(message_id=str(n + 1))).json()["id"]
            for n, day in enumerate(days)
        ]

    def write(n: int) -> int:
        day = days[n % len(days)]
        owner = n // len(days) % 2 == 0  # half the writes are by someone else: refused with 403
        body = plan_body(text=f"edit {n}", user_id="1001" if owner else "2002", message_id=str(100 + n))
        return httpx.put(f"{api.url}/internal/plans/d/{day}", json=body, headers=AUTH, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        statuses = list(pool.map(write, range(64)))
    assert statuses == [200 if n // len(days) % 2 == 0 else 403 for n in range(64)]
    with httpx.Client(base_url=api.url) as client:
        for plan_id in ids:
            revisions = client.get(f"/api/v1/plans/{plan_id}/revisions").json()["revisions"]
            assert len(revisions) == 1 + 4  # the create and the owner's four edits
            assert all(r["editor_id"] == "1001" for r in revisions)


def test_health_stays_healthy_and_writes_succeed_while_checkpoints_run(
    start_api: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """A checkpoint copying the WAL into the file is not a truncated file."""
    api = start_api(f"sqlite:///{tmp_path / 'busy.db'}", measured=False)
    statuses: list[int] = []
    health: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            while not done.is_set():
                health.append(client.get("/health").status_code)

    def write(w: int) -> None:
        with httpx.Client(base_url=api.url, headers=AUTH, timeout=30) as client:
            # 80 plans of 4.8 KB per writer (their text is stored three times: plan, revision,
            # full-text index) pass SQLite's 1,000-page autocheckpoint several times over.
            for n in range(80):
                body = plan_body(
                    text=f"{w}/{n} " + "NVDA above 950. " * 300, message_id=str(w * 1000 + n + 1)
                )
                day = f"{2100 + w}-{1 + n // 28:02d}-{1 + n % 28:02d}"
                statuses.append(client.put(f"/internal/plans/{'disn'[w % 4]}/{day}", json=body).status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    done.set()
    poller.join()
    assert set(statuses) == {201}
    assert set(health) == {200}


def test_a_write_given_up_while_queued_leaves_the_writer_working(database_url: str) -> None:
    """A caller cancelled while its write waits in the queue (the chart archiver at shutdown, any
    cancelled task) is not written, and the writes after it still are."""
    db = Database(make_url(database_url))
    running, release = threading.Event(), threading.Event()

    def blocker(_conn: Conn) -> None:
        running.set()
        release.wait(10)

    def heartbeat(bot_id: str) -> Callable[[Conn], None]:
        at = dt.datetime.now(dt.UTC)
        return lambda conn: repo.record_heartbeat(conn, bot_id=bot_id, connected=True, mock_mode=False, at=at)

    async def scenario() -> None:
        first = asyncio.ensure_future(db.run_write_async(blocker))
        await asyncio.to_thread(running.wait, 10)  # the writer is inside it: the next write queues
        given_up = asyncio.ensure_future(db.run_write_async(heartbeat("given-up")))
        await asyncio.sleep(0)  # queued
        given_up.cancel()
        # Cancelling reaches the queued write one pass of the loop later: wait for the caller to
        # have given up before the writer moves on (else the writer may take the write first).
        with contextlib.suppress(asyncio.CancelledError):
            await given_up
        release.set()
        await first
        await asyncio.wait_for(db.run_write_async(heartbeat("after")), timeout=10)

    try:
        asyncio.run(scenario())
        with db.reading() as conn:
            stored = conn.all("SELECT bot_id FROM bot_heartbeats ORDER BY bot_id")
        assert stored == [("after",)]
    finally:
        release.set()
        db.dispose()
