"""The Discord bot: a `commands.Bot` that owns the HTTP client and the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import httpx
from discord.ext import commands
from discord.gateway import DiscordWebSocket, ReconnectWebSocket

from coach_plans_bot.backoff import Backoff, Sleep
from coach_plans_bot.config import BotSettings
from coach_plans_bot.core import BotCore
from coach_plans_bot.outbox import OutboxEntry
from coach_plans_bot.parsing import PLAN_USAGE, split_message
from coach_plans_bot.replies import settled_notice

log = logging.getLogger(__name__)

COMMAND_PREFIX = "!"

# Failures after which a new gateway session is worth trying (same list as discord.py's own).
RECONNECTABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    discord.HTTPException,
    discord.GatewayNotFound,
    discord.ConnectionClosed,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)


class ReconnectExhausted(Exception):
    """The Discord connection could not be re-established within the allowed attempts."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """At most `attempts` reconnects in a row, with exponentially growing delays."""

    attempts: int = 5
    backoff: Backoff = field(default_factory=lambda: Backoff(base=2.0, factor=2.0, maximum=120.0))


async def run_with_reconnect(
    session: Callable[[Callable[[], None]], Awaitable[None]],
    *,
    policy: ReconnectPolicy,
    sleep: Sleep,
    is_closed: Callable[[], bool],
    on_failure: Callable[[BaseException], None] | None = None,
) -> None:
    """Run gateway sessions until closed; retry a lost one, at most `policy.attempts` in a row.

    `session` gets a callback to call once it is connected: a connection that came up resets
    the count, so only consecutive failures exhaust the policy.
    """
    failures = 0

    def connected() -> None:
        nonlocal failures
        failures = 0

    while not is_closed():
        try:
            await session(connected)
            return
        except RECONNECTABLE_ERRORS as exc:
            if is_closed():
                return
            if on_failure is not None:
                on_failure(exc)
            failures += 1
            if failures > policy.attempts:
                raise ReconnectExhausted(
                    f"Discord connection lost; {policy.attempts} reconnect attempts failed"
                ) from exc
            delay = policy.backoff.delay(failures)
            log.warning(
                "Discord connection lost (%s); reconnect attempt %d/%d in %.1fs",
                exc,
                failures,
                policy.attempts,
                delay,
            )
            await sleep(delay)


def default_intents() -> discord.Intents:
    """Guild messages with their content; nothing privileged beyond that."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


class CoachPlansBot(commands.Bot):
    """Captures `!plan` posts and writes them through the API's internal endpoints."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], dt.datetime] | None = None,
        intents: discord.Intents | None = None,
        reconnect_policy: ReconnectPolicy = ReconnectPolicy(),
    ) -> None:
        super().__init__(
            command_prefix=COMMAND_PREFIX,
            intents=intents or default_intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self._transport = transport
        self._sleep = sleep
        self._now = now
        self._reconnect_policy = reconnect_policy
        self._core: BotCore | None = None

    @property
    def core(self) -> BotCore:
        """The HTTP client, API, outbox and roster, available once `setup_hook` ran."""
        if self._core is None:
            raise RuntimeError("the bot is not set up yet (setup_hook has not run)")
        return self._core

    async def setup_hook(self) -> None:
        """Open the HTTP client and the outbox, load the cogs, start delivery and heartbeat."""
        from coach_plans_bot.cogs import admin, browse, catchup, plans, usage

        self._core = await BotCore.open(
            self.settings, transport=self._transport, sleep=self._sleep, now=self._now
        )
        await self.add_cog(plans.PlansCog(self))
        await self.add_cog(browse.BrowseCog(self))
        await self.add_cog(admin.AdminCog(self))
        await self.add_cog(usage.HelpCog(self))
        await self.add_cog(catchup.CatchUpCog(self))
        self._core.start_background(connected=self.discord_connected, on_settled=self.announce)
        log.info("bot set up: API %s, outbox %s", self.settings.api_base_url, self.settings.outbox_path)

    async def on_message(self, message: discord.Message, /) -> None:
        """Run the commands of a message, then move its channel's catch-up cursor past it.

        The cursor moves only once the message is processed (a `!plan` is in the outbox), so a
        crash in between leaves it to the catch-up at the next start.
        """
        core = self._core
        if (
            core is None
            or message.guild is None
            or message.author.bot
            or not core.policy.channel_allowed(message.channel.id)
        ):
            await self.process_commands(message)
            return
        core.begin_message(message.channel.id, message.id)
        try:
            await self.process_commands(message)
        finally:
            await core.finish_message(message.channel.id, message.id)

    def discord_connected(self) -> bool:
        """True while the gateway session is up."""
        return self.is_ready() and not self.is_closed()

    async def close(self) -> None:
        """Disconnect from Discord, tell the API, close the outbox and the HTTP client."""
        await super().close()
        if self._core is not None:
            core, self._core = self._core, None
            await core.send_heartbeat(connected=False)
            await core.aclose()

    async def announce(self, entry: OutboxEntry) -> None:
        """Tell the channel when a queued write is finally delivered or refused."""
        if entry.channel_id is None:
            return
        channel = self.get_channel(entry.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        try:
            await channel.send(settled_notice(entry, self.core.roster))
        except discord.HTTPException as exc:
            log.warning("could not announce outbox #%d: %s", entry.id, exc)

    async def on_command_error(self, ctx: commands.Context[Any], error: commands.CommandError) -> None:
        """Answer framework errors (bad arguments, unknown checks) instead of crashing."""
        if isinstance(error, commands.CommandNotFound):
            return
        command = ctx.command
        usage = (
            PLAN_USAGE
            if command is not None and command.name == "plan"
            else (
                f"`{COMMAND_PREFIX}{command.qualified_name} {command.signature}`".replace(" `", "`")
                if command is not None
                else "`!help`"
            )
        )
        if isinstance(error, commands.MissingRequiredArgument):
            text = f"❌ Missing `{error.param.name}`. Usage: {usage}"
        elif isinstance(error, commands.BadArgument):
            text = f"❌ {error} Usage: {usage}"
        elif isinstance(error, commands.UserInputError | commands.CheckFailure):
            text = f"❌ {error}"
        else:
            original = getattr(error, "original", error)
            log.error(
                "command %r by %s failed",
                ctx.message.content if ctx.message else None,
                ctx.author.id,
                exc_info=(type(original), original, original.__traceback__),
            )
            text = "❌ Something went wrong handling that command; the error was logged."
        for chunk in split_message(text):
            await ctx.send(chunk)

    async def connect(self, *, reconnect: bool = True) -> None:
        """Run the gateway; reconnect with exponential backoff, at most 5 times in a row."""
        ws_params: dict[str, Any] = {"initial": True, "shard_id": self.shard_id}

        async def session(connected: Callable[[], None]) -> None:
            while not self.is_closed():
                try:
                    coro = DiscordWebSocket.from_client(self, **ws_params)
                    self.ws = await asyncio.wait_for(coro, timeout=60.0)
                    ws_params["initial"] = False
                    connected()
                    while True:
                        await self.ws.poll_event()
                except ReconnectWebSocket as exc:
                    # Discord asked for a new session: a hand-over, not a failure.
                    self.dispatch("disconnect")
                    ws_params.update(sequence=self.ws.sequence, resume=exc.resume, session=self.ws.session_id)
                    if exc.resume:
                        ws_params["gateway"] = self.ws.gateway

        def on_failure(exc: BaseException) -> None:
            self.dispatch("disconnect")
            if isinstance(exc, discord.ConnectionClosed) and exc.code == 4014:
                raise discord.PrivilegedIntentsRequired(exc.shard_id) from None
            if self.ws is not None:
                ws_params.update(
                    sequence=self.ws.sequence,
                    gateway=self.ws.gateway,
                    resume=True,
                    session=self.ws.session_id,
                )

        if not reconnect:
            policy = ReconnectPolicy(attempts=0, backoff=self._reconnect_policy.backoff)
        else:
            policy = self._reconnect_policy
        await run_with_reconnect(
            session,
            policy=policy,
            sleep=self._sleep,
            is_closed=self.is_closed,
            on_failure=on_failure,
        )
