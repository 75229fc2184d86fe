"""The API wrapper and the shared core: roster, error mapping, logging set-up, notices."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import discord.ext.test as dpytest
import httpx
import pytest

from coach_plans_api.config import Settings
from coach_plans_bot import __main__ as entry
from coach_plans_bot.api import ApiProtocolError, ApiRejected, ApiUnavailable, PlansApi
from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.config import BotSettings
from coach_plans_bot.core import BotCore
from coach_plans_common import TextFormatter
from tests.bot.conftest import NOW, Sleeps, SwitchableTransport
from tests.conftest import make_settings


def api_with(handler: Any) -> PlansApi:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://api")
    return PlansApi(client, internal_token="t")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>"), ApiProtocolError),
        (httpx.Response(200, json={"nope": []}), ApiProtocolError),
        (httpx.Response(200, json={"coaches": [{"coach": "coach_d"}]}), ApiProtocolError),
        (httpx.Response(502, text="bad gateway"), ApiUnavailable),
        (httpx.Response(418, json={"error": "teapot", "detail": "no"}), ApiRejected),
    ],
)
async def test_bad_answers_become_typed_errors(response: httpx.Response, error: type) -> None:
    api = api_with(lambda request: response)

    with pytest.raises(error):
        await api.coaches()


async def test_listing_and_history_check_the_body() -> None:
    api = api_with(lambda request: httpx.Response(200, json={"items": [{"id": "x"}]}))
    with pytest.raises(ApiProtocolError):
        await api.list_plans()
    with pytest.raises(ApiProtocolError):
        await api.history(coach="coach_d", days=7)
    api = api_with(lambda request: httpx.Response(200, json=[]))
    with pytest.raises(ApiProtocolError):
        await api.list_plans()


async def test_list_plans_follows_the_cursor() -> None:
    plan = {"id": 1, "coach": "coach_d", "date": "2026-11-25", "plan": "p"}
    pages = iter(
        [
            {"items": [plan, plan], "next_cursor": "c1"},
            {"items": [plan], "next_cursor": None},
        ]
    )
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("cursor"))
        return httpx.Response(200, json=next(pages))

    plans = await api_with(handler).list_plans(limit=2)

    assert len(plans) == 3
    assert seen == [None, "c1"]


@pytest.fixture
def api_settings(database_url: str) -> Settings:
    """The API's roster is configuration: here it has a fifth coach."""
    return make_settings(database_url, coaches="d:Coach D,i:Coach I,s:Coach S,n:Coach N,t:Coach T")


async def test_roster_comes_from_the_api(
    bot_settings: BotSettings, api_transport: SwitchableTransport
) -> None:
    core = await BotCore.open(bot_settings, transport=api_transport, now=lambda: NOW)
    try:
        assert core.roster_from_api
        assert core.roster.resolve("t").name == "Coach T"
    finally:
        await core.aclose()


async def test_roster_falls_back_to_d_i_s_n_and_is_retried_on_heartbeat(
    bot_settings: BotSettings, api_transport: SwitchableTransport
) -> None:
    api_transport.down = True
    core = await BotCore.open(bot_settings, transport=api_transport, sleep=Sleeps(), now=lambda: NOW)
    try:
        assert [coach.key for coach in core.roster.coaches] == ["d", "i", "s", "n"]
        assert not await core.send_heartbeat(connected=True)
        api_transport.down = False
        core.start_background(connected=lambda: True, on_settled=None)
        for _ in range(100):
            if core.roster_from_api:
                break
            await asyncio.sleep(0.01)  # let the heartbeat task run (its own sleep is faked)
        assert core.roster.resolve("t").name == "Coach T"
    finally:
        await core.aclose()


async def test_a_queued_plan_refused_later_is_announced(
    bot: CoachPlansBot, api_transport: SwitchableTransport, api_reader: httpx.AsyncClient
) -> None:
    await dpytest.message("!plan d: Dan's plan", member=0)
    api_transport.down = True
    await dpytest.message("!plan d: Ivy tries while the API is down", member=1)
    dpytest.get_message()
    assert dpytest.get_message().content.startswith("⏳")

    api_transport.down = False
    await bot.core.outbox.flush(force=True)

    assert dpytest.get_message().content.startswith("❌ Queued write (outbox #2) was refused:")


def test_json_logging_to_a_rotating_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "bot.log"
    settings = BotSettings(mock_mode=True, log_format="json", log_file=log_file, log_level="INFO")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        entry.configure_logging(settings)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("coach_plans_bot.test").exception("plan stored")
        for handler in root.handlers:
            handler.flush()
        record = json.loads(log_file.read_text().splitlines()[-1])
        assert (record["level"], record["message"]) == ("ERROR", "plan stored")
        assert "ValueError: boom" in record["exc_info"]
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_text_logging(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        entry.configure_logging(BotSettings(mock_mode=True, log_level="DEBUG"))
        assert root.level == logging.DEBUG
        assert isinstance(root.handlers[0].formatter, logging.Formatter)
        assert isinstance(root.handlers[0].formatter, TextFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
