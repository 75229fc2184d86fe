"""The bot on Discord's wire protocol: the unmodified discord.py client, the Discord double, a real API.

Every message below travels as Discord's would: MESSAGE_CREATE/UPDATE/DELETE and INTERACTION_CREATE
frames over a zlib-stream gateway, replies as REST calls the double records, plans read back from
a real API process.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from coach_plans_bot import __main__ as entry
from coach_plans_bot.config import BotSettings
from coach_plans_bot.parsing import MAX_CHARTS
from tests.bot.conftest import StartWireBot
from tests.conftest import ServiceProcess, api_today, free_port
from tests.discord_double import DiscordDouble, Member

pytestmark = pytest.mark.slow


def today() -> str:
    return api_today().isoformat()


def plans_on(api: ServiceProcess, day: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api.url}/api/v1/plans", params={"date": day, **params}, timeout=5)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def message_posts(double: DiscordDouble) -> list[str]:
    """The content of every message the bot sent through REST, 429-refused attempts included."""
    return [
        call.body["content"]
        for call in double.calls
        if call.method == "POST" and call.path.endswith("/messages") and call.body
    ]


@pytest.fixture
def api(wire_api: ServiceProcess) -> ServiceProcess:
    return wire_api


async def test_a_plan_with_two_images_and_a_pdf(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    attachments = [
        double.attachment("daily.png", "image/png"),
        double.attachment("hourly.jpg", "image/jpg"),  # what some clients send for a JPEG
        double.attachment("notes.pdf", "application/pdf"),
    ]
    await double.post("!plan d 2026-12-10: NVDA above 950, targets 968/985", attachments=attachments)
    [reply] = await double.wait_for_bot_messages(1)

    [plan] = plans_on(api, "2026-12-10")
    assert plan["plan"] == "NVDA above 950, targets 968/985"
    assert [chart["filename"] for chart in plan["charts"]] == ["daily.png", "hourly.jpg"]
    assert [chart["content_type"] for chart in plan["charts"]] == ["image/png", "image/jpeg"]
    assert reply == (
        f"✅ Plan #{plan['id']} saved — Coach D, 2026-12-10, 2 charts\n"
        "> NVDA above 950, targets 968/985\n"
        "⚠️ Skipped `notes.pdf`: not an image (PNG, JPG, GIF or WEBP only)."
    )
    assert double.unknown_calls == []


async def test_a_chart_the_api_cannot_take_is_skipped_and_the_plan_stored(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    attachments = [
        double.attachment("levels.png", "image/png"),
        double.attachment("flow.svg", "image/svg+xml"),
    ]
    await double.post("!plan i 2026-12-11: AAPL fundamentals", attachments=attachments)
    [reply] = await double.wait_for_bot_messages(1)

    [plan] = plans_on(api, "2026-12-11")
    assert [chart["filename"] for chart in plan["charts"]] == ["levels.png"]
    assert ", 1 chart\n" in reply
    assert reply.endswith("⚠️ Skipped `flow.svg`: not an image (PNG, JPG, GIF or WEBP only).")


async def test_editing_and_deleting_the_plan_message(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    message = await double.post("!plan d 2026-12-01: NVDA above 950")
    await double.wait_for_bot_messages(1)

    await double.edit(int(message["id"]), "!plan d 2026-12-01: NVDA above 955 (typo fixed)")
    [edited] = await double.wait_for_bot_messages(1)
    [plan] = plans_on(api, "2026-12-01")
    assert (plan["plan"], plan["edited"]) == ("NVDA above 955 (typo fixed)", True)
    assert edited.startswith(f"✅ Plan #{plan['id']} updated from your edit — Coach D, 2026-12-01")

    await double.delete(int(message["id"]))
    [deleted] = await double.wait_for_bot_messages(1)
    assert plans_on(api, "2026-12-01") == []
    assert deleted.startswith(f"🗑️ The `!plan` message was deleted. ✅ Plan #{plan['id']} deleted")


async def test_edit_delete_and_clear_commands(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    dan, ivy, sam = double.members
    await double.post("!plan d 2026-12-02: first text", author=dan)
    await double.post("!plan i 2026-12-02: Ivy's plan", author=ivy)
    await double.wait_for_bot_messages(2)
    plan = next(p for p in plans_on(api, "2026-12-02") if p["coach"] == "coach_d")

    async def answer(content: str, author: Member) -> str:
        await double.post(content, author=author)
        [reply] = await double.wait_for_bot_messages(1)
        return reply

    edited = await answer(f"!edit {plan['id']} second text", dan)
    assert edited.startswith(f"✅ Plan #{plan['id']} edited — Coach D, 2026-12-02")
    refusal = f"❌ Plan #{plan['id']} is not your plan: only its author or an admin can change it."
    assert await answer(f"!delete {plan['id']}", ivy) == refusal
    assert await answer("!clear 2026-12-02", ivy) == "❌ Only admins can use `!clear`."
    assert (await answer(f"!delete {plan['id']}", dan)).startswith(f"✅ Plan #{plan['id']} deleted — Coach D")
    assert await answer("!clear 2026-12-02", sam) == "🧹 Cleared 2026-12-02: 1 plan deleted."
    assert plans_on(api, "2026-12-02") == []


async def test_reads_and_help_with_long_answers_split_on_the_wire(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    dan, ivy, _ = double.members
    start = dt.date.fromisoformat(today()) - dt.timedelta(days=14)
    for n in range(15):
        day = (start + dt.timedelta(days=n)).isoformat()
        await double.post(f"!plan n {day}: day {n} " + "NVDA levels 950/968/985 " * 16, author=dan)
    await double.post("!plan s: Ivy's plan for today", author=ivy)
    await double.wait_for_bot_messages(16)

    async def answer(content: str, author: Member, done: Callable[[str], bool]) -> list[str]:
        """Post a command; its answer: the bot's messages up to the one `done` accepts."""
        before = len(double.bot_messages())
        await double.post(content, author=author)
        await double.wait_until(lambda: any(done(m) for m in double.bot_messages()[before:]))
        return double.bot_messages()[before:]

    def last_page(message: str) -> bool:
        return re.search(r"\*\(page (\d+)/\1\)\*$", message) is not None

    history = await answer("!history n 30", ivy, last_page)
    assert len(history) > 2  # 15 long plans do not fit one 2,000-character message
    assert history[0].startswith("**Coach N: plans of the last 30 days**")
    assert history.index(next(m for m in history if "day 14 " in m)) < history.index(
        next(m for m in history if "day 0 " in m)
    )  # newest first
    mine = await answer("!myplans", dan, last_page)
    assert mine[0].startswith("**Your recent plans**")
    [listing] = await answer("!plans", dan, lambda m: m.startswith("**Plans for"))
    assert listing.startswith(f"**Plans for {today()}**")
    assert "Ivy's plan for today" in listing
    [usage] = await answer("!help", ivy, lambda m: m.startswith("**Coach Plans bot**"))
    assert "`!plan d: <text>`" in usage
    assert all(len(content) <= 2000 for content in message_posts(double))
    assert double.unknown_calls == []


async def test_slash_plan_with_chart_attachments(
    api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(api.url)
    double = discord_double
    charts = [double.attachment("daily.png", "image/png"), double.attachment("weekly.webp", "image/webp")]
    token = await double.slash(
        "plan",
        [
            {"name": "entry", "type": 3, "value": "s 2026-12-03: sentiment frothy, fade the open"},
            {"name": "chart1", "type": 11, "value": charts[0]["id"]},
            {"name": "chart2", "type": 11, "value": charts[1]["id"]},
        ],
        attachments=charts,
    )
    await double.wait_until(
        lambda: any(r["token"] == token and r["kind"] == "followup" for r in double.interaction_responses)
    )

    [plan] = plans_on(api, "2026-12-03")
    assert [chart["filename"] for chart in plan["charts"]] == ["daily.png", "weekly.webp"]
    callback, followup = [r for r in double.interaction_responses if r["token"] == token]
    assert callback["type"] == 5  # deferred within Discord's 3 s, answered by a followup
    assert followup["content"].startswith(f"✅ Plan #{plan['id']} saved — Coach S, 2026-12-03, 2 charts")


async def test_slash_commands_are_registered_by_sync_commands(
    discord_double: DiscordDouble, tmp_path: Any, internal_token: str
) -> None:
    settings = BotSettings(
        discord_bot_token=discord_double.token,
        internal_api_token=internal_token,
        outbox_path=tmp_path / "outbox.db",
    )

    assert await entry.sync_commands(settings, guild_id=discord_double.guild_id) == 0
    assert await entry.sync_commands(settings, guild_id=None) == 0

    guild_commands = {c["name"]: c for c in discord_double.commands[discord_double.guild_id]}
    global_commands = {c["name"]: c for c in discord_double.commands[None]}
    assert set(guild_commands) == set(global_commands)
    assert set(global_commands) == {
        "plan",
        "edit",
        "delete",
        "plans",
        "myplans",
        "history",
        "clear",
        "outbox",
        "help",
    }
    options = global_commands["plan"]["options"]
    assert options[0] == {**options[0], "name": "entry", "type": 3, "required": True}
    charts = options[1:]
    assert [option["type"] for option in charts] == [11] * MAX_CHARTS  # attachment options
    assert not any(option.get("required") for option in charts)
    assert not (tmp_path / "outbox.db").exists()  # registering opens no outbox, no API


async def test_sync_commands_says_why_it_could_not_register(
    discord_double: DiscordDouble, tmp_path: Any, internal_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def settings(token: str) -> BotSettings:
        return BotSettings(
            discord_bot_token=token, internal_api_token=internal_token, outbox_path=tmp_path / "o.db"
        )

    assert await entry.sync_commands(settings("a-token-that-was-reset"), guild_id=None) == 2
    assert await entry.sync_commands(settings(discord_double.token), guild_id=12345) == 1  # not its guild
    monkeypatch.setattr("discord.http.Route.BASE", f"http://127.0.0.1:{free_port()}/api/v10")
    assert await entry.sync_commands(settings(discord_double.token), guild_id=None) == 1
