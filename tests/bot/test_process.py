"""The bot as a real process: mock mode against a real API process, signals, exit codes."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from coach_plans_bot.parsing import DEFAULT_ROSTER
from tests.conftest import INTERNAL_TOKEN, ServiceProcess, free_port

pytestmark = pytest.mark.slow


def bot_process(api_url: str, tmp_path: Path, **env: str) -> ServiceProcess:
    clean = {
        key: value for key, value in os.environ.items() if key not in ("DISCORD_BOT_TOKEN", "CONFIG_FILE")
    }
    return ServiceProcess(
        [sys.executable, "-m", "coach_plans_bot"],
        {
            **clean,
            "MOCK_MODE": "true",
            "API_BASE_URL": api_url,
            "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
            "OUTBOX_PATH": str(tmp_path / "outbox.db"),
            **env,
        },
        tmp_path / "bot.log",
    )


def delivered(outbox: Path) -> int:
    """Entries of the bot's outbox the API has acknowledged (0 before the bot creates it)."""
    if not outbox.exists():
        return 0
    with contextlib.closing(sqlite3.connect(outbox, timeout=5)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()[0])
        except sqlite3.OperationalError as exc:  # the file is there, its tables not yet
            if "no such table" in str(exc):
                return 0
            raise


def all_delivered(outbox: Path) -> bool:
    return delivered(outbox) == len(DEFAULT_ROSTER)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_mock_mode_end_to_end(
    start_api: Callable[..., ServiceProcess], tmp_path: Path, stop_signal: int
) -> None:
    api = start_api()
    bot = bot_process(api.url, tmp_path).start(wait_path=None)
    try:

        def four_plans_today() -> bool:
            response = httpx.get(f"{api.url}/api/coach-plans/all", timeout=2)
            return response.status_code == 200 and len(response.json()) == 4

        wait_until(four_plans_today)
        wait_until(lambda: httpx.get(f"{api.url}/health", timeout=2).json()["bot_connected"])
        plan = httpx.get(f"{api.url}/api/coach-plans/", params={"coach": "d"}, timeout=2).json()
        assert "NVDA" in plan["plan"]
        # Served by the bot; this API's CHART_ALLOWED_HOSTS (the default) keeps the original URL.
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/mock-charts/coach_d_1\.png", plan["charts"][0])
        assert bot.process is not None
        assert bot.process.poll() is None
    finally:
        code = bot.stop(stop_signal)
    assert code == 0, bot.logs()
    assert "MOCK MODE" in bot.logs()
    assert INTERNAL_TOKEN not in bot.logs()


def test_a_mock_bot_restarted_with_a_new_outbox_posts_the_same_messages_again(
    start_api: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Its charts' URLs hold their port: a port of its own keeps the re-posts no-ops, where a
    random port made each restart an edit of every plan."""
    api = start_api()
    port = str(free_port())
    for outbox in (tmp_path / "first.db", tmp_path / "second.db"):
        bot = bot_process(api.url, tmp_path, OUTBOX_PATH=str(outbox), MOCK_CHART_PORT=port)
        bot.start(wait_path=None)
        try:
            wait_until(functools.partial(all_delivered, outbox))
        finally:
            assert bot.stop() == 0, bot.logs()
    for plan in httpx.get(f"{api.url}/api/v1/plans", timeout=5).json()["items"]:
        revisions = httpx.get(f"{api.url}/api/v1/plans/{plan['id']}/revisions", timeout=5).json()["revisions"]
        assert [r["action"] for r in revisions] == ["create"], revisions


def test_mock_mode_with_the_api_down_queues_and_keeps_running(tmp_path: Path) -> None:
    bot = bot_process("http://127.0.0.1:9", tmp_path).start(wait_path=None)
    try:
        wait_until(lambda: bot.logs().count("queued (outbox #") == 4)
        assert bot.process is not None
        assert bot.process.poll() is None
    finally:
        code = bot.stop(signal.SIGTERM)
    assert code == 0, bot.logs()
