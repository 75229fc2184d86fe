"""Posting plans: `!plan`, `!edit`, `!delete`, and following edits/deletes of `!plan` messages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach_plans_bot.api import ApiError, ApiNotFound, PlanView
from coach_plans_bot.capture import capture_edit, capture_plan
from coach_plans_bot.cogs._common import (
    Context,
    PlanCommands,
    actor_of,
    plan_args,
    plan_post,
    poster_of,
    send_pages,
)
from coach_plans_bot.core import plan_lane
from coach_plans_bot.outbox import EVERY_LANE
from coach_plans_bot.parsing import MAX_CHARTS, UserInputError, check_plan_text
from coach_plans_bot.permissions import PermissionDenied, Poster
from coach_plans_bot.replies import write_reply

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

log = logging.getLogger(__name__)

Chart = discord.Attachment | None
CHART_HELP = "a chart image (PNG, JPG, GIF or WEBP)"


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


class PlansCog(PlanCommands, name="Plans"):
    """Create, edit and delete plans."""

    # Slash commands get attachments only as options (type 11): one optional option per chart
    # the API takes. `!plan` reads the message's own attachments instead.
    @commands.hybrid_command(name="plan")  # type: ignore[arg-type]
    @app_commands.describe(
        entry="coach, optional date, colon, plan: `d: NVDA above 950 …`",
        **{f"chart{n}": CHART_HELP for n in range(1, MAX_CHARTS + 1)},
    )
    async def plan(
        self,
        ctx: Context,
        *,
        entry: str,
        chart1: Chart = None,
        chart2: Chart = None,
        chart3: Chart = None,
        chart4: Chart = None,
        chart5: Chart = None,
        chart6: Chart = None,
        chart7: Chart = None,
        chart8: Chart = None,
        chart9: Chart = None,
        chart10: Chart = None,
    ) -> None:
        """Save a coach's plan: `!plan d: <text>` or `!plan d 2026-11-26: <text>` (+ charts)."""
        await ctx.defer()  # a slash command must be answered within 3 s; the API may be slower
        if ctx.interaction is None:
            attachments = list(ctx.message.attachments)
        else:
            options = (chart1, chart2, chart3, chart4, chart5, chart6, chart7, chart8, chart9, chart10)
            attachments = [chart for chart in options if chart is not None]
        post = plan_post(
            entry, author=ctx.author, attachments=attachments, message_id=ctx.message.id, channel=ctx.channel
        )
        capture = await capture_plan(self.bot.core, post)
        await send_pages(ctx, [capture.reply])

    @commands.hybrid_command(name="edit")  # type: ignore[arg-type]
    @app_commands.describe(plan_id="the plan's id (shown when it was saved)", text="the new text")
    async def edit(self, ctx: Context, plan_id: int, *, text: str) -> None:
        """Replace the text of a plan: `!edit <id> <text>` (your own plan; admins: any)."""
        core = self.bot.core
        new_text = check_plan_text(text)
        poster = poster_of(ctx.author)
        is_admin = core.policy.is_admin(poster)
        lane = await self._require_owner(plan_id, poster, is_admin=is_admin)
        outcome = await core.submit_edit(
            plan_id=plan_id,
            text=new_text,
            actor=actor_of(ctx.author, is_admin=is_admin),
            message_id=ctx.message.id,
            channel_id=ctx.channel.id,
            lane=lane,
        )
        await send_pages(ctx, [write_reply(outcome, core.roster, verb="edited", what="edit")])

    @commands.hybrid_command(name="delete")  # type: ignore[arg-type]
    @app_commands.describe(plan_id="the plan's id (shown when it was saved)")
    async def delete(self, ctx: Context, plan_id: int) -> None:
        """Delete a plan: `!delete <id>` (your own plan; admins: any)."""
        core = self.bot.core
        poster = poster_of(ctx.author)
        is_admin = core.policy.is_admin(poster)
        lane = await self._require_owner(plan_id, poster, is_admin=is_admin)
        outcome = await core.submit_delete(
            plan_id=plan_id,
            actor=actor_of(ctx.author, is_admin=is_admin),
            message_id=ctx.message.id,
            channel_id=ctx.channel.id,
            lane=lane,
        )
        await send_pages(ctx, [write_reply(outcome, core.roster, verb="deleted", what="delete")])

    async def _require_owner(self, plan_id: int, poster: Poster, *, is_admin: bool) -> str:
        """Answer "no such plan" / "not your plan" now when the API can tell; return the outbox lane.

        When the API is down the write is queued anyway (after every earlier write, since whose
        plan it is is unknown) and the API decides on delivery.
        """
        try:
            plan: PlanView = await self.bot.core.api.get_plan(plan_id)
        except ApiNotFound as exc:
            raise UserInputError(f"No plan #{plan_id} (unknown or deleted).") from exc
        except ApiError:
            return EVERY_LANE
        if not self.bot.core.policy.may_change(poster, author_id=plan.author_id, is_admin=is_admin):
            raise PermissionDenied(
                f"Plan #{plan_id} is not your plan: only its author or an admin can change it."
            )
        return plan_lane(plan.coach, plan.date)

    # --- the original `!plan` message is edited or deleted ------------------------------
    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edited `!plan` message updates the plan it created."""
        message = payload.message
        if message.edited_at is None:
            return  # Discord also "updates" a message when it adds link embeds.
        before = payload.cached_message
        if before is not None and (before.content, before.attachments) == (
            message.content,
            message.attachments,
        ):
            return
        args = await plan_args(self.bot, message)
        core = self.bot.core
        if args is None or not core.policy.channel_allowed(message.channel.id):
            return
        post = plan_post(
            args,
            author=message.author,
            attachments=message.attachments,
            message_id=message.id,
            channel=message.channel,
            posted_at=message.created_at,
        )
        try:
            capture = await capture_edit(core, post, edited_at=message.edited_at.isoformat())
        except (UserInputError, PermissionDenied) as exc:
            await message.channel.send(f"❌ Your edited plan was not saved: {exc}")
            return
        await send_pages(message.channel, [capture.reply])

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A deleted `!plan` message deletes the plan it created."""
        core = self.bot.core
        if not core.policy.channel_allowed(payload.channel_id):
            return
        cached = payload.cached_message
        if cached is not None:
            if await plan_args(self.bot, cached) is None:
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


async def setup(bot: CoachPlansBot) -> None:
    """Load the cog (discord.py extension entry point)."""
    await bot.add_cog(PlansCog(bot))
