"""A Discord user cannot forge a line of the bot's log: the bot process, the Discord double, a real API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, REPO, ServiceProcess
from tests.discord_double import DiscordDouble, Member

pytestmark = pytest.mark.slow

TEXT_RECORD = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
FORGED = "2026-11-30 12:00:00,000 INFO coach_plans_bot.outbox: outbox: put_plan #99 delivered"
# A display name and a plan text with what some log readers take for a line end, and a
# terminal escape that would wipe the line on screen.
NAME = f"Dan\r\n{FORGED}\u2028{FORGED}\x85x"
TEXT = f"\x1b[2K\x1b[1GNVDA above 950\r\n{FORGED}"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_display_name_or_plan_text_cannot_forge_a_bot_log_line(
    start_api: Callable[..., ServiceProcess], tmp_path: Path, log_format: str
) -> None:
    api = start_api(CHART_ARCHIVER="false")
    double = await DiscordDouble().start()
    double.members[0] = Member(double.members[0].id, NAME)
    log_file = tmp_path / f"bot-{log_format}.log"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "MOCK_MODE")},
        **double.discord_env(),
        "DISCORD_BOT_TOKEN": double.token,
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "API_BASE_URL": api.url,
        "OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "LOG_FORMAT": log_format,
        "LOG_FILE": str(log_file),
    }
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.discord_double.launch", env=env, cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await double.wait_ready(seconds=30)
        await double.post(f"!plan d 2026-12-09: {TEXT}", author=double.members[0])
        await double.wait_until(lambda: len(double.bot_messages()) >= 1, seconds=30)
    finally:
        bot.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await bot.wait()
        await double.stop()
    assert double.bot_messages()[0].startswith("✅"), double.bot_messages()
    async with httpx.AsyncClient(base_url=api.url) as client:
        stored = (await client.get("/api/coach-plans/", params={"coach": "d", "date": "2026-12-09"})).json()
    assert stored["plan"] == TEXT  # stored as posted: only the log escapes it

    text = log_file.read_text(encoding="utf-8")
    lines = text.splitlines()  # splits on \r, \x85, \u2028 ... as some readers do
    assert lines == text.split("\n")[:-1], "only real record ends break lines"
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", text)
    if log_format == "json":
        messages = [json.loads(line)["message"] for line in lines]
    else:
        assert all(TEXT_RECORD.match(line) for line in lines), text
        messages = [line.split(": ", 1)[1] for line in lines]
    [command] = [m for m in messages if m.startswith("command plan by ")]
    assert command.startswith("command plan by Dan\\x0d\\x0a2026-11-30 12:00:00,000 INFO ")
    assert "\\u20282026-11-30" in command
    assert "\\x85x (" in command
    # The preview puts the plan on one line; the escape sequence is shown, not executed.
    assert ": !plan d 2026-12-09: \\x1b[2K\\x1b[1GNVDA above 950 2026-11-30 12:00:00,000 INFO" in command
    assert not any(m.startswith("outbox: put_plan #99") for m in messages)
