"""Connection faults on Discord's wire: drops, RESUME, refused sessions, rate limits, bad tokens.

The bot (object or process) runs the unmodified discord.py client against the Discord double;
plans are read back from a real API process.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import discord.client
import httpx
import pytest

from coach_plans_bot.bot import CoachPlansBot, DiscordUnreachable
from coach_plans_bot.config import BotSettings
from tests.bot.conftest import StartWireBot
from tests.conftest import INTERNAL_TOKEN, REPO, ServiceProcess, free_port
from tests.discord_double import DiscordDouble

pytestmark = pytest.mark.slow


def plans_on(api: ServiceProcess, day: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api.url}/api/v1/plans", params={"date": day}, timeout=5)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_drop_mid_session_is_resumed_and_the_gap_replayed(
    wire_api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    wire = await start_wire_bot(wire_api.url)
    double = discord_double

    await double.drop(4000)  # an error Discord lets clients RESUME after
    await double.post("!plan d 2026-12-20: posted while the bot was reconnecting")
    [reply] = await double.wait_for_bot_messages(1)

    [plan] = plans_on(wire_api, "2026-12-20")
    assert reply.startswith(f"✅ Plan #{plan['id']} saved — Coach D, 2026-12-20")
    assert len(double.identifies) == 1  # the same session, resumed
    assert len(double.resumes) == 1
    assert double.resumes[0]["session_id"] == wire.bot.ws.session_id
    assert wire.bot.watch.failures == 0  # RESUMED cleared the count


async def test_a_refused_resume_starts_a_new_session_and_catches_up_from_history(
    wire_api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    wire = await start_wire_bot(wire_api.url)
    double = discord_double
    hello = await double.post("good morning")  # processed: the channel's catch-up cursor is set

    async def cursor_set() -> bool:
        return (await wire.bot.core.channel_cursors()).get(double.channel_id) == int(hello["id"])

    async with asyncio.timeout(10):
        while not await cursor_set():  # noqa: ASYNC110 - the cursor lives in the bot's outbox file
            await asyncio.sleep(0.01)
    double.refuse_resume = True  # the session is gone: the events of the gap are never replayed
    await double.drop(4000)
    await double.post("!plan i 2026-12-21: posted while the session was lost")
    [summary] = await double.wait_for_bot_messages(1)

    assert summary == "📥 Back online: saved 1 plan posted while the bot was away."
    [plan] = plans_on(wire_api, "2026-12-21")
    assert plan["plan"] == "posted while the session was lost"
    assert len(double.identifies) == 2  # a new session, READY, then the catch-up read the history
    assert any(call.path.endswith("/messages") and "after" in call.query for call in double.calls)


async def test_a_rate_limited_reply_waits_and_is_sent_once(
    wire_api: ServiceProcess, start_wire_bot: StartWireBot, discord_double: DiscordDouble
) -> None:
    await start_wire_bot(wire_api.url)
    double = discord_double
    double.rate_limit("POST", r"/channels/\d+/messages", retry_after=0.2)

    await double.post("!plan s 2026-12-22: rate limited reply")
    [reply] = await double.wait_for_bot_messages(1)

    [plan] = plans_on(wire_api, "2026-12-22")
    assert reply.startswith(f"✅ Plan #{plan['id']} saved — Coach S, 2026-12-22")
    attempts = [c for c in double.calls if c.method == "POST" and c.path.endswith("/messages")]
    assert [c.body["content"] for c in attempts] == [reply, reply]  # 429, then sent after retry_after


class QuickBackoff:
    """discord.py's reconnect backoff (random, up to 2, 4, … 32 s), shortened for the test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def delay(self) -> float:
        return 0.01


async def test_the_gateway_lost_for_good_gives_up_after_5_failed_reconnects(
    wire_api: ServiceProcess,
    start_wire_bot: StartWireBot,
    discord_double: DiscordDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord.client, "ExponentialBackoff", QuickBackoff)
    wire = await start_wire_bot(wire_api.url)
    discord_double.gateway_down = True  # websocket upgrades answered 503 from now on

    await discord_double.drop(4000)
    with pytest.raises(DiscordUnreachable, match="5 reconnect attempts failed"):
        async with asyncio.timeout(20):
            await wire.task

    assert discord_double.connections_opened == 1 + 5  # the first session, then 5 failed reconnects


# --- the bot process: exit codes and the one line it ends with --------------------------------
def bot_env(tmp_path: Path, **env: str) -> dict[str, str]:
    dead = f"http://127.0.0.1:{free_port()}"
    return {
        **{k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "MOCK_MODE")},
        "DISCORD_BOT_TOKEN": "double-bot-token",
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "API_BASE_URL": dead,  # not needed: the bot exits before it writes anything
        "OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "DISCORD_RETRY_BASE_SECONDS": "0.05",
        "COACH_PLANS_TEST_DISCORD_REST": f"{dead}/api/v10",
        "COACH_PLANS_TEST_DISCORD_GATEWAY": f"{dead.replace('http', 'ws')}/gateway/",
        **env,
    }


LAUNCH = [sys.executable, "-m", "tests.discord_double.launch"]


def test_discord_unreachable_at_start_exits_1_after_5_attempts_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        LAUNCH, env=bot_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    attempts = re.findall(r"reconnect attempt (\d)/5 in (\d+\.\d+)s", output)
    assert attempts == [("1", "0.05"), ("2", "0.10"), ("3", "0.20"), ("4", "0.40"), ("5", "0.80")]
    last = output.strip().splitlines()[-1]
    assert "ERROR" in last
    assert "Discord unreachable after 5 reconnect attempts (Cannot connect to host 127.0.0.1:" in last
    assert last.endswith("exiting so the process manager restarts the bot")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("4004", "Discord rejected DISCORD_BOT_TOKEN (gateway close code 4004, authentication failed)"),
        (
            "4014",
            "close code 4014 (disallowed intents): enable the Message Content intent",
        ),
        ("401", "Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized)"),
    ],
)
async def test_a_refused_token_or_intent_exits_2_at_once_saying_what_to_fix(
    discord_double: DiscordDouble, tmp_path: Path, fault: str, message: str
) -> None:
    env = bot_env(tmp_path, **discord_double.discord_env())
    if fault == "401":
        env["DISCORD_BOT_TOKEN"] = "a-token-that-was-reset"
    else:
        discord_double.identify_close_code = int(fault)
    process = await asyncio.create_subprocess_exec(
        *LAUNCH, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(60):
        output = (await process.communicate())[0].decode()

    assert process.returncode == 2, output
    assert message in output
    assert "Traceback" not in output
    assert len(discord_double.identifies) == (0 if fault == "401" else 1)  # no reconnect loop
    assert discord_double.token not in output


async def test_a_start_up_failure_of_the_bot_itself_is_not_taken_for_discord_unreachable(
    discord_double: DiscordDouble, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = BotSettings(
        discord_bot_token=discord_double.token,
        internal_api_token=INTERNAL_TOKEN,
        api_base_url=f"http://127.0.0.1:{free_port()}",
        outbox_path=blocker / "outbox.db",  # cannot be created
    )
    bot = CoachPlansBot(settings)

    with pytest.raises(OSError, match="a-file") as caught:
        await bot.start(discord_double.token)
    await bot.close()

    assert not isinstance(caught.value, DiscordUnreachable)
    assert [call.path for call in discord_double.calls].count("/users/@me") == 1  # not retried


def test_sync_commands_needs_no_internal_token(tmp_path: Path) -> None:
    """It talks to Discord only: a missing INTERNAL_API_TOKEN is no reason to refuse (exit 2)."""
    env = bot_env(tmp_path, MOCK_MODE="false")
    del env["INTERNAL_API_TOKEN"]
    result = subprocess.run(
        [*LAUNCH, "sync-commands"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # Discord unreachable: the address is a dead one
    assert "Discord unreachable" in output
    assert "INTERNAL_API_TOKEN" not in output
