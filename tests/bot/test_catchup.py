"""Catch-up after downtime: plans posted while the bot was away are stored, once each."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import discord
import discord.ext.test as dpytest
import discord.ext.test.backend as dpytest_backend
import httpx
import pytest

from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.catchup import CatchUpReport, ChannelCursors, unprocessed
from coach_plans_bot.config import BotSettings
from coach_plans_bot.outbox import Operation, OutboxEntry, Status
from tests.bot.conftest import NEW_YORK, TODAY, MakeBot, SwitchableTransport


# --- helpers -----------------------------------------------------------------------------------
def post_while_away(content: str, member: int = 0) -> discord.Message:
    """A message lands in the channel's history without reaching the bot (it is not running)."""
    config = dpytest.get_config()
    state = dpytest_backend.get_state()
    state.stop_dispatch()
    try:
        return dpytest_backend.make_message(content, config.members[member], config.channels[0])
    finally:
        state.start_dispatch()


async def stop(bot: CoachPlansBot) -> None:
    """The bot process ends: its outbox file is closed, everything in memory is gone."""
    core, bot._core = bot._core, None
    assert core is not None
    await core.aclose()
    for name in list(bot.extensions):
        await bot.unload_extension(name)


async def start(bot: CoachPlansBot, settings: BotSettings | None = None) -> None:
    """A new process on the same outbox file connects: set up, then Discord's READY."""
    if settings is not None:
        bot.settings = settings
    await bot.setup_hook()
    bot.dispatch("ready")
    await dpytest.run_all_events()


async def restart(bot: CoachPlansBot, settings: BotSettings | None = None) -> None:
    await stop(bot)
    await start(bot, settings)


async def plans_with_revisions(api: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    """Every live plan's text -> its revisions, read through the public API."""
    items = (await api.get("/api/v1/plans", params={"limit": 200})).json()["items"]
    return {
        plan["plan"]: (await api.get(f"/api/v1/plans/{plan['id']}/revisions")).json()["revisions"]
        for plan in items
    }


def channel_id() -> int:
    return dpytest.get_config().channels[0].id


# --- through the bot, on the real API ----------------------------------------------------------
async def test_plans_posted_while_away_are_stored_once_each(
    make_bot: MakeBot,
    api_reader: httpx.AsyncClient,
    api_transport: SwitchableTransport,
    replies: Callable[[], list[str]],
) -> None:
    bot = await make_bot()
    post_while_away("!plan s: posted before the cursor, never seen by the bot")
    live = await dpytest.message("!plan d: posted while the bot was running")
    assert replies()[0].startswith("✅ Plan #")
    assert await bot.core.channel_cursors() == {channel_id(): live.id}

    await stop(bot)
    away = post_while_away("!plan i: posted while the bot was down", member=1)
    post_while_away("good morning, no plan here")
    post_while_away("!plan n 2026-11-24: another one while down", member=2)
    post_while_away("!plan x: an unknown coach")
    last = post_while_away("!plans")  # a command, but not a plan: not run during catch-up
    await start(bot)

    assert replies() == [
        "📥 Back online: saved 2 plans posted while the bot was away; "
        "1 `!plan` message(s) could not be saved (post them again to see why)."
    ]
    stored = await plans_with_revisions(api_reader)
    assert sorted(stored) == [
        "another one while down",
        "posted while the bot was down",
        "posted while the bot was running",
    ]
    assert all(len(revisions) == 1 for revisions in stored.values())
    items = {p["plan"]: p for p in (await api_reader.get("/api/v1/plans")).json()["items"]}
    assert items["another one while down"]["date"] == "2026-11-24"
    # Without a date, the plan of the day it was posted (New York), not of the day it was caught up
    # (the bot's clock says 2026-11-25; the message was posted today, by the real clock).
    posted_on = away.created_at.astimezone(NEW_YORK).date().isoformat()
    assert posted_on != TODAY
    assert items["posted while the bot was down"]["date"] == posted_on
    assert items["posted while the bot was down"]["author"] == "Ivy_1_nick"  # the member, as for a live post
    assert (await bot.core.channel_cursors())[channel_id()] >= last.id
    writes = len(api_transport.writes())

    # A second restart finds nothing new: no write reaches the API, nothing is said.
    await restart(bot)
    assert replies() == []
    assert len(api_transport.writes()) == writes
    assert await plans_with_revisions(api_reader) == stored


async def test_the_first_start_reads_no_history_and_the_next_message_sets_the_cursor(
    make_bot: MakeBot, api_reader: httpx.AsyncClient, replies: Callable[[], list[str]]
) -> None:
    post_while_away("!plan d: posted before the bot ever ran")
    bot = await make_bot()
    post_while_away("!plan i: also before the first start", member=1)
    bot.dispatch("ready")
    await dpytest.run_all_events()

    assert replies() == []
    assert await plans_with_revisions(api_reader) == {}
    assert await bot.core.channel_cursors() == {}

    chat = await dpytest.message("hello")  # any message processed sets the cursor
    assert await bot.core.channel_cursors() == {channel_id(): chat.id}
    await restart(bot)
    assert await plans_with_revisions(api_reader) == {}


async def test_plans_caught_up_while_the_api_is_down_are_queued_then_delivered(
    make_bot: MakeBot,
    api_reader: httpx.AsyncClient,
    api_transport: SwitchableTransport,
    replies: Callable[[], list[str]],
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    post_while_away("!plan d: posted while both were down")
    api_transport.down = True
    await start(bot)
    assert replies() == [
        "📥 Back online: saved 1 plan posted while the bot was away "
        "(1 queued until the plan service is reachable)."
    ]
    assert await bot.core.outbox.pending_count() == 1

    api_transport.down = False
    await bot.core.outbox.flush(force=True)
    assert await bot.core.outbox.pending_count() == 0
    assert list(await plans_with_revisions(api_reader)) == ["posted while both were down"]
    assert replies()[0].startswith("(delivered from the queue) ✅ Plan #")


async def test_channels_no_longer_allowed_are_not_caught_up(
    make_bot: MakeBot,
    bot_settings: BotSettings,
    api_reader: httpx.AsyncClient,
    replies: Callable[[], list[str]],
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    post_while_away("!plan d: posted in a channel the bot no longer serves")
    await start(bot, bot_settings.model_copy(update={"allowed_channel_ids": frozenset({1})}))
    assert replies() == []
    assert await plans_with_revisions(api_reader) == {}


@pytest.mark.parametrize("member_left", [False, True])
async def test_caught_up_posters_are_looked_up_as_members(
    make_bot: MakeBot,
    api_reader: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    member_left: bool,
) -> None:
    """History messages carry no member data: roles come from a member lookup, as live ones have."""
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    post_while_away("!plan i: posted while away", member=1)
    monkeypatch.setattr(discord.Guild, "get_member", lambda guild, user_id: None)  # not cached
    if member_left:

        async def gone(guild: discord.Guild, user_id: int) -> discord.Member:
            response = type("Response", (), {"status": 404, "reason": "Not Found"})()
            raise discord.NotFound(response, "Unknown Member")

        monkeypatch.setattr(discord.Guild, "fetch_member", gone)
    await start(bot)
    [plan] = (await api_reader.get("/api/v1/plans")).json()["items"]
    assert plan["author"] == ("Ivy" if member_left else "Ivy_1_nick")


async def test_catchup_limit_bounds_the_history_read(
    make_bot: MakeBot,
    bot_settings: BotSettings,
    api_reader: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    for coach in "disn":
        post_while_away(f"!plan {coach}: coach {coach} posted while away")
    with caplog.at_level(logging.WARNING, logger="coach_plans_bot"):
        await start(bot, bot_settings.model_copy(update={"catchup_limit": 2}))
    assert 1 <= len(await plans_with_revisions(api_reader)) <= 2
    assert "read CATCHUP_LIMIT=2 messages" in caplog.text

    # The rest is caught up at the next start, in the order it was posted.
    await restart(bot, bot_settings)
    stored = await plans_with_revisions(api_reader)
    assert len(stored) == 4
    assert all(len(revisions) == 1 for revisions in stored.values())


async def test_catchup_limit_zero_turns_catchup_off(
    make_bot: MakeBot, bot_settings: BotSettings, api_reader: httpx.AsyncClient
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    post_while_away("!plan d: posted while away")
    await start(bot, bot_settings.model_copy(update={"catchup_limit": 0}))
    assert await plans_with_revisions(api_reader) == {}


async def test_unreadable_or_vanished_channels_are_skipped(
    make_bot: MakeBot,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    replies: Callable[[], list[str]],
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    bot.core.outbox.store.advance_cursor(424242, 1)  # a channel that was deleted meanwhile

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        response = type("Response", (), {"status": 403, "reason": "Forbidden"})()
        raise discord.Forbidden(response, "Missing Access")

    monkeypatch.setattr(discord.TextChannel, "history", forbidden)
    cog: Any = bot.get_cog("CatchUp")  # loaded as an extension: its own module object
    with caplog.at_level(logging.INFO, logger="coach_plans_bot"):
        assert await cog.catch_up() == []
    assert "channel 424242 is gone or not visible" in caplog.text
    assert "cannot read the history" in caplog.text
    assert replies() == []


async def test_an_error_during_catchup_does_not_block_the_cursor(
    make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch, api_reader: httpx.AsyncClient
) -> None:
    bot = await make_bot()
    await dpytest.message("hi")
    await stop(bot)
    post_while_away("!plan d: first")
    post_while_away("!plan i: second", member=1)
    await bot.setup_hook()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(sys.modules["coach_plans_bot.cogs.catchup"], "capture_plan", broken)
    cog: Any = bot.get_cog("CatchUp")
    with pytest.raises(RuntimeError, match="bug"):
        await cog.catch_up()
    # Nothing waits for the abandoned message: a live message moves the cursor again.
    monkeypatch.undo()
    live = await dpytest.message("!plan s: live")
    assert await bot.core.channel_cursors() == {channel_id(): live.id}
    assert list(await plans_with_revisions(api_reader)) == ["live"]


# --- the pure parts ----------------------------------------------------------------------------
def test_the_cursor_never_passes_a_message_still_being_processed() -> None:
    cursors = ChannelCursors()
    cursors.begin(1, 10)
    cursors.begin(1, 11)
    cursors.begin(2, 50)
    assert cursors.finish(1, 11) is None  # 10 is not in the outbox yet
    assert cursors.finish(2, 50) == 50  # other channels are independent
    assert cursors.finish(1, 10) == 11
    cursors.begin(1, 12)
    cursors.begin(1, 13)
    cursors.abandon(1, 12)
    assert cursors.finish(1, 13) == 13
    cursors.abandon(1, 99)  # unknown: nothing to forget


class FakeMessage:
    def __init__(self, message_id: int) -> None:
        self.id = message_id


def test_unprocessed_keeps_newer_messages_oldest_first() -> None:
    history = [FakeMessage(i) for i in (7, 5, 9, 3, 6)]
    assert [m.id for m in unprocessed(history, after=5)] == [6, 7, 9]


def entry(status: Status) -> OutboxEntry:
    return OutboxEntry(
        id=1,
        key="1",
        operation=Operation.PUT_PLAN,
        payload={},
        channel_id=None,
        status=status,
        attempts=0,
        next_attempt_at=0,
        last_error=None,
        error_status=None,
        result=None,
    )


def test_the_summary_counts_saved_queued_and_refused_plans() -> None:
    report = CatchUpReport(channel_id=1)
    assert report.summary() is None
    report.count(None)
    report.count(entry(Status.REJECTED))
    assert report.summary() is None  # nothing saved: nothing to say
    report.count(entry(Status.DELIVERED))
    report.count(entry(Status.PENDING))
    assert report.summary() == (
        "📥 Back online: saved 2 plans posted while the bot was away "
        "(1 queued until the plan service is reachable); "
        "2 `!plan` message(s) could not be saved (post them again to see why)."
    )
