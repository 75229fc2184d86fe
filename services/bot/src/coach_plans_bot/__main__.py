"""Entry point: settings -> logging -> run (Discord or mock), with signals and exit codes.

Exit codes: 0 clean shutdown, 1 Discord connection lost for good, 2 invalid configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import signal
import sys

import discord

from coach_plans_bot.bot import CoachPlansBot, ReconnectExhausted
from coach_plans_bot.config import BotSettings, ConfigError, load_settings
from coach_plans_bot.mock import MockDiscordBot

log = logging.getLogger("coach_plans_bot")

EXIT_OK = 0
EXIT_DISCONNECTED = 1
EXIT_CONFIG = 2


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure_logging(settings: BotSettings) -> None:
    """Console (and optional rotating file, 10 MB x 5) logging in text or JSON."""
    formatter: logging.Formatter = (
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=settings.log_level, handlers=handlers, force=True)
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


async def run_discord(settings: BotSettings, stop: asyncio.Event, bot: CoachPlansBot) -> int:
    """Connect to Discord until stopped; map failures to exit codes."""
    assert settings.discord_bot_token is not None
    runner = asyncio.create_task(bot.start(settings.discord_bot_token.get_secret_value()))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down")
            await bot.close()
            with contextlib.suppress(Exception):
                await runner
            return EXIT_OK
        runner.result()
        return EXIT_OK
    except ReconnectExhausted as exc:
        log.error("%s; exiting so the process manager restarts the bot", exc)
        return EXIT_DISCONNECTED
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_BOT_TOKEN: check the token")
        return EXIT_CONFIG
    except discord.PrivilegedIntentsRequired:
        log.error("enable the Message Content intent for the bot in the Discord developer portal")
        return EXIT_CONFIG
    finally:
        stopper.cancel()
        if not bot.is_closed():
            await bot.close()


async def serve(settings: BotSettings) -> int:
    """Run the bot (or the mock bot) until a signal or a fatal error."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    if settings.mock_mode:
        return await run_mock(settings, stop)
    return await run_discord(settings, stop, CoachPlansBot(settings))


def run() -> int:
    """Read the settings (exit 2 if invalid), set up logging, run; return the exit code."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    return asyncio.run(serve(settings))


def main() -> None:
    """Console script `coach-plans-bot`."""
    sys.exit(run())


if __name__ == "__main__":
    main()
