"""The path of every `!plan`: live (prefix or slash), caught up after downtime, or edited.

Plain data in, outbox entry and answer out; no Discord objects, so the commands, the message-edit
listener and the catch-up share one path without one cog reaching into another. Input the poster
can fix raises `UserInputError` or `PermissionDenied` (their text is the answer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from coach_plans_bot.core import Actor, BotCore
from coach_plans_bot.outbox import OutboxEntry
from coach_plans_bot.parsing import Attachment, ChartSelection, parse_plan_args, select_charts
from coach_plans_bot.permissions import Poster
from coach_plans_bot.replies import write_reply


@dataclass(frozen=True)
class PlanPost:
    """A `!plan` as plain data: its arguments, its attachments, who posted it and where."""

    args: str
    attachments: Sequence[Attachment]
    poster: Poster
    display_name: str
    message_id: int
    channel_id: int
    channel: str | None = None
    # When the message was posted, for one not handled as it arrives (caught up after downtime,
    # or edited later): a `!plan` without a date is the plan of the day it was posted.
    posted_at: dt.datetime | None = None


@dataclass(frozen=True)
class PlanCapture:
    """What became of one `!plan`: its outbox entry and the answer for the poster."""

    entry: OutboxEntry
    reply: str


class PlanWrite(TypedDict):
    """The fields of a plan write, as `BotCore.submit_plan` takes them."""

    coach: str
    date: dt.date
    text: str
    charts: Sequence[Attachment]
    actor: Actor
    message_id: int
    channel: str | None
    channel_id: int | None


def _prepare(core: BotCore, post: PlanPost) -> tuple[PlanWrite, ChartSelection]:
    """Parse and check a post; the write's fields (as `submit_plan` takes them) and the charts kept."""
    request = parse_plan_args(post.args, roster=core.roster, today=core.today(post.posted_at))
    core.policy.require_coach(post.poster, coach=request.coach.coach, coach_name=request.coach.name)
    selection = select_charts(post.attachments)
    actor = Actor(
        user_id=post.poster.user_id,
        display_name=post.display_name,
        is_admin=core.policy.is_admin(post.poster),
    )
    write = PlanWrite(
        coach=request.coach.coach,
        date=request.date,
        text=request.text,
        charts=selection.charts,
        actor=actor,
        message_id=post.message_id,
        channel=post.channel,
        channel_id=post.channel_id,
    )
    return write, selection


def _answer(entry: OutboxEntry, core: BotCore, selection: ChartSelection, *, verb: str, what: str) -> str:
    warnings = "".join(f"\n⚠️ {warning}" for warning in selection.warnings)
    return write_reply(entry, core.roster, verb=verb, what=what) + warnings


async def capture_plan(core: BotCore, post: PlanPost) -> PlanCapture:
    """Create or replace the coach's plan of the date: parse, check, outbox -> API."""
    write, selection = _prepare(core, post)
    entry = await core.submit_plan(**write)
    return PlanCapture(entry=entry, reply=_answer(entry, core, selection, verb="saved", what="plan"))


async def capture_edit(core: BotCore, post: PlanPost, *, edited_at: str) -> PlanCapture:
    """The `!plan` message was edited: update the plan it created (or store it, if it never was)."""
    write, selection = _prepare(core, post)
    entry = await core.submit_message_edit(**write, edited_at=edited_at)
    reply = _answer(entry, core, selection, verb="updated from your edit", what="edit")
    return PlanCapture(entry=entry, reply=reply)
