"""Mock mode: simulated posts through the same outbox and internal HTTP path."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import socket
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from coach_plans_bot import __main__ as entry
from coach_plans_bot.config import BotSettings
from coach_plans_bot.mock import (
    MockChartServer,
    MockDataProvider,
    MockDiscordBot,
    chart_png,
    chart_server_address,
)
from coach_plans_bot.outbox import Status
from coach_plans_bot.parsing import DEFAULT_ROSTER
from tests.bot.conftest import NOW, TODAY, Sleeps, SwitchableTransport, eventually


@pytest.fixture
def mock_settings(bot_settings: BotSettings) -> BotSettings:
    return bot_settings.model_copy(update={"mock_mode": True, "discord_bot_token": None})


@pytest.fixture
async def mock_bot(
    mock_settings: BotSettings, api_transport: SwitchableTransport
) -> AsyncIterator[MockDiscordBot]:
    bot = MockDiscordBot(mock_settings, transport=api_transport, sleep=Sleeps(), now=lambda: NOW)
    yield bot
    await bot.close()


async def today_plans(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.get("/api/v1/plans", params={"date": TODAY})).json()["items"]
    return items


async def test_start_posts_one_realistic_plan_per_coach_for_today(
    mock_bot: MockDiscordBot,
    api_reader: httpx.AsyncClient,
    api_transport: SwitchableTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="coach_plans_bot"):
        entries = await mock_bot.start()

    assert [entry.status for entry in entries] == [Status.DELIVERED] * 4
    plans = {plan["coach"]: plan for plan in await today_plans(api_reader)}
    assert sorted(plans) == ["coach_d", "coach_i", "coach_n", "coach_s"]
    assert "NVDA" in plans["coach_d"]["plan"]
    # The charts are served by the mock bot itself, under a name the API can reach it by.
    base = mock_bot.provider.chart_base
    assert re.fullmatch(rf"http://{re.escape(socket.gethostname())}:\d+/mock-charts", base)
    urls = [chart["url"] for chart in plans["coach_d"]["charts"]]
    assert urls == [f"{base}/coach_d_1.png", f"{base}/coach_d_2.png"]
    port = base.split(":")[2].split("/")[0]
    async with httpx.AsyncClient() as client:
        image = await client.get(f"http://127.0.0.1:{port}/mock-charts/coach_d_1.png")
    assert image.headers["content-type"] == "image/png"
    assert image.content == chart_png("coach_d_1")
    assert "MOCK MODE" in caplog.text
    # Same internal HTTP path as the Discord bot: PUT /internal/plans/{coach}/{date}.
    assert ("PUT", f"/internal/plans/coach_d/{TODAY}") in api_transport.writes()

    async def heartbeat_seen() -> bool:
        return ("POST", "/internal/bot/heartbeat") in api_transport.requests

    async def bot_connected() -> bool:  # the heartbeat is seen when sent, stored a moment later
        connected: bool = (await api_reader.get("/health")).json()["bot_connected"]
        return connected

    await eventually(heartbeat_seen)
    await eventually(bot_connected)


async def test_a_restarted_mock_bot_stores_nothing_twice(
    mock_settings: BotSettings,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
) -> None:
    # MOCK_DAYS=2: today and yesterday; each (coach, day) is one simulated message with a stable id.
    settings = mock_settings.model_copy(update={"mock_days": 2})
    for _ in range(2):
        async with MockDiscordBot(settings, transport=api_transport, sleep=Sleeps(), now=lambda: NOW) as bot:
            entries = await bot.start()
            assert len(entries) == 8
            assert all(entry.status is Status.DELIVERED for entry in entries)

    response = await api_reader.get("/api/v1/plans", params={"from": "2026-11-24", "to": TODAY})
    plans = response.json()["items"]
    assert sorted({plan["date"] for plan in plans}) == ["2026-11-24", TODAY]
    assert len(plans) == 8
    for plan in plans:
        revisions = (await api_reader.get(f"/api/v1/plans/{plan['id']}/revisions")).json()["revisions"]
        assert len(revisions) == 1  # the second start re-posted the same messages: no-ops


async def test_simulated_posts_are_queued_while_the_api_is_down(
    mock_bot: MockDiscordBot, api_transport: SwitchableTransport, api_reader: httpx.AsyncClient
) -> None:
    api_transport.down = True
    await mock_bot.open()
    entry = await mock_bot.simulate_plan_post("d", "NVDA above 950 (queued)")
    assert entry.status is Status.PENDING

    api_transport.down = False
    await mock_bot.core.outbox.flush(force=True)

    [plan] = await today_plans(api_reader)
    assert plan["plan"] == "NVDA above 950 (queued)"


async def test_simulate_multiple_posts_for_several_days(
    mock_bot: MockDiscordBot, api_reader: httpx.AsyncClient
) -> None:
    await mock_bot.open()
    days = [dt.date(2026, 11, 24), dt.date(2026, 11, 25)]
    entries = await mock_bot.simulate_multiple_posts(days=days)

    assert len(entries) == 8
    response = await api_reader.get("/api/v1/plans", params={"from": "2026-11-24", "to": TODAY})
    assert len(response.json()["items"]) == 8


async def test_a_wrong_service_token_keeps_plans_queued_not_dropped(
    mock_bot: MockDiscordBot, api_reader: httpx.AsyncClient
) -> None:
    await mock_bot.open()
    entry = await mock_bot.simulate_plan_post(
        "d", "x", charts=MockDataProvider().charts(DEFAULT_ROSTER[0], 1)
    )
    assert entry.status is Status.DELIVERED
    mock_bot.core.api._auth = {"Authorization": "Bearer wrong"}

    refused = await mock_bot.simulate_plan_post("i", "text")

    assert refused.status is Status.PENDING
    assert refused.last_error is not None
    assert "401" in refused.last_error
    assert len(await today_plans(api_reader)) == 1


def test_mock_data_is_per_coach() -> None:
    provider = MockDataProvider()
    texts = {provider.plan_text(coach, NOW.date()) for coach in DEFAULT_ROSTER}

    assert len(texts) == 4
    assert all("NVDA" in text and TODAY in text for text in texts)
    assert provider.chart_urls(DEFAULT_ROSTER[3], 1) == ["https://cdn.example.com/charts/coach_n_1.png"]


async def test_mock_bot_needs_start_before_use(mock_settings: BotSettings) -> None:
    bot = MockDiscordBot(mock_settings)
    with pytest.raises(RuntimeError, match="not started"):
        _ = bot.core


async def test_run_mock_until_stopped(
    mock_settings: BotSettings,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_init = MockDiscordBot.__init__

    def init(self: MockDiscordBot, settings: BotSettings, **kwargs: Any) -> None:
        real_init(self, settings, transport=api_transport, sleep=Sleeps(), now=lambda: NOW)

    monkeypatch.setattr(MockDiscordBot, "__init__", init)
    stop = asyncio.Event()
    task = asyncio.create_task(entry.run_mock(mock_settings, stop))

    async def four_plans() -> bool:
        return len(await today_plans(api_reader)) == 4

    await eventually(four_plans)
    stop.set()

    assert await task == 0


def png_header_and_pixels(data: bytes) -> tuple[tuple[int, ...], bytes]:
    """(IHDR fields, decompressed pixel rows), checking every chunk's CRC on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = body
        offset += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    return struct.unpack(">IIBBBBB", chunks[b"IHDR"]), zlib.decompress(chunks[b"IDAT"])


def test_mock_charts_are_valid_pngs_that_differ_per_chart() -> None:
    header, pixels = png_header_and_pixels(chart_png("coach_d_1"))
    width, height, depth, colour, *_ = header
    assert (width, height, depth, colour) == (480, 270, 8, 2)  # 8-bit RGB
    assert len(pixels) == height * (1 + 3 * width)
    assert len(set(pixels)) > 4  # a picture, not a blank
    assert chart_png("coach_d_1") == chart_png("coach_d_1")
    assert chart_png("coach_d_1") != chart_png("coach_d_2")
    assert len(chart_png("coach_n_2")) < 20_000


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("http://127.0.0.1:5000", ("127.0.0.1", "127.0.0.1")),
        ("http://localhost:5000", ("127.0.0.1", "127.0.0.1")),
        ("http://[::1]:5000", ("127.0.0.1", "127.0.0.1")),
        ("http://api:5000", ("0.0.0.0", socket.gethostname())),
        ("http://10.1.2.3:5000", ("0.0.0.0", socket.gethostname())),
    ],
)
def test_chart_server_listens_where_the_api_can_reach_it(api_url: str, expected: tuple[str, str]) -> None:
    assert chart_server_address(api_url) == expected


async def test_chart_server_serves_only_chart_names() -> None:
    server = MockChartServer("127.0.0.1", "127.0.0.1")
    base = await server.start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/coach_s_2.png")).content == chart_png("coach_s_2")
            for name in ("../etc/passwd", "coach_s_0.png", "coach_s_1.gif", "x" * 60 + "_1.png"):
                assert (await client.get(f"{base}/{name}")).status_code == 404, name
    finally:
        await server.close()
    await server.close()  # closing twice is harmless


async def test_chart_server_takes_its_port_or_says_why_it_took_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MockChartServer("127.0.0.1", "127.0.0.1", port)
        try:
            base = await server.start()
        finally:
            await server.close()
    assert base != f"http://127.0.0.1:{port}/mock-charts"
    assert f"port {port} is not free" in caplog.text
    assert "MOCK_CHART_PORT" in caplog.text
    server = MockChartServer("127.0.0.1", "127.0.0.1", port)  # free again
    try:
        assert await server.start() == f"http://127.0.0.1:{port}/mock-charts"
    finally:
        await server.close()
