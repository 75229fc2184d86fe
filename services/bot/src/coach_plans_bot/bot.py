"""The Discord bot: a `commands.Bot` that owns the HTTP client and the outbox.

Connection policy (docs/bot.md): discord.py runs and resumes the gateway itself. The bot only
counts, from discord.py's public events, the failed connects in a row (a `disconnect` not
followed by READY or RESUMED) and gives up after `ReconnectPolicy.attempts` of them; at start,
when Discord cannot be reached at all, it retries the login with its own backoff the same
number of times. Either way `start()` raises `DiscordUnreachable`, and the process exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import httpx
from discord.ext import commands

from coach_plans_bot.api import ApiError, ApiUnavailable
from coach_plans_bot.backoff import Backoff, Sleep
from coach_plans_bot.config import BotSettings, redact_url
from coach_plans_bot.core import BotCore
from coach_plans_bot.outbox import OutboxEntry
from coach_plans_bot.parsing import PLAN_USAGE, UserInputError, preview, split_message
from coach_plans_bot.permissions import PermissionDenied
from coach_plans_bot.replies import settled_notice

log = logging.getLogger(__name__)

COMMAND_PREFIX = "!"
EXTENSIONS = tuple(
    f"coach_plans_bot.cogs.{name}" for name in ("plans", "browse", "admin", "usage", "catchup")
)
API_DOWN = "❌ The plan service is unreachable right now; try again in a minute."

# Failures that say Discord cannot be reached (now): worth another try. Anything else (a
# rejected token, a refused intent) is final and raised at once.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    discord.DiscordServerError,
    discord.GatewayNotFound,
)


class DiscordUnreachable(Exception):
    """Discord could not be reached within the allowed attempts."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """At most `attempts` failed connects in a row; delays of the login retries at start."""

    attempts: int = 5
    backoff: Backoff = field(default_factory=lambda: Backoff(base=2.0, factor=2.0, maximum=120.0))


class ConnectionWatch:
    """Counts failed connects in a row from discord.py's events; READY or RESUMED clears it.

    `on_connect` does not clear it: it comes before Discord accepted the session, so a token
    the gateway rejects would look like a working connection.
    """

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.failures = 0
        self.gave_up = asyncio.Event()

    def lost(self) -> None:
        """A session ended or a connect failed."""
        self.failures += 1
        if self.failures > 1:
            log.warning("Discord: reconnect attempt %d/%d failed", self.failures - 1, self.attempts)
        else:
            log.warning("Discord connection lost; discord.py reconnects (at most %d attempts)", self.attempts)
        if self.failures > self.attempts:  # start() raises; the entry point says so in one line
            self.gave_up.set()

    def up(self) -> None:
        """Discord accepted a session (READY) or resumed one (RESUMED)."""
        self.failures = 0


def default_intents() -> discord.Intents:
    """Guild messages with their content; nothing privileged beyond that."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


COMMAND_ERROR_WRAPPERS = (
    commands.CommandInvokeError,
    commands.HybridCommandError,
    discord.app_commands.CommandInvokeError,
)


def root_error(error: BaseException) -> BaseException:
    """The exception a command raised, out of discord.py's wrappers."""
    while isinstance(error, COMMAND_ERROR_WRAPPERS):
        error = error.original
    return error


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
        reconnect_policy: ReconnectPolicy | None = None,
        serve: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=COMMAND_PREFIX,
            intents=intents or default_intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.settings = settings
        self._transport = transport
        self._sleep = sleep
        self._now = now
        self._serve = serve
        self.reconnect_policy = reconnect_policy or ReconnectPolicy(
            backoff=Backoff(base=settings.discord_retry_base_seconds, factor=2.0, maximum=120.0)
        )
        self.watch = ConnectionWatch(self.reconnect_policy.attempts)
        self._core: BotCore | None = None
        self._set_up = False

    @property
    def core(self) -> BotCore:
        """The HTTP client, API, outbox and roster, available once `setup_hook` ran."""
        if self._core is None:
            raise RuntimeError("the bot is not set up yet (setup_hook has not run)")
        return self._core

    async def setup_hook(self) -> None:
        """Load the cogs; serving: open the HTTP client and the outbox, start delivery and heartbeat."""
        self._set_up = True
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if not self._serve:
            return
        self._core = await BotCore.open(
            self.settings, transport=self._transport, sleep=self._sleep, now=self._now
        )
        self._core.start_background(connected=self.discord_connected, on_settled=self.announce)
        log.info(
            "bot set up: API %s, outbox %s", redact_url(self.settings.api_base_url), self.settings.outbox_path
        )

    # --- connection ----------------------------------------------------------------------
    async def start(self, token: str, *, reconnect: bool = True) -> None:
        """Log in (retrying while Discord is unreachable) and run the gateway until closed.

        Raises DiscordUnreachable after the policy's attempts; LoginFailure, a 4004
        ConnectionClosed or PrivilegedIntentsRequired at once.
        """
        await self._login_with_retries(token)
        gateway = asyncio.create_task(self.connect(reconnect=reconnect), name="discord-gateway")
        gave_up = asyncio.create_task(self.watch.gave_up.wait(), name="discord-watch")
        try:
            await asyncio.wait({gateway, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gave_up.cancel()
            if not gateway.done():
                gateway.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gateway
        if self.watch.gave_up.is_set():
            raise DiscordUnreachable(
                f"Discord connection lost; {self.reconnect_policy.attempts} reconnect attempts failed"
            )
        gateway.result()

    async def _login_with_retries(self, token: str) -> None:
        policy = self.reconnect_policy
        for attempt in range(policy.attempts + 1):
            try:
                await self.login(token)
                return
            except UNREACHABLE_ERRORS as exc:
                if self._set_up:  # Discord answered; our own start-up failed (e.g. the outbox file)
                    raise
                await self.http.close()  # the failed login's HTTP session; the next login opens one
                self.http.connector = discord.utils.MISSING
                if attempt == policy.attempts:
                    raise DiscordUnreachable(
                        f"Discord unreachable after {policy.attempts} reconnect attempts ({_one_line(exc)})"
                    ) from None
                delay = policy.backoff.delay(attempt + 1)
                log.warning(
                    "Discord unreachable (%s); reconnect attempt %d/%d in %.2fs",
                    _one_line(exc),
                    attempt + 1,
                    policy.attempts,
                    delay,
                )
                await self._sleep(delay)

    async def on_disconnect(self) -> None:
        """discord.py lost the gateway (or failed to connect): count it, unless we are closing."""
        if not self.is_closed():
            self.watch.lost()

    async def on_ready(self) -> None:
        """Discord accepted a new session."""
        self.watch.up()
        log.info("connected to Discord as %s", self.user)

    async def on_resumed(self) -> None:
        """Discord resumed the session (the events missed in between are replayed)."""
        self.watch.up()

    def discord_connected(self) -> bool:
        """True while the gateway session is up."""
        return self.is_ready() and not self.is_closed()

    # --- messages and commands ----------------------------------------------------------
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

    async def on_command(self, ctx: commands.Context[Any], /) -> None:
        """One log line per command: which, who (display name and id), where, the start of the text."""
        name = ctx.command.qualified_name if ctx.command else "?"
        text = preview(ctx.message.content, 80) if ctx.interaction is None else "(slash command)"
        author = ctx.author
        log.info("command %s by %s (%d) in #%s: %s", name, author.display_name, author.id, ctx.channel, text)

    async def on_command_error(self, ctx: commands.Context[Any], error: commands.CommandError, /) -> None:
        """The one place that turns a failed command into its answer in Discord."""
        if isinstance(error, commands.CommandNotFound):
            return
        text = self.error_reply(ctx, root_error(error))
        for chunk in split_message(text):
            await ctx.send(chunk)

    def error_reply(self, ctx: commands.Context[Any], error: BaseException) -> str:
        """What the poster is told about an error."""
        command = ctx.command
        if command is not None and command.name == "plan":
            usage = PLAN_USAGE
        elif command is not None:
            usage = f"`{COMMAND_PREFIX}{command.qualified_name} {command.signature}`".replace(" `", "`")
        else:
            usage = "`!help`"
        if isinstance(error, commands.MissingRequiredArgument):
            return f"❌ Missing `{error.param.name}`. Usage: {usage}"
        if isinstance(error, commands.BadArgument):
            return f"❌ {error} Usage: {usage}"
        if isinstance(
            error, UserInputError | PermissionDenied | commands.UserInputError | commands.CheckFailure
        ):
            return f"❌ {error}"
        if isinstance(error, ApiUnavailable):
            return API_DOWN
        if isinstance(error, ApiError):
            return f"❌ The plan service could not answer: {error}"
        log.error(
            "command %r by %s failed",
            ctx.message.content if ctx.message else None,
            ctx.author.id,
            exc_info=(type(error), error, error.__traceback__),
        )
        return "❌ Something went wrong handling that command; the error was logged."

    # --- shutdown and notices -------------------------------------------------------------
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
