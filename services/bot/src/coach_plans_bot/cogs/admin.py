"""Admin commands: `!clear`, `!outbox`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from discord import app_commands
from discord.ext import commands

from coach_plans_bot.cogs._common import Context, PlanCommands, actor_of, poster_of, send_pages
from coach_plans_bot.outbox import DEAD_LETTERS, Status
from coach_plans_bot.parsing import UserInputError, optional_date, split_message
from coach_plans_bot.replies import outbox_report, write_reply

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


class AdminCog(PlanCommands, name="Admin"):
    """Commands only admins may run."""

    async def cog_check(self, ctx: Context) -> bool:  # type: ignore[override]
        """Allowed channel first, then admins only."""
        await super().cog_check(ctx)
        if not self.bot.core.policy.is_admin(poster_of(ctx.author)):
            raise commands.CheckFailure(f"Only admins can use `!{ctx.command.name if ctx.command else ''}`.")
        return True

    @commands.hybrid_command(name="clear")  # type: ignore[arg-type]
    @app_commands.describe(date="YYYY-MM-DD (default: today)")
    async def clear(self, ctx: Context, date: str | None = None) -> None:
        """Admins: delete every plan of a date: `!clear [date]` (default: today)."""
        core = self.bot.core
        day = optional_date(date, core.today())
        outcome = await core.submit_clear(
            date=day,
            actor=actor_of(ctx.author, is_admin=True),
            message_id=ctx.message.id,
            channel_id=ctx.channel.id,
        )
        if outcome.status is Status.DELIVERED and outcome.result is not None:
            deleted = int(outcome.result.get("deleted", 0))
            plans = "plan" if deleted == 1 else "plans"
            reply = f"🧹 Cleared {day.isoformat()}: {deleted} {plans} deleted."
        else:
            reply = write_reply(outcome, core.roster, verb="cleared", what=f"clear of {day}")
        await send_pages(ctx, [reply])

    @commands.hybrid_command(name="outbox")  # type: ignore[arg-type]
    @app_commands.describe(action="retry or drop (default: list)", entry_id="the outbox entry's number")
    async def outbox(self, ctx: Context, action: str | None = None, entry_id: int | None = None) -> None:
        """Admins: writes waiting for the plan service, and dead ones: `!outbox [retry|drop <id>]`."""
        outbox = self.bot.core.outbox
        if action is None:
            pending = await asyncio.to_thread(outbox.store.pending)
            dead = await asyncio.to_thread(outbox.store.with_status, *DEAD_LETTERS)
            await send_pages(ctx, split_message(outbox_report(pending, dead)))
            return
        if action not in ("retry", "drop") or entry_id is None:
            raise UserInputError("Usage: `!outbox`, `!outbox retry <id>` or `!outbox drop <id>`.")
        if action == "drop":
            if not await outbox.drop(entry_id):
                raise UserInputError(f"Outbox #{entry_id} is not a dead entry.")
            await ctx.send(f"🗑️ Outbox #{entry_id} dropped: it will not be sent.")
            return
        entry = await outbox.retry(entry_id)
        if entry is None:
            raise UserInputError(f"Outbox #{entry_id} is not a dead entry.")
        reply = write_reply(entry, self.bot.core.roster, verb="saved", what=f"outbox #{entry_id}")
        await send_pages(ctx, [reply])


async def setup(bot: CoachPlansBot) -> None:
    """Load the cog (discord.py extension entry point)."""
    await bot.add_cog(AdminCog(bot))
