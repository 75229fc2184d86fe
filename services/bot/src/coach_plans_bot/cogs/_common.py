"""What the cogs share: channel gating, Discord objects -> plain data, paged answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach_plans_bot.capture import PlanPost
from coach_plans_bot.core import Actor
from coach_plans_bot.parsing import Attachment, split_message
from coach_plans_bot.permissions import Poster

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

    Context = commands.Context[CoachPlansBot]
else:
    Context = commands.Context


class ChannelNotAllowed(commands.CheckFailure):
    """A plan command outside the allowed channels."""

    def __init__(self) -> None:
        super().__init__("This channel is not allowed for plan commands.")


class PlanCommands(commands.Cog):
    """A cog whose commands run only in the allowed channels (`ALLOWED_CHANNEL_IDS`)."""

    def __init__(self, bot: CoachPlansBot) -> None:
        self.bot = bot

    async def cog_check(self, ctx: Context) -> bool:  # type: ignore[override]
        """Every command of the cog: only in an allowed channel."""
        if not self.bot.core.policy.channel_allowed(ctx.channel.id):
            raise ChannelNotAllowed
        return True


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


def attachments_of(items: Sequence[discord.Attachment]) -> list[Attachment]:
    """Discord attachments as plain data, in the order they were attached."""
    return [
        Attachment(
            url=item.url,
            filename=item.filename,
            content_type=item.content_type,
            size_bytes=item.size or None,
        )
        for item in items
    ]


def channel_name(channel: Any) -> str | None:
    """`#name` of a guild channel, None for DMs."""
    name = getattr(channel, "name", None)
    return f"#{name}" if isinstance(name, str) else None


def plan_post(
    args: str,
    *,
    author: discord.abc.User,
    attachments: Sequence[discord.Attachment],
    message_id: int,
    channel: Any,
    posted_at: dt.datetime | None = None,
) -> PlanPost:
    """A `!plan` (message or slash command) as plain data; `posted_at` for one not handled live."""
    return PlanPost(
        args=args,
        attachments=attachments_of(attachments),
        poster=poster_of(author),
        display_name=author.display_name,
        message_id=message_id,
        channel_id=channel.id,
        channel=channel_name(channel),
        posted_at=posted_at,
    )


async def plan_args(bot: CoachPlansBot, message: discord.Message) -> str | None:
    """The arguments of a `!plan` message, or None for any other message (or a bot's)."""
    if message.author.bot:
        return None
    ctx = await bot.get_context(message)
    if ctx.command is None or ctx.command.name != "plan":
        return None
    return ctx.view.read_rest()


async def send_pages(destination: discord.abc.Messageable, pages: Sequence[str]) -> None:
    """Send one or more messages, none over Discord's 2,000-character limit."""
    for page in pages:
        for chunk in split_message(page):
            await destination.send(chunk)
