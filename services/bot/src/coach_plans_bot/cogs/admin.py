"""Admin commands: `!clear`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import app_commands
from discord.ext import commands

from coach_plans_bot.cogs._common import Context, actor_of, poster_of, send_pages, write_reply
from coach_plans_bot.outbox import Status
from coach_plans_bot.parsing import UserInputError, optional_date
from coach_plans_bot.permissions import PermissionDenied

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


class AdminCog(commands.Cog, name="Admin"):
    """Commands only admins may run."""

    def __init__(self, bot: CoachPlansBot) -> None:
        self.bot = bot

    @commands.hybrid_command(name="clear")  # type: ignore[arg-type]
    @app_commands.describe(date="YYYY-MM-DD (default: today)")
    async def clear(self, ctx: Context, date: str | None = None) -> None:
        """Admins: delete every plan of a date: `!clear [date]` (default: today)."""
        core = self.bot.core
        try:
            core.policy.require_channel(ctx.channel.id)
            poster = poster_of(ctx.author)
            core.policy.require_admin(poster, "clear")
            day = optional_date(date, core.today())
        except (UserInputError, PermissionDenied) as exc:
            await ctx.send(f"❌ {exc}")
            return
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
