"""Never lose a plan, under load and under SIGKILL: no loss, no duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import discord.ext.test as dpytest
import httpx
import pytest

from coach_plans_bot.config import BotSettings
from coach_plans_bot.outbox import Status
from tests.bot.conftest import MakeBot, SwitchableTransport, eventually
from tests.bot.test_process import bot_process, wait_until
from tests.conftest import ServiceProcess, free_port

COACHES = "disn"


async def all_plans(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    """Every live plan, following the API's cursor pagination."""
    plans: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "200", **params, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/api/v1/plans", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        plans.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return plans


async def revision_counts(api: httpx.AsyncClient, plans: list[dict[str, Any]]) -> list[int]:
    return [
        len((await api.get(f"/api/v1/plans/{plan['id']}/revisions")).json()["revisions"]) for plan in plans
    ]


async def test_200_plans_posted_during_an_api_outage_are_all_stored_once(
    make_bot: MakeBot,
    bot_settings: BotSettings,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
) -> None:
    # The real delivery loop with real sleeps; retries at most 50 ms apart instead of 5 min.
    settings = bot_settings.model_copy(update={"outbox_retry_max_seconds": 0.05})
    bot = await make_bot(settings, sleep=asyncio.sleep)
    first_day = dt.date(2026, 9, 1)
    posts = [(coach, first_day + dt.timedelta(days=n)) for n in range(50) for coach in COACHES]
    assert len(posts) == 200

    api_transport.down = True
    for n, (coach, day) in enumerate(posts):
        await dpytest.message(f"!plan {coach} {day.isoformat()}: outage plan {n}", member=n % 3)
    queued = [dpytest.get_message().content for _ in range(200)]
    assert all(reply.startswith("⏳ The plan service is unreachable") for reply in queued)
    assert await bot.core.outbox.pending_count() == 200

    sent_before_recovery = len(api_transport.writes())
    recovered_at = time.perf_counter()
    api_transport.down = False

    async def outbox_empty() -> bool:
        return await bot.core.outbox.pending_count() == 0

    await eventually(outbox_empty, seconds=15)
    recovery_seconds = time.perf_counter() - recovered_at

    plans = await all_plans(api_reader)
    assert len(plans) == 200
    assert sorted((plan["coach"][-1], plan["date"]) for plan in plans) == sorted(
        (coach, day.isoformat()) for coach, day in posts
    )
    assert sorted(plan["plan"] for plan in plans) == sorted(f"outage plan {n}" for n in range(200))
    assert await revision_counts(api_reader, plans) == [1] * 200
    # Exactly one write per plan reached the API after the recovery: nothing was sent twice.
    assert len(api_transport.writes()) - sent_before_recovery == 200
    entries = [bot.core.outbox.store.get(n) for n in range(1, 201)]
    assert {entry.status for entry in entries} == {Status.DELIVERED}
    # A figure for whoever runs this with -s: how long the recovery took (asserted on elsewhere).
    print(f"200 queued plans delivered {recovery_seconds:.2f} s after the API came back")  # noqa: T201


def outbox_counts(path: Path) -> dict[str, int]:
    """Entries per status in a bot's outbox file, read from outside the bot process."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    except sqlite3.OperationalError:  # the bot has not created its tables yet
        return {}
    finally:
        db.close()
    return dict(rows)


@pytest.mark.slow
def test_queued_plans_survive_a_sigkill_and_are_delivered_once_after_restart(
    start_api: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    days = 10
    expected = days * len(COACHES)
    outbox = tmp_path / "outbox.db"
    env = {"MOCK_DAYS": str(days), "OUTBOX_RETRY_MAX_SECONDS": "0.5"}

    # Nothing listens on this port: every simulated plan stays queued in the outbox.
    unreachable = f"http://127.0.0.1:{free_port()}"
    doomed = bot_process(unreachable, tmp_path, **env).start(wait_path=None)
    try:
        wait_until(lambda: outbox_counts(outbox).get("pending") == expected, timeout=15)
    finally:
        assert doomed.process is not None
        doomed.process.kill()  # SIGKILL: no shutdown code runs
        assert doomed.process.wait(5) == -9

    api = start_api()
    bot = bot_process(api.url, tmp_path, **env).start(wait_path=None)
    try:

        def all_delivered() -> bool:
            return outbox_counts(outbox) == {"delivered": expected}

        wait_until(all_delivered, timeout=15)
    finally:
        code = bot.stop()
    assert code == 0, bot.logs()

    async def stored() -> tuple[list[dict[str, Any]], list[int]]:
        async with httpx.AsyncClient(base_url=api.url, timeout=5) as client:
            plans = await all_plans(client)
            return plans, await revision_counts(client, plans)

    plans, revisions = asyncio.run(stored())
    assert len(plans) == expected
    assert len({(plan["coach"], plan["date"]) for plan in plans}) == expected
    assert len({plan["date"] for plan in plans}) == days
    assert revisions == [1] * expected
    assert outbox_counts(outbox) == {"delivered": expected}
