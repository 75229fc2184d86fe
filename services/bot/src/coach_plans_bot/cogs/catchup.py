"""Catch-up after downtime: store the plans posted while the bot was not connected."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach_plans_bot.capture import capture_plan
from coach_plans_bot.catchup import CatchUpReport, unprocessed
from coach_plans_bot.cogs._common import plan_args, plan_post
from coach_plans_bot.parsing import UserInputError
from coach_plans_bot.permissions import PermissionDenied

if TYPE_CHECKING:
    from coach_plans_bot.bot import CoachPlansBot

log = logging.getLogger(__name__)

HistoryChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread


class CatchUpCog(commands.Cog, name="CatchUp"):
    """On (re)connect, read each channel's history after its cursor and store the `!plan`s found."""

    def __init__(self, bot: CoachPlansBot) -> None:
        self.bot = bot
        self._lock = asyncio.Lock()

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Discord sends READY after every new session (start-up or a lost connection)."""
        await self.catch_up()

    async def catch_up(self) -> list[CatchUpReport]:
        """Catch up every allowed channel that has a cursor; a channel seen for the first time has none."""
        core = self.bot.core
        limit = core.settings.catchup_limit
        if limit == 0 or self._lock.locked():
            return []  # disabled, or a catch-up is already running (READY twice in a row)
        reports = []
        async with self._lock:
            for channel_id, cursor in sorted((await core.channel_cursors()).items()):
                if not core.policy.channel_allowed(channel_id):
                    continue
                channel = self._channel(channel_id)
                if channel is None:
                    log.info("catch-up: channel %d is gone or not visible; skipped", channel_id)
                    continue
                try:
                    reports.append(await self._catch_up_channel(channel, cursor=cursor, limit=limit))
                except discord.HTTPException as exc:  # e.g. Forbidden: no Read Message History
                    log.warning("catch-up: cannot read the history of #%s: %s", channel, exc)
        return reports

    def _channel(self, channel_id: int) -> HistoryChannel | None:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            for guild in self.bot.guilds:
                if (thread := guild.get_thread(channel_id)) is not None:
                    return thread
        return channel if isinstance(channel, HistoryChannel) else None

    @staticmethod
    async def _member(message: discord.Message) -> discord.abc.User:
        """The poster with their roles: history messages carry no member data (unlike live ones)."""
        author = message.author
        if isinstance(author, discord.Member) or message.guild is None:
            return author
        try:
            return await message.guild.fetch_member(author.id)
        except discord.HTTPException:  # NotFound: the poster left; decide on the user id alone
            return author

    async def _catch_up_channel(self, channel: HistoryChannel, *, cursor: int, limit: int) -> CatchUpReport:
        core = self.bot.core
        history = [
            message
            async for message in channel.history(
                limit=limit, after=discord.Object(id=cursor), oldest_first=True
            )
        ]
        # Real Discord returns only newer messages, oldest first; filtering again keeps the
        # order and the bound right for any backend (dpytest includes the cursor message).
        messages = unprocessed(history, after=cursor)
        if len(history) >= limit:
            log.warning(
                "catch-up of #%s read CATCHUP_LIMIT=%d messages; newer ones were not caught up",
                channel,
                limit,
            )
        report = CatchUpReport(channel_id=channel.id)
        for message in messages:
            core.begin_message(channel.id, message.id)
        for index, message in enumerate(messages):
            try:
                report.scanned += 1
                args = await plan_args(self.bot, message)
                if args is not None:
                    post = plan_post(
                        args,
                        author=await self._member(message),
                        attachments=message.attachments,
                        message_id=message.id,
                        channel=channel,
                        posted_at=message.created_at,
                    )
                    try:
                        report.count((await capture_plan(core, post)).entry)
                    except (UserInputError, PermissionDenied):
                        report.count(None)
            except BaseException:
                for later in messages[index + 1 :]:
                    core.cursors.abandon(channel.id, later.id)
                raise
            finally:
                await core.finish_message(channel.id, message.id)
        log.info(
            "catch-up of #%s: %d message(s) after the cursor, %d plan(s) saved, %d queued, %d refused",
            channel,
            report.scanned,
            len(report.stored),
            len(report.queued),
            report.refused,
        )
        summary = report.summary()
        if summary is not None:
            try:
                await channel.send(summary)
            except discord.HTTPException as exc:
                log.warning("catch-up: could not post the summary in #%s: %s", channel, exc)
        return report


async def setup(bot: CoachPlansBot) -> None:
    """Load the cog (discord.py extension entry point)."""
    await bot.add_cog(CatchUpCog(bot))
