"""Posting plans: `!plan`, `!edit`, `!delete`, and following edits/deletes of `!plan` messages."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach_plans_bot.api import ApiError, ApiNotFound, PlanView
from coach_plans_bot.cogs._common import (
    Context,
    actor_of,
    attachments_of,
    channel_name,
    poster_of,
    send_pages,
    write_reply,
)
from coach_plans_bot.outbox import OutboxEntry
from coach_plans_bot.parsing import (
    UserInputError,
    check_plan_text,
    parse_plan_args,
    select_charts,
)
from coach_plans_bot.permissions import PermissionDenied, Poster

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

log = logging.getLogger(__name__)


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


@dataclass(frozen=True)
class PlanCapture:
    """What became of one `!plan`: the outbox entry (None if refused before it) and the answer."""

    entry: OutboxEntry | None
    reply: str


class PlansCog(commands.Cog, name="Plans"):
    """Create, edit and delete plans."""

    def __init__(self, bot: CoachPlansBot) -> None:
        self.bot = bot

    @commands.hybrid_command(name="plan")  # type: ignore[arg-type]
    @app_commands.describe(entry="coach, optional date, colon, plan: `d: NVDA above 950 …`")
    async def plan(self, ctx: Context, *, entry: str) -> None:
        """Save a coach's plan: `!plan d: <text>` or `!plan d 2026-11-26: <text>` (+ charts)."""
        capture = await self.capture_plan(entry, message=ctx.message, author=ctx.author)
        await send_pages(ctx, [capture.reply])

    async def capture_plan(
        self,
        entry: str,
        *,
        message: discord.Message,
        author: discord.abc.User,
    ) -> PlanCapture:
        """The path of every `!plan`, live or caught up: permissions, parsing, outbox -> API."""
        core = self.bot.core
        channel = message.channel
        try:
            core.policy.require_channel(channel.id)
            request = parse_plan_args(entry, roster=core.roster, today=core.today())
            poster = poster_of(author)
            core.policy.require_coach(poster, request.coach.coach, request.coach.name)
        except (UserInputError, PermissionDenied) as exc:
            return PlanCapture(entry=None, reply=f"❌ {exc}")
        selection = select_charts(attachments_of(message))
        outcome = await core.submit_plan(
            coach=request.coach.coach,
            date=request.date,
            text=request.text,
            charts=selection.charts,
            actor=actor_of(author, is_admin=core.policy.is_admin(poster)),
            message_id=message.id,
            channel=channel_name(channel),
            channel_id=channel.id,
        )
        reply = write_reply(outcome, core.roster, verb="saved", what="plan")
        warnings = "".join(f"\n⚠️ {warning}" for warning in selection.warnings)
        return PlanCapture(entry=outcome, reply=reply + warnings)

    @commands.hybrid_command(name="edit")  # type: ignore[arg-type]
    @app_commands.describe(plan_id="the plan's id (shown when it was saved)", text="the new text")
    async def edit(self, ctx: Context, plan_id: int, *, text: str) -> None:
        """Replace the text of a plan: `!edit <id> <text>` (your own plan; admins: any)."""
        core = self.bot.core
        try:
            core.policy.require_channel(ctx.channel.id)
            new_text = check_plan_text(text)
            poster = poster_of(ctx.author)
            is_admin = core.policy.is_admin(poster)
            await self._require_owner(plan_id, poster, is_admin=is_admin)
        except (UserInputError, PermissionDenied) as exc:
            await ctx.send(f"❌ {exc}")
            return
        outcome = await core.submit_edit(
            plan_id=plan_id,
            text=new_text,
            actor=actor_of(ctx.author, is_admin=is_admin),
            message_id=ctx.message.id,
            channel_id=ctx.channel.id,
        )
        await send_pages(ctx, [write_reply(outcome, core.roster, verb="edited", what="edit")])

    @commands.hybrid_command(name="delete")  # type: ignore[arg-type]
    @app_commands.describe(plan_id="the plan's id (shown when it was saved)")
    async def delete(self, ctx: Context, plan_id: int) -> None:
        """Delete a plan: `!delete <id>` (your own plan; admins: any)."""
        core = self.bot.core
        try:
            core.policy.require_channel(ctx.channel.id)
            poster = poster_of(ctx.author)
            is_admin = core.policy.is_admin(poster)
            await self._require_owner(plan_id, poster, is_admin=is_admin)
        except (UserInputError, PermissionDenied) as exc:
            await ctx.send(f"❌ {exc}")
            return
        outcome = await core.submit_delete(
            plan_id=plan_id,
            actor=actor_of(ctx.author, is_admin=is_admin),
            message_id=ctx.message.id,
            channel_id=ctx.channel.id,
        )
        await send_pages(ctx, [write_reply(outcome, core.roster, verb="deleted", what="delete")])

    async def _require_owner(self, plan_id: int, poster: Poster, *, is_admin: bool) -> None:
        """Answer "no such plan" / "not your plan" now when the API can tell us.

        When the API is down the write is queued anyway and the API decides on delivery.
        """
        try:
            plan: PlanView | None = await self.bot.core.api.get_plan(plan_id)
        except ApiNotFound as exc:
            raise UserInputError(f"No plan #{plan_id} (unknown or deleted).") from exc
        except ApiError:
            plan = None
        if plan is not None and not self.bot.core.policy.may_change(
            poster, author_id=plan.author_id, is_admin=is_admin
        ):
            raise PermissionDenied(
                f"Plan #{plan_id} is not your plan: only its author or an admin can change it."
            )

    # --- the original `!plan` message is edited or deleted ------------------------------
    def plan_args(self, ctx: Context) -> str | None:
        """The arguments of a `!plan` message, or None for any other message."""
        if ctx.command is not self.plan or ctx.author.bot:
            return None
        return ctx.view.read_rest()

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edited `!plan` message updates the plan it created."""
        message = payload.message
        if message.edited_at is None or message.author.bot:
            return  # Discord also "updates" a message when it adds link embeds.
        before = payload.cached_message
        if (
            before is not None
            and before.content == message.content
            and (before.attachments == message.attachments)
        ):
            return
        ctx = await self.bot.get_context(message)
        args = self.plan_args(ctx)
        if args is None:
            return
        core = self.bot.core
        try:
            core.policy.require_channel(message.channel.id)
            request = parse_plan_args(args, roster=core.roster, today=core.today())
            poster = poster_of(message.author)
            core.policy.require_coach(poster, request.coach.coach, request.coach.name)
        except (UserInputError, PermissionDenied) as exc:
            await message.channel.send(f"❌ Your edited plan was not saved: {exc}")
            return
        selection = select_charts(attachments_of(message))
        outcome = await core.submit_message_edit(
            coach=request.coach.coach,
            date=request.date,
            text=request.text,
            charts=selection.charts,
            actor=actor_of(message.author, is_admin=core.policy.is_admin(poster)),
            message_id=message.id,
            edited_at=message.edited_at.isoformat(),
            channel=channel_name(message.channel),
            channel_id=message.channel.id,
        )
        reply = write_reply(outcome, core.roster, verb="updated from your edit", what="edit")
        warnings = "".join(f"\n⚠️ {warning}" for warning in selection.warnings)
        await send_pages(message.channel, [reply + warnings])

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A deleted `!plan` message deletes the plan it created."""
        core = self.bot.core
        if not core.policy.channel_allowed(payload.channel_id):
            return
        cached = payload.cached_message
        if cached is not None:
            if self.plan_args(await self.bot.get_context(cached)) is None:
                return
            actor = actor_of(cached.author, is_admin=False)
        else:
            # Not in the cache (e.g. posted before a restart): the API finds the plan, if any,
            # by its message id and the author recorded on it.
            actor = None
        outcome = await core.submit_message_delete(
            message_id=payload.message_id, actor=actor, channel_id=payload.channel_id
        )
        if outcome.result == {"deleted": False}:
            return
        channel = self.bot.get_channel(payload.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            reply = write_reply(outcome, core.roster, verb="deleted", what="delete")
            await channel.send(f"🗑️ The `!plan` message was deleted. {reply}")
