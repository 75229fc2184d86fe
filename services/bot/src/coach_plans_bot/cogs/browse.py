"""Reading plans: `!plans`, `!myplans`, `!history`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import app_commands
from discord.ext import commands

from coach_plans_bot.cogs._common import Context, PlanCommands, send_pages
from coach_plans_bot.parsing import optional_date, parse_date, parse_days
from coach_plans_bot.replies import day_title, plan_listing

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

RECENT_PLANS = 25


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


class BrowseCog(PlanCommands, name="Browse"):
    """List plans by date, by author, by coach."""

    @commands.hybrid_command(name="plans")  # type: ignore[arg-type]
    @app_commands.describe(date="YYYY-MM-DD (default: today)")
    async def plans(self, ctx: Context, date: str | None = None) -> None:
        """List every coach's plan for a date: `!plans [date]` (default: today)."""
        core = self.bot.core
        day = optional_date(date, core.today())
        plans = await core.api.list_plans(date=day)
        await send_pages(
            ctx, plan_listing(day_title("Plans for", day), plans, roster=core.roster, empty="No plans yet.")
        )

    @commands.hybrid_command(name="myplans")  # type: ignore[arg-type]
    @app_commands.describe(date="YYYY-MM-DD (default: your recent plans)")
    async def myplans(self, ctx: Context, date: str | None = None) -> None:
        """List your plans: `!myplans [date]` (default: your most recent plans)."""
        core = self.bot.core
        day = parse_date(date) if date else None
        if day is None:
            plans = await core.api.list_plans(
                author_id=ctx.author.id, limit=RECENT_PLANS, max_items=RECENT_PLANS
            )
        else:
            plans = await core.api.list_plans(date=day, author_id=ctx.author.id)
        title = day_title("Your plans for", day) if day else "**Your recent plans**"
        await send_pages(ctx, plan_listing(title, plans, roster=core.roster, empty="You have no plans."))

    @commands.hybrid_command(name="history")  # type: ignore[arg-type]
    @app_commands.describe(coach="d, i, s, n (or coach_d …)", days="1..365 (default 7)")
    async def history(self, ctx: Context, coach: str, days: int | None = None) -> None:
        """A coach's recent plans, newest first: `!history <coach> [days]` (default 7 days)."""
        core = self.bot.core
        found = core.roster.resolve(coach)
        span = parse_days(days)
        plans = await core.api.history(coach=found.coach, days=span)
        title = f"**{found.name}: plans of the last {span} day{'s' if span != 1 else ''}**"
        await send_pages(
            ctx, plan_listing(title, plans, roster=core.roster, empty="No plans in that period.")
        )


async def setup(bot: CoachPlansBot) -> None:
    """Load the cog (discord.py extension entry point)."""
    await bot.add_cog(BrowseCog(bot))
