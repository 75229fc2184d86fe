"""Reconnect policy (5 attempts, growing delays, then a non-zero exit) and exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import discord
import pytest
from discord.gateway import ReconnectWebSocket

from coach_plans_bot import __main__ as entry
from coach_plans_bot import bot as bot_module
from coach_plans_bot.backoff import Backoff
from coach_plans_bot.bot import (
    CoachPlansBot,
    ReconnectExhausted,
    ReconnectPolicy,
    run_with_reconnect,
)
from coach_plans_bot.config import BotSettings


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_five_attempts_with_growing_delays_then_give_up() -> None:
    sleep = RecordedSleep()
    calls = 0

    async def session(connected: Callable[[], None]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("network unreachable")

    with pytest.raises(ReconnectExhausted, match="5 reconnect attempts failed"):
        await run_with_reconnect(session, policy=ReconnectPolicy(), sleep=sleep, is_closed=lambda: False)

    assert calls == 6  # the lost session + 5 reconnect attempts
    assert sleep.delays == [2.0, 4.0, 8.0, 16.0, 32.0]


async def test_a_successful_reconnect_resets_the_count() -> None:
    sleep = RecordedSleep()
    script = ["fail", "fail", "connect-then-fail", "fail", "fail", "fail", "fail", "fail"]

    async def session(connected: Callable[[], None]) -> None:
        step = script.pop(0)
        if step == "connect-then-fail":
            connected()
        raise discord.GatewayNotFound

    with pytest.raises(ReconnectExhausted):
        await run_with_reconnect(
            session,
            policy=ReconnectPolicy(attempts=5, backoff=Backoff(base=1, maximum=10)),
            sleep=sleep,
            is_closed=lambda: False,
        )

    assert sleep.delays == [1, 2, 1, 2, 4, 8, 10]
    assert script == []


async def test_a_closed_client_stops_without_error() -> None:
    closed = False
    sleep = RecordedSleep()

    async def session(connected: Callable[[], None]) -> None:
        nonlocal closed
        closed = True
        raise OSError("socket closed by close()")

    await run_with_reconnect(session, policy=ReconnectPolicy(), sleep=sleep, is_closed=lambda: closed)
    assert sleep.delays == []


async def test_non_network_errors_are_not_retried() -> None:
    async def session(connected: Callable[[], None]) -> None:
        raise discord.LoginFailure("bad token")

    with pytest.raises(discord.LoginFailure):
        await run_with_reconnect(
            session, policy=ReconnectPolicy(), sleep=RecordedSleep(), is_closed=lambda: False
        )


class FakeGateway:
    sequence = 42
    gateway = "wss://gateway.example"
    session_id = "session"
    open = False

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def poll_event(self) -> None:
        raise self.error


@pytest.fixture
def settings(tmp_path: Any) -> BotSettings:
    return BotSettings(discord_bot_token="t", outbox_path=tmp_path / "o.db")


async def test_bot_connect_uses_the_policy_and_its_injected_sleep(
    settings: BotSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleep = RecordedSleep()
    opened: list[dict[str, Any]] = []
    errors: list[BaseException] = [
        ReconnectWebSocket(shard_id=None, resume=True),  # a hand-over: not a failure
        OSError("lost"),
    ]

    async def from_client(client: Any, **params: Any) -> FakeGateway:
        opened.append(dict(params))
        if len(opened) > 2:
            raise OSError("still down")
        return FakeGateway(errors.pop(0))

    monkeypatch.setattr(bot_module.DiscordWebSocket, "from_client", from_client)
    bot = CoachPlansBot(settings, sleep=sleep)
    await bot._async_setup_hook()

    with pytest.raises(ReconnectExhausted):
        await bot.connect()

    assert sleep.delays == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert len(opened) == 7
    assert opened[0]["initial"] is True
    assert opened[1]["resume"] is True
    assert opened[1]["gateway"] == "wss://gateway.example"
    assert opened[2]["session"] == "session"
    await bot.close()


async def test_bot_connect_without_reconnect_fails_at_once(
    settings: BotSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def from_client(client: Any, **params: Any) -> FakeGateway:
        raise OSError("down")

    monkeypatch.setattr(bot_module.DiscordWebSocket, "from_client", from_client)
    bot = CoachPlansBot(settings, sleep=RecordedSleep())
    await bot._async_setup_hook()

    with pytest.raises(ReconnectExhausted):
        await bot.connect(reconnect=False)
    await bot.close()


async def test_missing_privileged_intent_is_not_retried(
    settings: BotSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def from_client(client: Any, **params: Any) -> FakeGateway:
        return FakeGateway(discord.ConnectionClosed(_Socket(4014), shard_id=None, code=4014))

    monkeypatch.setattr(bot_module.DiscordWebSocket, "from_client", from_client)
    bot = CoachPlansBot(settings, sleep=RecordedSleep())
    await bot._async_setup_hook()

    with pytest.raises(discord.PrivilegedIntentsRequired):
        await bot.connect()
    await bot.close()


class _Socket:
    def __init__(self, code: int) -> None:
        self.close_code = code


# --- exit codes of the entry point -----------------------------------------------------------
class FakeBot:
    """Stands in for CoachPlansBot: `start` runs until `close`, like discord.py's."""

    def __init__(self, error: BaseException | None = None, block: bool = False) -> None:
        self.error = error
        self.block = block
        self._closed = asyncio.Event()

    async def start(self, token: str) -> None:
        if self.block:
            await self._closed.wait()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def is_closed(self) -> bool:
        return self.closed


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ReconnectExhausted("gone"), 1),
        (discord.LoginFailure("bad token"), 2),
        (discord.PrivilegedIntentsRequired(None), 2),
        (None, 0),
    ],
)
async def test_exit_codes(settings: BotSettings, error: BaseException | None, code: int) -> None:
    fake = FakeBot(error)

    assert await entry.run_discord(settings, asyncio.Event(), fake) == code  # type: ignore[arg-type]
    assert fake.closed


async def test_a_stop_signal_closes_the_bot_and_exits_0(settings: BotSettings) -> None:
    fake = FakeBot(block=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)

    assert await entry.run_discord(settings, stop, fake) == 0  # type: ignore[arg-type]
    assert fake.closed
