"""Counting failed connects from discord.py's events, and the entry point's exit codes.

The behaviour on the wire (a real discord.py client against the Discord double) is in
tests/bot/test_wire_faults.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest

from coach_plans_bot import __main__ as entry
from coach_plans_bot.bot import ConnectionWatch, DiscordUnreachable
from coach_plans_bot.config import BotSettings
from tests.conftest import INTERNAL_TOKEN


def test_failed_connects_in_a_row_give_up_after_the_attempts() -> None:
    watch = ConnectionWatch(attempts=5)
    for _ in range(5):  # the lost session, then 4 failed reconnects
        watch.lost()
    assert not watch.gave_up.is_set()
    watch.lost()
    assert watch.gave_up.is_set()


def test_ready_or_resumed_clears_the_count_but_a_bare_connect_does_not() -> None:
    watch = ConnectionWatch(attempts=2)
    watch.lost()
    watch.lost()
    watch.up()  # READY / RESUMED
    watch.lost()
    watch.lost()
    assert not watch.gave_up.is_set()
    watch.lost()
    assert watch.gave_up.is_set()


@pytest.fixture
def settings(tmp_path: Any) -> BotSettings:
    return BotSettings(
        discord_bot_token="t", internal_api_token=INTERNAL_TOKEN, outbox_path=tmp_path / "o.db"
    )


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
        (DiscordUnreachable("gone"), 1),
        (discord.LoginFailure("bad token"), 2),
        (discord.PrivilegedIntentsRequired(None), 2),
        # discord.py wants an aiohttp socket, of which it reads only the close code.
        (discord.ConnectionClosed(_Socket(4004), shard_id=None, code=4004), 2),  # type: ignore[arg-type]
        (discord.ConnectionClosed(_Socket(4010), shard_id=None, code=4010), 1),  # type: ignore[arg-type]
        (None, 0),
    ],
)
async def test_exit_codes(settings: BotSettings, error: BaseException | None, code: int) -> None:
    fake = FakeBot(error)

    assert await entry.run_discord(settings, stop=asyncio.Event(), bot=fake) == code  # type: ignore[arg-type]
    assert fake.closed


async def test_a_stop_signal_closes_the_bot_and_exits_0(settings: BotSettings) -> None:
    fake = FakeBot(block=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)

    assert await entry.run_discord(settings, stop=stop, bot=fake) == 0  # type: ignore[arg-type]
    assert fake.closed
