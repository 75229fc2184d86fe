"""Both services, run as real processes, write the same log format."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import INTERNAL_TOKEN, ServiceProcess

pytestmark = pytest.mark.slow

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")
TEXT_RECORD = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)


def start_mock_bot(api: ServiceProcess, tmp_path: Path, log_format: str) -> ServiceProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "CONFIG_FILE"},
        "MOCK_MODE": "true",
        "API_BASE_URL": api.url,
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "LOG_FORMAT": log_format,
        "LOG_FILE": str(tmp_path / f"bot-{log_format}.log"),
    }
    return ServiceProcess([sys.executable, "-m", "coach_plans_bot"], env, tmp_path / "bot.out").start(None)


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_api_and_the_bot_write_the_same_log_format(
    start_api: Callable[..., ServiceProcess], tmp_path: Path, log_format: str
) -> None:
    api_log, bot_log = tmp_path / f"api-{log_format}.log", tmp_path / f"bot-{log_format}.log"
    api = start_api(LOG_FORMAT=log_format, LOG_FILE=str(api_log), CHART_ARCHIVER="false")
    bot = start_mock_bot(api, tmp_path, log_format)
    wait_for(lambda: bot_log.exists() and bot_log.read_text(encoding="utf-8").count("MOCK MODE: plan") >= 4)
    assert bot.stop() == 0
    api.stop()

    services = {"api": api_log.read_text(encoding="utf-8"), "bot": bot_log.read_text(encoding="utf-8")}
    shapes: dict[str, set[tuple[str, ...]]] = {}
    for name, text in services.items():
        lines = text.splitlines()
        assert len(lines) >= 4, text
        if log_format == "text":
            assert all(TEXT_RECORD.match(line) for line in lines), text
            continue
        entries = [json.loads(line) for line in lines]
        assert all(ISO_UTC.match(entry["time"]) for entry in entries)
        shapes[name] = {tuple(entry) for entry in entries}
    if log_format == "json":
        assert shapes["api"] == shapes["bot"] == {("time", "level", "logger", "message")}
    assert '"logger": "coach_plans_bot' in services["bot"] or " coach_plans_bot" in services["bot"]
