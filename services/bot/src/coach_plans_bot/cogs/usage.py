"""`!help`: how to use the bot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

from coach_plans_bot.cogs._common import Context, send_pages
from coach_plans_bot.replies import help_text

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot


# `type: ignore[arg-type]` on hybrid_command: discord.py 2.7 binds the cog type variable of
# `hybrid_command` differently from its `CommandCallback`, so mypy rejects every cog method.


class HelpCog(commands.Cog, name="Help"):
    """Usage of every command."""

    def __init__(self, bot: CoachPlansBot) -> None:
        self.bot = bot

    @commands.hybrid_command(name="help")  # type: ignore[arg-type]
    async def help(self, ctx: Context) -> None:
        """Show how to use the Coach Plans bot."""
        core = self.bot.core
        await send_pages(ctx, [help_text(core.roster, core.settings.plan_timezone)])


async def setup(bot: CoachPlansBot) -> None:
    """Load the cog (discord.py extension entry point)."""
    await bot.add_cog(HelpCog(bot))
