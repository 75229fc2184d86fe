"""Helpers the cogs share to turn Discord objects into plain data, and to answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach_plans_bot.core import Actor
from coach_plans_bot.outbox import OutboxEntry, Status
from coach_plans_bot.parsing import Attachment, Roster, split_message
from coach_plans_bot.permissions import Poster
from coach_plans_bot.replies import parse_result, plan_confirmation, queued, rejected

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

    Context = commands.Context[CoachPlansBot]
else:
    Context = commands.Context


def poster_of(user: discord.abc.User) -> Poster:
    """The plain ids of whoever sent a command."""
    if isinstance(user, discord.Member):
        return Poster(
            user_id=user.id,
            role_ids=frozenset(role.id for role in user.roles),
            guild_administrator=user.guild_permissions.administrator,
        )
    return Poster(user_id=user.id)


def actor_of(user: discord.abc.User, *, is_admin: bool) -> Actor:
    """The actor sent with a write."""
    return Actor(user_id=user.id, display_name=user.display_name, is_admin=is_admin)


def attachments_of(message: discord.Message | None) -> list[Attachment]:
    """A message's attachments, in the order they were attached."""
    if message is None:
        return []
    return [
        Attachment(
            url=item.url,
            filename=item.filename,
            content_type=item.content_type,
            size_bytes=item.size or None,
        )
        for item in message.attachments
    ]


def channel_name(channel: Any) -> str | None:
    """`#name` of a guild channel, None for DMs."""
    name = getattr(channel, "name", None)
    return f"#{name}" if isinstance(name, str) else None


async def send_pages(destination: discord.abc.Messageable, pages: Sequence[str]) -> None:
    """Send one or more messages, none over Discord's 2,000-character limit."""
    for page in pages:
        for chunk in split_message(page):
            await destination.send(chunk)


def write_reply(entry: OutboxEntry, roster: Roster, *, verb: str, what: str) -> str:
    """The answer to a write: confirmation, queued, or the API's refusal."""
    if entry.status is Status.PENDING:
        return queued(entry, what)
    if entry.status is Status.REJECTED:
        return rejected(entry, what)
    plan = parse_result(entry)
    if plan is None:
        return f"✅ Done ({what})."
    return plan_confirmation(plan, roster, verb=verb)
