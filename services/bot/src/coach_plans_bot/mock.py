"""Mock mode (SPEC 4.4): no Discord; simulated posts go through the same outbox and HTTP path."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
from collections.abc import Callable, Sequence
from types import TracebackType

import discord
import httpx

from coach_plans_bot.backoff import Sleep
from coach_plans_bot.config import BotSettings
from coach_plans_bot.core import Actor, BotCore
from coach_plans_bot.outbox import OutboxEntry, Status
from coach_plans_bot.parsing import Attachment, Coach, parse_plan_args, select_charts

log = logging.getLogger(__name__)

MOCK_CHART_BASE = "https://cdn.example.com/charts"
MOCK_USER_ID_BASE = 900_000_000_000_000_000

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


class MockDataProvider:
    """Realistic plan texts and chart URLs for simulated posts."""

    def plan_text(self, coach: Coach, day: dt.date) -> str:
        """An NVDA-style plan in the coach's style (technical, fundamental, sentiment, macro)."""
        template = _PLAN_TEMPLATES.get(coach.coach, _GENERIC_TEMPLATE)
        return f"[{coach.name}] " + template.format(day=day.isoformat())

    def chart_urls(self, coach: Coach, count: int = 2) -> list[str]:
        """`https://cdn.example.com/charts/coach_d_1.png`, …"""
        return [f"{MOCK_CHART_BASE}/{coach.coach}_{n}.png" for n in range(1, count + 1)]

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
        log.warning(
            "MOCK MODE: no Discord connection; simulated plans go to %s",
            self.settings.api_base_url,
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
