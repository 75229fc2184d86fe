"""Mock mode: no Discord; simulated posts go through the same outbox and HTTP path.

The simulated charts are real PNG images that the mock bot serves over HTTP, so the API archives
them exactly as it archives Discord attachments (when CHART_ALLOWED_HOSTS lists the mock's host).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import itertools
import logging
import random
import re
import socket
import struct
import zlib
from collections.abc import Callable, Sequence
from types import TracebackType
from urllib.parse import urlsplit

import discord
import httpx
from aiohttp import web

from coach_plans_bot.backoff import Sleep
from coach_plans_bot.config import BotSettings
from coach_plans_bot.core import Actor, BotCore
from coach_plans_bot.outbox import OutboxEntry, Status
from coach_plans_bot.parsing import Attachment, Coach, parse_plan_args, select_charts

log = logging.getLogger(__name__)

# Until the chart server runs (e.g. a provider used on its own), URLs point here.
MOCK_CHART_BASE = "https://cdn.example.com/charts"
MOCK_CHART_PATH = "/mock-charts"
MOCK_USER_ID_BASE = 900_000_000_000_000_000
_CHART_NAME = re.compile(r"[a-z0-9_]{1,40}_[1-9]\.png")

_PLAN_TEMPLATES: dict[str, str] = {
    "coach_d": (
        "NVDA technical plan for {day}: long above 950 (reclaim of yesterday's high), "
        "targets 968 and 985, stop 938 under the VWAP shelf. 20-day EMA rising, RSI 61. "
        "AMD: watch 165 breakout on volume; fade below 158. SPY gap-fill to 521 first."
    ),
    "coach_i": (
        "Fundamentals for {day}: NVDA data-center revenue guide +18% q/q, gross margin 75%; "
        "forward P/E 38 vs 5-year median 45, so pullbacks toward 930 are buys. "
        "MSFT capex commentary supports AI demand; trim AVGO into earnings."
    ),
    "coach_s": (
        "Sentiment check {day}: NVDA call/put ratio 2.1, heavy 1000-strike open interest, "
        "retail flows elevated — expect a squeeze attempt early, then chop. "
        "Social volume on SMCI fading; VIX 13.2, complacent but no divergence yet."
    ),
    "coach_n": (
        "Macro for {day}: CPI at 8:30 ET, consensus 0.2% m/m core; 10-year at 4.28%. "
        "A soft print helps semis (NVDA, AMD) and small caps; a hot print favours USD "
        "and energy. FOMC minutes at 14:00 ET — keep size small into the release."
    ),
}
_GENERIC_TEMPLATE = (
    "Plan for {day}: NVDA long above 950, targets 968/985, stop 938. "
    "Stay patient at the open; size down ahead of the 14:00 ET data."
)


def daily_message_id(day: dt.date, coach_index: int) -> int:
    """The Discord-like id of a coach's simulated post of a day: noon UTC, plus the coach."""
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    return discord.utils.time_snowflake(noon) + coach_index + 1


def _png(*, width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """RGB rows as a PNG file (8-bit truecolour, no filter)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@functools.lru_cache(maxsize=64)
def chart_png(seed: str, *, width: int = 480, height: int = 270) -> bytes:
    """A candlestick chart on a grid as PNG bytes: the same picture for the same seed."""
    background, grid, up, down = b"\x16\x18\x1d", b"\x2a\x2e\x36", b"\x26\xa6\x9a", b"\xef\x53\x50"
    rows = [bytearray(background * width) for _ in range(height)]
    for y in range(0, height, 45):
        rows[y][:] = grid * width
    for row in rows:
        for x in range(0, width, 60):
            row[3 * x : 3 * x + 3] = grid
    rng = random.Random(seed)
    candles, price = [], 100.0
    for _ in range(width // 12):
        close = price * (1 + rng.gauss(0.001, 0.012))
        wick = abs(close - price) + price * abs(rng.gauss(0, 0.006))
        candles.append((price, close, max(price, close) + wick / 2, min(price, close) - wick / 2))
        price = close
    top, bottom = max(c[2] for c in candles), min(c[3] for c in candles)

    def y_of(value: float) -> int:
        return int(10 + (top - value) / (top - bottom) * (height - 20))

    for n, (open_, close, high, low) in enumerate(candles):
        colour = up if close >= open_ else down
        left = 4 + 12 * n
        for y in range(y_of(high), y_of(low) + 1):
            rows[y][3 * (left + 3) : 3 * (left + 4)] = colour
        for y in range(y_of(max(open_, close)), y_of(min(open_, close)) + 1):
            rows[y][3 * left : 3 * (left + 8)] = colour * 8
    return _png(width=width, height=height, rows=[bytes(row) for row in rows])


def chart_server_address(api_base_url: str) -> tuple[str, str]:
    """(address to listen on, host the API reaches it by), judged by where the API is.

    An API on this machine reaches the charts on 127.0.0.1; an API elsewhere (compose's `api`)
    by this host's name, which compose sets to the service name `bot`.
    """
    host = urlsplit(api_base_url).hostname or "localhost"
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return ("127.0.0.1", "127.0.0.1") if local else ("0.0.0.0", socket.gethostname())


class MockChartServer:
    """Serves the mock charts over HTTP, so they reach the API's chart archiver like attachments."""

    def __init__(self, listen: str, advertised: str, port: int = 0) -> None:
        self.listen = listen
        self.advertised = advertised
        self.port = port
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen on `port` (a free one if 0 or taken); returns the base URL of the charts."""
        app = web.Application()
        app.router.add_get(MOCK_CHART_PATH + "/{name}", self._chart)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.listen, self.port).start()
        except OSError as exc:
            log.warning(
                "mock charts: port %s is not free (%s); serving them on another, so the plans this"
                " bot posted before come back as edits (set MOCK_CHART_PORT to keep them the same)",
                self.port,
                exc.strerror,
            )
            await web.TCPSite(self._runner, self.listen, 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.advertised}:{port}{MOCK_CHART_PATH}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @staticmethod
    async def _chart(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _CHART_NAME.fullmatch(name):
            raise web.HTTPNotFound
        return web.Response(body=chart_png(name.removesuffix(".png")), content_type="image/png")


class MockDataProvider:
    """Realistic plan texts and chart URLs for simulated posts."""

    def __init__(self, chart_base: str = MOCK_CHART_BASE) -> None:
        self.chart_base = chart_base

    def plan_text(self, coach: Coach, day: dt.date) -> str:
        """An NVDA-style plan in the coach's style (technical, fundamental, sentiment, macro)."""
        template = _PLAN_TEMPLATES.get(coach.coach, _GENERIC_TEMPLATE)
        return f"[{coach.name}] " + template.format(day=day.isoformat())

    def chart_urls(self, coach: Coach, count: int = 2) -> list[str]:
        """`<chart_base>/coach_d_1.png`, …"""
        return [f"{self.chart_base}/{coach.coach}_{n}.png" for n in range(1, count + 1)]

    def charts(self, coach: Coach, count: int = 2) -> list[Attachment]:
        """The mock charts as attachments."""
        return [
            Attachment(url=url, filename=url.rsplit("/", 1)[-1], content_type="image/png")
            for url in self.chart_urls(coach, count)
        ]

    def author(self, coach: Coach, index: int) -> Actor:
        """A stable fake Discord user per coach (so a restart replaces, never conflicts)."""
        return Actor(user_id=MOCK_USER_ID_BASE + index + 1, display_name=f"{coach.name} (mock)")


class MockDiscordBot:
    """A simulated bot: posts plans through the real outbox and internal HTTP API."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], dt.datetime] | None = None,
        provider: MockDataProvider | None = None,
    ) -> None:
        self.settings = settings
        self.provider = provider or MockDataProvider()
        self._transport = transport
        self._sleep = sleep
        self._now = now
        self._core: BotCore | None = None
        self._charts: MockChartServer | None = None
        self._message_ids = itertools.count(discord.utils.time_snowflake(dt.datetime.now(dt.UTC)))

    @property
    def core(self) -> BotCore:
        """The shared resources, available once started."""
        if self._core is None:
            raise RuntimeError("the mock bot is not started")
        return self._core

    async def __aenter__(self) -> MockDiscordBot:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the HTTP client and outbox (no Discord connection in mock mode)."""
        if self._core is None:
            self._core = await BotCore.open(
                self.settings, transport=self._transport, sleep=self._sleep, now=self._now
            )

    async def start(self, *, post_today: bool = True) -> list[OutboxEntry]:
        """Start heartbeat and delivery; post one plan per coach for today (and MOCK_DAYS-1 days before)."""
        await self.open()
        if self._charts is None:
            self._charts = MockChartServer(
                *chart_server_address(self.settings.api_base_url), port=self.settings.mock_chart_port
            )
            self.provider.chart_base = await self._charts.start()
        log.warning(
            "MOCK MODE: no Discord connection; simulated plans go to %s, their charts are served at %s/"
            " (the API archives them when CHART_ALLOWED_HOSTS lists %s)",
            self.settings.api_base_url,
            self.provider.chart_base,
            self._charts.advertised,
        )
        self.core.start_background(connected=lambda: True, on_settled=self._log_settled)
        if not post_today:
            return []
        today = self.core.today()
        days = [today - dt.timedelta(days=back) for back in range(self.settings.mock_days - 1, -1, -1)]
        return await self.simulate_multiple_posts(days=days)

    async def close(self) -> None:
        """Stop background work and close the HTTP client and outbox."""
        if self._core is not None:
            core, self._core = self._core, None
            await core.send_heartbeat(connected=False)
            await core.aclose()
        if self._charts is not None:
            charts, self._charts = self._charts, None
            await charts.close()

    async def simulate_plan_post(
        self,
        coach: str,
        text: str | None = None,
        *,
        date: dt.date | None = None,
        charts: Sequence[Attachment] | None = None,
        message_id: int | None = None,
    ) -> OutboxEntry:
        """Post `!plan <coach> [date]: <text>` as a simulated coach would, with mock charts."""
        core = self.core
        found = core.roster.resolve(coach)
        index = core.roster.coaches.index(found)
        day = date or core.today()
        body = text if text is not None else self.provider.plan_text(found, day)
        request = parse_plan_args(
            f"{found.key} {day.isoformat()}: {body}", roster=core.roster, today=core.today()
        )
        selection = select_charts(charts if charts is not None else self.provider.charts(found))
        entry = await core.submit_plan(
            coach=request.coach.coach,
            date=request.date,
            text=request.text,
            charts=selection.charts,
            actor=self.provider.author(found, index),
            message_id=message_id if message_id is not None else next(self._message_ids),
            channel="#mock-plans",
            channel_id=None,
        )
        self._log_outcome(entry, f"{found.coach} {day.isoformat()}")
        return entry

    async def simulate_multiple_posts(self, *, days: Sequence[dt.date] | None = None) -> list[OutboxEntry]:
        """One simulated plan per coach of the roster, for each day (default: today).

        Each (coach, day) is one simulated message with a stable id, so posting again (a restart,
        also after a crash with the first posts still queued) stores nothing twice.
        """
        entries = []
        for day in days or [self.core.today()]:
            for index, coach in enumerate(self.core.roster.coaches):
                entries.append(
                    await self.simulate_plan_post(
                        coach.coach, date=day, message_id=daily_message_id(day, index)
                    )
                )
        return entries

    @staticmethod
    def _log_outcome(entry: OutboxEntry, what: str) -> None:
        if entry.status is Status.DELIVERED:
            log.info("MOCK MODE: plan %s stored (outbox #%d)", what, entry.id)
        elif entry.status is Status.PENDING:
            log.warning("MOCK MODE: API unreachable, plan %s queued (outbox #%d)", what, entry.id)
        else:
            log.error("MOCK MODE: plan %s refused: %s", what, entry.last_error)

    async def _log_settled(self, entry: OutboxEntry) -> None:
        self._log_outcome(entry, f"from the queue #{entry.id}")
