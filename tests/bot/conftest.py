"""Bot fixtures: the real API app behind the bot's HTTP client, and a dpytest-driven bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import discord
import discord.ext.test as dpytest
import httpx
import pytest
from fastapi import FastAPI

from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.config import BotSettings

NEW_YORK = ZoneInfo("America/New_York")
# 23:30 in New York is already the next day in UTC: "today" must follow PLAN_TIMEZONE.
NOW = dt.datetime(2026, 11, 25, 23, 30, tzinfo=NEW_YORK)
TODAY = "2026-11-25"
API_URL = "http://api.test"

_BOT_ENV = (
    "DISCORD_BOT_TOKEN",
    "API_BASE_URL",
    "INTERNAL_API_TOKEN",
    "MOCK_MODE",
    "PLAN_TIMEZONE",
    "LOG_LEVEL",
    "LOG_FILE",
    "LOG_FORMAT",
    "CONFIG_FILE",
    "OUTBOX_PATH",
    "ALLOWED_CHANNEL_IDS",
    "ADMIN_ROLE_IDS",
    "HEARTBEAT_SECONDS",
    "BOT_ID",
    "API_TIMEOUT_SECONDS",
    "OUTBOX_RETRY_MAX_SECONDS",
    "CATCHUP_LIMIT",
    "MOCK_DAYS",
)


@pytest.fixture(autouse=True)
def _clean_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test sets."""
    for name in list(os.environ):
        if name.upper() in _BOT_ENV or (
            name.upper().startswith("COACH_") and name.upper().endswith("_ALLOWED_IDS")
        ):
            monkeypatch.delenv(name)


class SwitchableTransport(httpx.AsyncBaseTransport):
    """The real API app in process, which a test can take down and bring back."""

    def __init__(self, app: FastAPI) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.down = False
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self._inner.handle_async_request(request)

    def writes(self) -> list[tuple[str, str]]:
        """The internal write requests sent so far."""
        return [(method, path) for method, path in self.requests if path.startswith("/internal/plans")]


class Sleeps:
    """An injectable sleep: records each delay, then parks until cancelled (no real waiting)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.Event().wait()


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Let the bot's background tasks run until `condition()` holds (they sleep via fakes)."""
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 - polling state owned by another task
            await asyncio.sleep(0.01)


@pytest.fixture
def api_transport(api_app: FastAPI) -> SwitchableTransport:
    return SwitchableTransport(api_app)


@pytest.fixture
async def api_reader(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Reads the database through the API's public endpoints (not through the bot)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url=API_URL) as client:
        yield client


@pytest.fixture
def bot_settings(tmp_path: Path, internal_token: str) -> BotSettings:
    return BotSettings(
        discord_bot_token="test-token",
        api_base_url=API_URL,
        internal_api_token=internal_token,
        outbox_path=tmp_path / "outbox.db",
    )


def test_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    return intents


test_intents.__test__ = False  # type: ignore[attr-defined]

MakeBot = Callable[..., Awaitable[CoachPlansBot]]


@pytest.fixture
async def make_bot(bot_settings: BotSettings, api_transport: SwitchableTransport) -> AsyncIterator[MakeBot]:
    """Build a set-up bot on the real API; with `dpytest=True` (default) wire it to dpytest."""
    bots: list[CoachPlansBot] = []

    async def make(
        settings: BotSettings | None = None, *, use_dpytest: bool = True, **kwargs: Any
    ) -> CoachPlansBot:
        kwargs.setdefault("transport", api_transport)
        kwargs.setdefault("sleep", Sleeps())
        kwargs.setdefault("now", lambda: NOW)
        bot = CoachPlansBot(settings or bot_settings, intents=test_intents(), **kwargs)
        bots.append(bot)
        await bot._async_setup_hook()
        if use_dpytest:
            dpytest.configure(bot, members=["Dan", "Ivy", "Sam"])
        await bot.setup_hook()
        return bot

    yield make
    for bot in bots:
        bot.ws = None  # type: ignore[assignment]  # dpytest's fake gateway cannot be closed
        await bot.close()
    await dpytest.empty_queue()


@pytest.fixture
async def bot(make_bot: MakeBot) -> CoachPlansBot:
    return await make_bot()


@pytest.fixture
def replies() -> Iterator[Callable[[], list[str]]]:
    """Everything the bot sent since the last call."""

    def drain() -> list[str]:
        sent = []
        while not dpytest.sent_queue.empty():
            sent.append(dpytest.get_message().content)
        return sent

    return drain
