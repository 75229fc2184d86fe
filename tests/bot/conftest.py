"""Bot fixtures: the real API behind the bot, a dpytest-driven bot, and a bot on the Discord double."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import discord
import discord.ext.test as dpytest
import httpx
import pytest
from fastapi import FastAPI

from coach_plans_bot.bot import CoachPlansBot, DiscordUnreachable
from coach_plans_bot.config import BotSettings
from tests.conftest import INTERNAL_TOKEN, REPO, ServiceProcess, free_port
from tests.discord_double import DiscordDouble

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
        self.failing: dict[str, int] = {}  # path -> the 5xx the API answers for it (a bug's stand-in)
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if (status := self.failing.get(request.url.path)) is not None:
            return httpx.Response(
                status, json={"error": "internal_error", "detail": "a bug (request id r-1)"}
            )
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
def replies() -> Callable[[], list[str]]:
    """Everything the bot sent since the last call."""

    def drain() -> list[str]:
        sent = []
        while not dpytest.sent_queue.empty():
            sent.append(dpytest.get_message().content)
        return sent

    return drain


@pytest.fixture
async def discord_double(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordDouble]:
    """The Discord double on 127.0.0.1, with discord.py (in this process) pointed at it."""
    double = await DiscordDouble().start()
    double.point_discord_py(monkeypatch)
    yield double
    await double.stop()


@dataclass
class WireBot:
    """A `CoachPlansBot` connected through the wire to the Discord double, and its API."""

    bot: CoachPlansBot
    double: DiscordDouble
    api_url: str
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.bot.close()
        with contextlib.suppress(asyncio.CancelledError, DiscordUnreachable):
            await self.task


StartWireBot = Callable[..., Awaitable[WireBot]]


@pytest.fixture
async def start_wire_bot(
    discord_double: DiscordDouble, tmp_path: Path, internal_token: str
) -> AsyncIterator[StartWireBot]:
    """Start the real bot object against the double and an API at `api_url`; stopped after the test."""
    started: list[WireBot] = []

    async def start(api_url: str, **settings: Any) -> WireBot:
        values: dict[str, Any] = {
            "discord_bot_token": discord_double.token,
            "api_base_url": api_url,
            "internal_api_token": internal_token,
            "outbox_path": tmp_path / "wire-outbox.db",
            "admin_role_ids": frozenset({discord_double.admin_role_id}),
            **settings,
        }
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before READY.
        bot = CoachPlansBot(BotSettings(**values), guild_ready_timeout=0.05)
        wire = WireBot(bot, discord_double, api_url, asyncio.create_task(bot.start(discord_double.token)))
        started.append(wire)
        sessions = len(discord_double.identifies) + 1
        await discord_double.wait_ready(sessions=sessions)
        async with asyncio.timeout(10):
            await bot.wait_until_ready()
        return wire

    yield start
    for wire in started:
        await wire.stop()


@pytest.fixture(scope="module")
def wire_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One real API process (`coach-plans-api serve`) shared by a module's wire tests.

    Starting one takes seconds; the tests sharing it keep apart by using dates of their own.
    """
    folder = tmp_path_factory.mktemp("wire-api")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'api.db'}",
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "MOCK_MODE": "false",
    }
    env.pop("CONFIG_FILE", None)
    args = [sys.executable, "-m", "coach_plans_api"]
    subprocess.run([*args, "migrate"], env=env, check=True, cwd=REPO, capture_output=True)
    api = ServiceProcess([*args, "serve"], env, folder / "api.log", port=port).start()
    yield api
    api.stop()
