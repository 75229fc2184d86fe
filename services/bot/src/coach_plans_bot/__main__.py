"""Entry point: settings -> logging -> run (Discord or mock), with signals and exit codes.

`coach-plans-bot` runs the bot; `coach-plans-bot sync-commands [--guild ID]` registers the slash
commands with Discord and exits. Exit codes: 0 done or clean shutdown, 1 Discord unreachable or
lost for good, 2 invalid configuration (also a token or intents Discord refuses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import aiohttp
import discord

from coach_plans_bot.bot import CoachPlansBot, DiscordUnreachable
from coach_plans_bot.config import BotSettings, ConfigError, load_settings
from coach_plans_bot.mock import MockDiscordBot
from coach_plans_common import LogFileError
from coach_plans_common import configure_logging as common_logging

log = logging.getLogger("coach_plans_bot")

EXIT_OK = 0
EXIT_DISCONNECTED = 1
EXIT_CONFIG = 2


def configure_logging(settings: BotSettings) -> None:
    """The log format both services share; the Discord token and the internal token masked."""
    common_logging(
        level=settings.log_level,
        log_format=settings.log_format,
        log_file=settings.log_file,
        secrets=[
            settings.internal_api_token.get_secret_value(),
            settings.discord_bot_token.get_secret_value() if settings.discord_bot_token else None,
        ],
    )
    # The HTTP client logs full request lines; keep them at DEBUG only when asked.
    httpx_level = max(logging.WARNING, logging.getLevelName(settings.log_level))
    logging.getLogger("httpx").setLevel(httpx_level)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows event loops
            loop.add_signal_handler(sig, stop.set)


async def run_mock(settings: BotSettings, stop: asyncio.Event) -> int:
    """Mock mode: simulated posts, heartbeat, until SIGINT/SIGTERM."""
    async with MockDiscordBot(settings) as mock:
        await mock.start()
        await stop.wait()
        log.info("MOCK MODE: shutting down")
    return EXIT_OK


BAD_TOKEN_MESSAGE = (
    "Discord rejected DISCORD_BOT_TOKEN ({how}): set the bot's current token "  # noqa: S105 - a message
    "(Discord developer portal → your application → Bot → Reset Token)"
)
INTENTS_REFUSED = (
    "Discord refused the gateway with close code 4014 (disallowed intents): enable the "
    "Message Content intent (developer portal → your application → Bot → Privileged Gateway Intents)"
)


async def run_discord(settings: BotSettings, *, stop: asyncio.Event, bot: CoachPlansBot) -> int:
    """Connect to Discord until stopped; map failures to exit codes and one clear line each."""
    assert settings.discord_bot_token is not None
    runner = asyncio.create_task(bot.start(settings.discord_bot_token.get_secret_value()))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down")
            await bot.close()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
            return EXIT_OK
        runner.result()
        return EXIT_OK
    except DiscordUnreachable as exc:
        log.error("%s; exiting so the process manager restarts the bot", exc)
        return EXIT_DISCONNECTED
    except discord.LoginFailure:
        log.error(BAD_TOKEN_MESSAGE.format(how="401 Unauthorized"))
        return EXIT_CONFIG
    except discord.PrivilegedIntentsRequired:
        log.error(INTENTS_REFUSED)
        return EXIT_CONFIG
    except discord.ConnectionClosed as exc:
        if exc.code == 4004:
            log.error(BAD_TOKEN_MESSAGE.format(how="gateway close code 4004, authentication failed"))
            return EXIT_CONFIG
        log.error("Discord closed the gateway with code %s (%s); not retrying", exc.code, exc.reason or "-")
        return EXIT_DISCONNECTED
    finally:
        stopper.cancel()
        if not bot.is_closed():
            await bot.close()


async def sync_commands(settings: BotSettings, *, guild_id: int | None) -> int:
    """Register the slash commands: in one guild (at once), or globally (Discord may take an hour)."""
    assert settings.discord_bot_token is not None
    bot = CoachPlansBot(settings, serve=False)
    try:
        async with bot:
            await bot.login(settings.discord_bot_token.get_secret_value())
            if guild_id is None:
                synced = await bot.tree.sync()
                where = "globally (Discord may take up to an hour to show them everywhere)"
            else:
                guild = discord.Object(id=guild_id)
                bot.tree.copy_global_to(guild=guild)
                synced = await bot.tree.sync(guild=guild)
                where = f"in guild {guild_id}"
    except discord.LoginFailure:
        log.error(BAD_TOKEN_MESSAGE.format(how="401 Unauthorized"))
        return EXIT_CONFIG
    except discord.HTTPException as exc:
        log.error("Discord refused the command sync: %s %s", exc.status, exc.text or "")
        return EXIT_DISCONNECTED
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        log.error("Discord unreachable: %s", " ".join(str(exc).split()) or type(exc).__name__)
        return EXIT_DISCONNECTED
    log.info("registered %d slash commands %s: %s", len(synced), where, ", ".join(c.name for c in synced))
    return EXIT_OK


async def serve(settings: BotSettings) -> int:
    """Run the bot (or the mock bot) until a signal or a fatal error."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    if settings.mock_mode:
        return await run_mock(settings, stop)
    return await run_discord(settings, stop=stop, bot=CoachPlansBot(settings))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """`coach-plans-bot [sync-commands [--guild ID]]`."""
    parser = argparse.ArgumentParser(prog="coach-plans-bot", description="The Coach Plans Discord bot.")
    subcommands = parser.add_subparsers(dest="command")
    sync = subcommands.add_parser(
        "sync-commands", help="register the slash commands with Discord (needs DISCORD_BOT_TOKEN) and exit"
    )
    sync.add_argument(
        "--guild", type=int, default=None, help="register in this guild only (at once); default: globally"
    )
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    """Read the settings (exit 2 if invalid), set up logging, run; return the exit code."""
    args = parse_args(argv)
    try:
        settings = load_settings(require_internal_token=args.command != "sync-commands")
        configure_logging(settings)
    except (ConfigError, LogFileError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "sync-commands":
        if settings.discord_bot_token is None:
            print("sync-commands needs DISCORD_BOT_TOKEN", file=sys.stderr)
            return EXIT_CONFIG
        return asyncio.run(sync_commands(settings, guild_id=args.guild))
    return asyncio.run(serve(settings))


def main() -> None:
    """Console script `coach-plans-bot`."""
    sys.exit(run())


if __name__ == "__main__":
    main()
