"""Every command and every error reply, through dpytest, with the real API behind the bot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import discord
import discord.ext.test as dpytest
import httpx
import pytest
from discord.ext import commands
from discord.ext.test import backend, factories

from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.config import BotSettings
from coach_plans_bot.permissions import PermissionPolicy
from tests.bot.conftest import NEW_YORK, TODAY, MakeBot, SwitchableTransport
from tests.conftest import api_today

Replies = Callable[[], list[str]]
ADMIN_ROLE = 424242424242424242
CHART = "https://cdn.discordapp.com/attachments/1/2/{}"


def member(index: int) -> discord.Member:
    return dpytest.get_config().members[index]


async def plans_on(api: httpx.AsyncClient, day: str = TODAY, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/plans", params={"date": day, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def post(content: str, who: int = 0, attachments: list[str] | None = None) -> Exception | None:
    """Post as a member; the command's error, if any (dpytest re-raises it after the bot answered)."""
    try:
        await dpytest.message(content, member=who, attachments=attachments)
    except commands.CommandError as error:
        return error
    return None


@pytest.fixture
async def admin_bot(make_bot: MakeBot, bot_settings: BotSettings) -> CoachPlansBot:
    """Members: 0 Dan, 1 Ivy (plain posters), 2 Sam (has the admin role)."""
    settings = bot_settings.model_copy(update={"admin_role_ids": frozenset({ADMIN_ROLE})})
    bot = await make_bot(settings)
    guild = dpytest.get_config().guilds[0]
    role = backend.make_role("Admins", guild, id_num=ADMIN_ROLE)
    await dpytest.add_role(member(2), role)
    return bot


# --- !plan ------------------------------------------------------------------------------
async def test_plan_for_today_is_stored_with_its_charts_in_order(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    charts = [CHART.format(name) for name in ("daily.png", "hourly.jpg", "flow.webp")]
    await post("!plan d: NVDA above 950, targets 968/985, stop 938", attachments=charts)

    [stored] = await plans_on(api_reader)
    assert stored["coach"] == "coach_d"
    assert stored["date"] == TODAY  # today in New York, although it is already tomorrow in UTC
    assert stored["plan"] == "NVDA above 950, targets 968/985, stop 938"
    assert [chart["url"] for chart in stored["charts"]] == charts
    assert stored["author_id"] == str(member(0).id)
    assert replies() == [
        f"✅ Plan #{stored['id']} saved — Coach D, {TODAY}, 3 charts\n"
        "> NVDA above 950, targets 968/985, stop 938"
    ]


async def test_plan_for_another_date(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan i 2026-11-26: AAPL earnings: buy the dip to 180")

    [stored] = await plans_on(api_reader, "2026-11-26")
    assert (stored["coach"], stored["plan"]) == ("coach_i", "AAPL earnings: buy the dip to 180")
    assert await plans_on(api_reader) == []
    assert replies()[0].startswith(f"✅ Plan #{stored['id']} saved — Coach I, 2026-11-26, 0 charts")


async def test_plan_accepts_coach_spellings(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan coach_S: sentiment frothy")
    await post("!plan N: CPI at 8:30")

    assert sorted(plan["coach"] for plan in await plans_on(api_reader)) == ["coach_n", "coach_s"]


async def test_non_images_and_the_eleventh_chart_are_warned_not_dropped_silently(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    images = [CHART.format(f"chart{n}.png") for n in range(1, 12)]
    await post("!plan d: many charts", attachments=[CHART.format("notes.pdf"), *images])

    [stored] = await plans_on(api_reader)
    assert [chart["url"] for chart in stored["charts"]] == images[:10]
    [reply] = replies()
    assert ", 10 charts" in reply
    assert "⚠️ Skipped `notes.pdf`: not an image (PNG, JPG, GIF or WEBP only)." in reply
    assert "⚠️ Skipped `chart11.png`: at most 10 charts per plan." in reply


async def test_posting_again_replaces_the_plan_of_that_coach_and_day(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: first version")
    await post("!plan d: second version")

    [stored] = await plans_on(api_reader)
    assert stored["plan"] == "second version"
    first, second = replies()
    assert first.split(" saved")[0] == second.split(" saved")[0]  # same plan id


@pytest.mark.parametrize(
    ("content", "reply"),
    [
        ("!plan x: text", "❌ Unknown coach `x`. Known coaches: d, i, s, n."),
        ("!plan d 2026-13-01: text", "❌ Bad date `2026-13-01`: month must be in 1..12."),
        ("!plan d tomorrow: text", "❌ Bad date `tomorrow`: use YYYY-MM-DD, e.g. 2026-11-26."),
        ("!plan d:    ", "❌ The plan text is empty: write the plan after the colon."),
        (
            "!plan NVDA above 950",
            "❌ Usage: `!plan d: <text>` or `!plan d 2026-11-26: <text>`",
        ),
        (
            "!plan d: " + "x" * 10_001,
            "❌ The plan is 10,001 characters long; the limit is 10,000.",
        ),
    ],
)
async def test_bad_plan_input_gets_a_specific_error_and_stores_nothing(
    bot: CoachPlansBot,
    replies: Replies,
    api_reader: httpx.AsyncClient,
    content: str,
    reply: str,
) -> None:
    await post(content)

    assert replies() == [reply]
    assert (await api_reader.get("/api/v1/plans")).json()["items"] == []


async def test_plan_without_arguments_answers_with_the_usage(bot: CoachPlansBot, replies: Replies) -> None:
    assert isinstance(await post("!plan"), commands.MissingRequiredArgument)

    assert replies() == ["❌ Missing `entry`. Usage: `!plan d: <text>` or `!plan d 2026-11-26: <text>`"]


async def test_another_users_plan_cannot_be_replaced(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: Dan's plan", who=0)
    await post("!plan d: Ivy's takeover", who=1)

    [stored] = await plans_on(api_reader)
    assert stored["plan"] == "Dan's plan"
    assert replies()[1].startswith("❌ Not your plan: only its author or an admin can change it.")


async def test_messages_from_bots_are_ignored(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    guild = dpytest.get_config().guilds[0]
    assert bot.user is not None
    me = guild.get_member(bot.user.id)
    assert me is not None
    await dpytest.message("!plan d: from a bot", member=me)

    assert replies() == []
    assert await plans_on(api_reader) == []


async def test_an_error_in_one_message_does_not_stop_the_bot(
    bot: CoachPlansBot,
    replies: Replies,
    api_reader: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(**kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(bot.core.api, "list_plans", broken)
    assert isinstance(await post("!plans"), commands.CommandInvokeError)
    assert replies() == ["❌ Something went wrong handling that command; the error was logged."]

    await post("!plan d: still alive")
    assert replies()[0].startswith("✅ Plan #")
    assert [plan["plan"] for plan in await plans_on(api_reader)] == ["still alive"]


# --- permissions -------------------------------------------------------------------------
async def test_commands_outside_the_allowed_channels_are_refused(
    make_bot: MakeBot, bot_settings: BotSettings, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await make_bot(bot_settings.model_copy(update={"allowed_channel_ids": frozenset({1})}))

    for content in (
        "!plan d: text",
        "!edit 1 text",
        "!delete 1",
        "!plans",
        "!myplans",
        "!history d",
        "!clear",
    ):
        await post(content)
        assert replies() == ["❌ This channel is not allowed for plan commands."], content
    assert await plans_on(api_reader) == []


async def test_commands_in_an_allowed_channel_work(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    channel = dpytest.get_config().channels[0]
    bot.core.policy = PermissionPolicy(allowed_channel_ids=frozenset({channel.id}))
    await post("!plan d: in the right channel")

    assert len(await plans_on(api_reader)) == 1


async def test_only_the_configured_posters_may_post_for_a_coach(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    settings = bot.settings.model_copy(update={"coach_allowed_ids": {"coach_d": frozenset({member(0).id})}})
    bot.core.policy = PermissionPolicy.from_settings(settings)

    await post("!plan d: Ivy is not Coach D", who=1)
    assert replies() == ["❌ You are not allowed to post plans for Coach D."]
    await post("!plan i: but Coach I is open", who=1)
    await post("!plan d: Dan is Coach D", who=0)

    assert sorted(plan["plan"] for plan in await plans_on(api_reader)) == [
        "Dan is Coach D",
        "but Coach I is open",
    ]


# --- !edit and !delete ---------------------------------------------------------------------
async def test_edit_own_plan(bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient) -> None:
    await post("!plan d: NVDA above 950")
    [plan] = await plans_on(api_reader)
    replies()

    await post(f"!edit {plan['id']} NVDA above 960 now")

    [stored] = await plans_on(api_reader)
    assert (stored["plan"], stored["edited"]) == ("NVDA above 960 now", True)
    assert replies() == [f"✅ Plan #{plan['id']} edited — Coach D, {TODAY}, 0 charts\n> NVDA above 960 now"]


async def test_edit_and_delete_of_someone_elses_plan_are_refused(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: Dan's plan", who=0)
    [plan] = await plans_on(api_reader)
    replies()

    await post(f"!edit {plan['id']} hijacked", who=1)
    await post(f"!delete {plan['id']}", who=1)

    refusal = f"❌ Plan #{plan['id']} is not your plan: only its author or an admin can change it."
    assert replies() == [refusal, refusal]
    [stored] = await plans_on(api_reader)
    assert stored["plan"] == "Dan's plan"


async def test_admin_may_edit_and_delete_any_plan(
    admin_bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: Dan's plan", who=0)
    [plan] = await plans_on(api_reader)

    await post(f"!edit {plan['id']} fixed by an admin", who=2)
    [stored] = await plans_on(api_reader)
    assert stored["plan"] == "fixed by an admin"

    await post(f"!delete {plan['id']}", who=2)
    assert await plans_on(api_reader) == []
    assert replies()[-1].startswith(f"✅ Plan #{plan['id']} deleted — Coach D")


async def test_delete_own_plan(bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient) -> None:
    await post("!plan s: to be deleted")
    [plan] = await plans_on(api_reader)

    await post(f"!delete {plan['id']}")

    assert await plans_on(api_reader) == []
    response = await api_reader.get(f"/api/v1/plans/{plan['id']}/revisions")
    assert [rev["action"] for rev in response.json()["revisions"]] == ["create", "delete"]


@pytest.mark.parametrize("content", ["!edit 999 new text", "!delete 999"])
async def test_edit_or_delete_of_an_unknown_plan(bot: CoachPlansBot, replies: Replies, content: str) -> None:
    await post(content)

    assert replies() == ["❌ No plan #999 (unknown or deleted)."]


async def test_edit_with_empty_text_is_refused(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: keep me")
    [plan] = await plans_on(api_reader)
    replies()

    assert isinstance(await post(f"!edit {plan['id']}"), commands.MissingRequiredArgument)

    assert replies() == ["❌ Missing `text`. Usage: `!edit <plan_id> <text>`"]
    assert (await plans_on(api_reader))[0]["plan"] == "keep me"


async def test_edit_with_a_non_numeric_id(bot: CoachPlansBot, replies: Replies) -> None:
    assert isinstance(await post("!edit abc new text"), commands.BadArgument)

    [reply] = replies()
    assert reply.startswith('❌ Converting to "int" failed for parameter "plan_id".')
    assert reply.endswith("Usage: `!edit <plan_id> <text>`")


# --- the original message is edited or deleted -----------------------------------------------
async def edit_message(
    message: discord.Message, content: str, *, edited_at: str = "2026-11-25T23:45:00+00:00"
) -> None:
    data: dict[str, Any] = {
        **factories.dict_from_message(message),
        "content": content,
        "edited_timestamp": edited_at,
        "channel_id": message.channel.id,
        "guild_id": message.guild.id if message.guild else None,
    }
    # discord.py types the gateway payload as a TypedDict; dpytest's factories build plain dicts.
    backend.get_state().parse_message_update(data)  # type: ignore[arg-type]
    await dpytest.run_all_events()


async def test_editing_the_plan_message_updates_the_stored_plan(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    message = await dpytest.message("!plan d: NVDA above 950")
    replies()

    await edit_message(message, "!plan d: NVDA above 955 (typo fixed)")

    [stored] = await plans_on(api_reader)
    assert (stored["plan"], stored["edited"]) == ("NVDA above 955 (typo fixed)", True)
    assert replies()[0].startswith(f"✅ Plan #{stored['id']} updated from your edit — Coach D")


async def test_editing_the_plan_message_back_to_an_earlier_text(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    """Each edit has its own time: the API takes an edit back to an earlier edit's text for an
    edit, not for a retry of that earlier edit."""
    message = await dpytest.message("!plan d: NVDA above 950")
    texts = ["NVDA above 955", "NVDA above 950", "NVDA above 955"]
    for minute, text in zip((45, 50, 55), texts, strict=True):
        await edit_message(message, f"!plan d: {text}", edited_at=f"2026-11-25T23:{minute}:00+00:00")

    [stored] = await plans_on(api_reader)
    assert stored["plan"] == "NVDA above 955"
    revisions = (await api_reader.get(f"/api/v1/plans/{stored['id']}/revisions")).json()["revisions"]
    assert [r["plan_text"] for r in revisions] == ["NVDA above 950", *texts]


async def test_editing_a_message_into_a_bad_plan_is_reported(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    message = await dpytest.message("!plan d: NVDA above 950")
    replies()

    await edit_message(message, "!plan q: oops")

    assert replies() == ["❌ Your edited plan was not saved: Unknown coach `q`. Known coaches: d, i, s, n."]
    assert (await plans_on(api_reader))[0]["plan"] == "NVDA above 950"


async def test_editing_other_messages_does_nothing(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    message = await dpytest.message("good morning")
    await edit_message(message, "good morning all")

    assert replies() == []
    assert bot.core.outbox.store.pending() == []


async def test_a_message_edited_into_a_plan_is_the_plan_of_the_day_it_was_posted(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    """An edit can come days later: a `!plan` without a date is the plan of the day the message was
    posted (New York), whatever the bot's clock says when the edit arrives (2026-11-25 here)."""
    message = await dpytest.message("good morning")
    posted_on = message.created_at.astimezone(NEW_YORK).date().isoformat()
    assert posted_on != TODAY

    await edit_message(message, "!plan d: NVDA above 950")

    [stored] = await plans_on(api_reader, day=posted_on)
    assert stored["plan"] == "NVDA above 950"
    assert await plans_on(api_reader) == []


async def test_deleting_the_plan_message_deletes_the_stored_plan(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    message = await dpytest.message("!plan d: NVDA above 950")
    [plan] = await plans_on(api_reader)
    replies()

    backend.delete_message(message)
    await dpytest.run_all_events()

    assert await plans_on(api_reader) == []
    assert replies() == [
        f"🗑️ The `!plan` message was deleted. ✅ Plan #{plan['id']} deleted — Coach D, "
        f"{TODAY}, 0 charts\n> NVDA above 950"
    ]


async def test_deleting_an_uncached_plan_message_still_deletes_the_plan(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    message = await dpytest.message("!plan d: posted before a restart")
    bot._connection._messages.clear()  # type: ignore[union-attr]
    backend.delete_message(message)
    await dpytest.run_all_events()

    assert await plans_on(api_reader) == []


async def test_deleting_other_messages_keeps_the_plan(
    bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await dpytest.message("!plan d: keep me")
    chatter = await dpytest.message("nice plan")
    replies()

    backend.delete_message(chatter)
    await dpytest.run_all_events()

    assert len(await plans_on(api_reader)) == 1
    assert replies() == []


# --- reading: !plans, !myplans, !history -------------------------------------------------
async def test_plans_lists_every_coach_of_the_day(bot: CoachPlansBot, replies: Replies) -> None:
    await post("!plan d: technical view")
    await post("!plan n: macro view", who=1)
    await post("!plan s 2026-11-24: yesterday")
    replies()

    await post("!plans")
    [listing] = replies()
    assert listing.startswith(f"**Plans for {TODAY}**")
    assert "Coach D" in listing
    assert "technical view" in listing
    assert "Coach N" in listing
    assert "macro view" in listing
    assert "yesterday" not in listing

    await post("!plans 2026-11-24")
    assert "yesterday" in replies()[0]


@pytest.mark.parametrize(
    ("content", "reply"),
    [
        ("!plans", f"**Plans for {TODAY}**\nNo plans yet."),
        ("!plans 2026-02-30", "❌ Bad date `2026-02-30`: day is out of range for month."),
        ("!myplans 26/11/2026", "❌ Bad date `26/11/2026`: use YYYY-MM-DD, e.g. 2026-11-26."),
        ("!myplans", "**Your recent plans**\nYou have no plans."),
        ("!history z", "❌ Unknown coach `z`. Known coaches: d, i, s, n."),
        ("!history d 0", "❌ Days must be between 1 and 365, not 0."),
        ("!history d 400", "❌ Days must be between 1 and 365, not 400."),
        ("!history d", "**Coach D: plans of the last 7 days**\nNo plans in that period."),
    ],
)
async def test_read_command_replies(bot: CoachPlansBot, replies: Replies, content: str, reply: str) -> None:
    await post(content)

    assert replies() == [reply]


async def test_myplans_lists_only_the_callers_plans(bot: CoachPlansBot, replies: Replies) -> None:
    await post("!plan d: mine", who=0)
    await post("!plan i: not mine", who=1)
    await post("!plan s 2026-11-20: mine too", who=0)
    replies()

    await post("!myplans", who=0)
    [listing] = replies()
    assert "mine" in listing
    assert "mine too" in listing
    assert "not mine" not in listing

    await post("!myplans 2026-11-20", who=0)
    [listing] = replies()
    assert listing.startswith("**Your plans for 2026-11-20**")
    assert "mine too" in listing
    assert "> mine\n" not in listing


async def test_history_and_long_listings_are_split_under_2000_characters(
    bot: CoachPlansBot, replies: Replies
) -> None:
    # History counts back from the API's real today: the 20 days end 5 days before it, so the
    # window of 30 holds them all whichever side of midnight the test runs on.
    today = api_today()
    days = [(today - dt.timedelta(days=back)).isoformat() for back in range(5, 25)]
    for n, day in enumerate(days):
        await post(f"!plan d {day}: " + f"day {n} " + "NVDA levels " * 40)
    replies()

    await post("!history d 30")
    pages = replies()
    assert len(pages) > 1
    assert all(len(page) <= 2000 for page in pages)
    text = "\n".join(pages)
    assert all(day in text for day in days)
    assert text.index(days[0]) < text.index(days[-1])  # newest first

    await post("!myplans")
    pages = replies()
    assert len(pages) > 1
    assert all(len(page) <= 2000 for page in pages)


async def test_reads_when_the_api_is_down(
    bot: CoachPlansBot, replies: Replies, api_transport: SwitchableTransport
) -> None:
    api_transport.down = True
    for content in ("!plans", "!myplans", "!history d"):
        await post(content)
        assert replies() == ["❌ The plan service is unreachable right now; try again in a minute."], content


# --- !clear ------------------------------------------------------------------------------------
async def test_admin_clears_a_day(
    admin_bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: one", who=0)
    await post("!plan i: two", who=1)
    await post("!plan s 2026-11-26: other day", who=1)
    replies()

    await post("!clear", who=2)

    assert replies() == [f"🧹 Cleared {TODAY}: 2 plans deleted."]
    assert await plans_on(api_reader) == []
    assert len(await plans_on(api_reader, "2026-11-26")) == 1


async def test_clear_is_admin_only(
    admin_bot: CoachPlansBot, replies: Replies, api_reader: httpx.AsyncClient
) -> None:
    await post("!plan d: stays", who=0)
    replies()

    await post("!clear", who=0)

    assert replies() == ["❌ Only admins can use `!clear`."]
    assert len(await plans_on(api_reader)) == 1


async def test_clear_with_a_bad_date(admin_bot: CoachPlansBot, replies: Replies) -> None:
    await post("!clear yesterday", who=2)

    assert replies() == ["❌ Bad date `yesterday`: use YYYY-MM-DD, e.g. 2026-11-26."]


# --- !help and slash commands -----------------------------------------------------------------
async def test_help_shows_the_syntax(bot: CoachPlansBot, replies: Replies) -> None:
    await post("!help")

    [text] = replies()
    for usage in (
        "`!plan d: <text>`",
        "`!plan d 2026-11-26: <text>`",
        "`!edit <id> <text>`",
        "`!delete <id>`",
        "`!plans [date]`",
        "`!myplans [date]`",
        "`!history <coach> [days]`",
        "`!clear [date]`",
        "America/New_York",
    ):
        assert usage in text


async def test_every_command_is_also_a_slash_command(bot: CoachPlansBot) -> None:
    names = {command.name for command in bot.tree.get_commands()}
    assert names == {"plan", "edit", "delete", "plans", "myplans", "history", "clear", "outbox", "help"}
    assert {command.name for command in bot.commands} == names


async def test_unknown_commands_are_ignored(bot: CoachPlansBot, replies: Replies) -> None:
    assert isinstance(await post("!unknown thing"), commands.CommandNotFound)  # not answered

    assert replies() == []
