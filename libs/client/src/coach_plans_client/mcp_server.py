"""MCP server that lets LLM agents read coach plans, through the public Coach Plans API.

Needs the optional extra (``pip install 'coach-plans-client[mcp]'``); run it as
``coach-plans-mcp [--transport stdio|streamable-http] [--api-url URL]``.

Resources: ``coach-plans://plans/{date}`` (every coach's plan of a day) and
``coach-plans://tickers/{ticker}`` (plans mentioning a ticker, last 30 days).
Tools: ``get_coach_plan``, ``search_plans`` (by ticker), ``search_text`` (full text),
``get_levels`` (a ticker's price levels of a day), ``list_coaches``.

``mcp`` is imported only inside :func:`create_server` and the functions it calls, so this
module (and the rest of the package) imports without the extra and ``coach-plans-mcp`` can say
what is missing.
"""

# No ``from __future__ import annotations`` here: the tools are closures whose annotations
# (``Context`` is imported inside the functions that add them) must be real objects for the SDK
# to read.

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ._base import (
    DEFAULT_BASE_URL,
    DEFAULT_PLAN_TIMEZONE,
    NoSuchDay,
    as_date,
    newest_first,
    normalise_ticker,
)
from ._client import AsyncCoachPlansClient
from ._errors import (
    BadRequestError,
    CoachPlansError,
    ConnectionError,
    RateLimitError,
    TimeoutError,
)
from ._legacy import normalise_coach
from ._models import Coach, Plan, SearchHit, TickerLevels

if sys.version_info >= (3, 12):
    from typing import TypedDict
else:
    # pydantic (which builds the tools' schemas) needs this TypedDict before Python 3.12.
    from typing_extensions import TypedDict

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

__all__ = ["API_URL_ENV", "DEFAULT_TICKER_DAYS", "MAX_DAYS", "create_server", "main"]

API_URL_ENV = "COACH_PLANS_API_URL"
TIMEZONE_ENV = "PLAN_TIMEZONE"
DEFAULT_TICKER_DAYS = 30
MAX_DAYS = 365
DEFAULT_SEARCH_HITS = 10
MAX_SEARCH_HITS = 50
INSTALL_HINT = "the MCP server needs the optional 'mcp' extra: pip install 'coach-plans-client[mcp]'"

INSTRUCTIONS = """\
Coach Plans: the daily trading plans that four coaches post before the market opens
(coach_d technical, coach_i fundamental, coach_s sentiment, coach_n macro; list_coaches gives
the roster). Dates are YYYY-MM-DD in the market time zone (America/New_York); "today" works too.
- One ticker: search_plans(ticker="NVDA", days=30) -> plans mentioning it, newest first.
- A ticker's levels: get_levels(ticker="NVDA", date="today") -> per coach, bias and levels.
- Words or phrases: search_text(query="vwap reclaim", coach=None, date_from=None, date_to=None)
  -> best matches first, each with a snippet whose matched words are **bold**.
- One coach and day: get_coach_plan(coach="coach_d", date="2026-11-25").
- Resources: coach-plans://plans/{date} (all coaches that day), coach-plans://tickers/{ticker}.
A plan's `plan` is the coach's own text; `charts` are image URLs; `tickers` are the symbols
tagged in it; `levels` are the price levels read from the text per ticker (kind entry, target,
stop, support, resistance, pivot or strike; `text` is the phrase it came from). Levels are read
by rules, not by a person: quote the plan's own words when it matters.
A missing plan is reported as "No plan available for <coach> on <date>".
"""


class LevelJSON(TypedDict):
    """One price level; ``text`` is the phrase of the plan it was read from."""

    kind: str
    condition: str | None
    value: float
    high: float | None
    text: str


class TickerLevelsJSON(TypedDict):
    ticker: str
    bias: str
    levels: list[LevelJSON]


class PlanJSON(TypedDict):
    """A plan as the tools and resources return it."""

    id: int
    coach: str
    coach_name: str | None
    date: str
    plan: str
    tickers: list[str]
    charts: list[str]
    author: str | None
    posted_at: str | None
    edited: bool
    levels: list[TickerLevelsJSON]


class CoachJSON(TypedDict):
    """A coach of the roster: ``coach`` is what the tools accept (``coach_d``; ``d`` works)."""

    coach: str
    key: str
    name: str


class SearchJSON(TypedDict):
    """The answer of ``search_plans`` and of ``coach-plans://tickers/{ticker}``."""

    ticker: str
    date_from: str
    date_to: str
    count: int
    plans: list[PlanJSON]


class CoachLevelsJSON(TypedDict):
    """One coach's take on a ticker that day; ``bias`` is null when the plan gives no levels."""

    coach: str
    coach_name: str | None
    plan_id: int
    bias: str | None
    levels: list[LevelJSON]


class LevelsJSON(TypedDict):
    """The answer of ``get_levels``."""

    ticker: str
    date: str
    coaches: list[CoachLevelsJSON]


class HitJSON(TypedDict):
    """A search hit: the plan, and a snippet with the matched words in **bold**."""

    snippet: str
    score: float
    plan: PlanJSON


class TextSearchJSON(TypedDict):
    """The answer of ``search_text``."""

    query: str
    count: int
    hits: list[HitJSON]


class DayJSON(TypedDict):
    """The content of ``coach-plans://plans/{date}``."""

    date: str
    plans: list[PlanJSON]


class RosterJSON(TypedDict):
    """The answer of ``list_coaches``."""

    coaches: list[CoachJSON]


def levels_json(plan: Plan, levels: TickerLevels) -> list[LevelJSON]:
    return [
        {
            "kind": level.kind,
            "condition": level.condition,
            "value": level.value,
            "high": level.high,
            "text": plan.plan[level.span[0] : level.span[1]],
        }
        for level in levels.levels
    ]


def plan_json(plan: Plan) -> PlanJSON:
    """The agent-facing shape of a plan: flat, JSON types only, charts as URLs."""
    return {
        "id": plan.id,
        "coach": plan.coach,
        "coach_name": plan.coach_display_name,
        "date": plan.date.isoformat(),
        "plan": plan.plan,
        "tickers": list(plan.tickers),
        "charts": [chart.url for chart in sorted(plan.charts, key=lambda chart: chart.order)],
        "author": plan.author,
        "posted_at": plan.created_at.isoformat() if plan.created_at else None,
        "edited": plan.edited,
        "levels": [{"ticker": t.ticker, "bias": t.bias, "levels": levels_json(plan, t)} for t in plan.levels],
    }


def marked_snippet(hit: SearchHit) -> str:
    """The snippet with each highlighted range in **bold** (what a model reads as emphasis)."""
    parts: list[str] = []
    at = 0
    for start, end in sorted(hit.highlights):
        if start < at or end > len(hit.snippet):
            continue  # overlapping or out of range: leave the text as it is
        parts += [hit.snippet[at:start], "**", hit.snippet[start:end], "**"]
        at = end
    return "".join(parts) + hit.snippet[at:]


def coach_levels_json(plan: Plan, ticker: str) -> CoachLevelsJSON:
    found = plan.levels_of(ticker)
    return {
        "coach": plan.coach,
        "coach_name": plan.coach_display_name,
        "plan_id": plan.id,
        "bias": found.bias if found else None,
        "levels": levels_json(plan, found) if found else [],
    }


def coach_json(coach: Coach) -> CoachJSON:
    return {"coach": coach.coach, "key": coach.key, "name": coach.name}


def search_json(ticker: str, *, days: int, last: dt.date, plans: list[Plan]) -> SearchJSON:
    return {
        "ticker": normalise_ticker(ticker),
        "date_from": (last - dt.timedelta(days=days - 1)).isoformat(),
        "date_to": last.isoformat(),
        "count": len(plans),
        "plans": [plan_json(plan) for plan in plans],
    }


def explain(exc: CoachPlansError, api_url: str) -> str:
    """A one-paragraph message an agent (or its human) can act on; never a traceback."""
    if isinstance(exc, ConnectionError):
        reason = "it did not answer in time" if isinstance(exc, TimeoutError) else str(exc.__cause__ or exc)
        return (
            f"The Coach Plans API at {api_url} is unreachable ({reason}). Check that the API is "
            f"running and that --api-url / {API_URL_ENV} point at it, then try again."
        )
    if isinstance(exc, RateLimitError):
        wait = f" Retry in {exc.retry_after:.0f} s." if exc.retry_after is not None else ""
        return f"The Coach Plans API at {api_url} is rate limiting requests.{wait}"
    if isinstance(exc, BadRequestError):
        return f"The Coach Plans API rejected the request: {exc.message}"
    return f"The Coach Plans API at {api_url} failed: {exc.message}"


def parse_day(value: str | None, api: AsyncCoachPlansClient) -> dt.date:
    """``YYYY-MM-DD``, or today (market time zone) for None/""/"today"; ValueError otherwise."""
    if value is None or value.strip().lower() in ("", "today"):
        return api.today()
    try:
        return as_date(value)
    except NoSuchDay:
        raise  # its message says which day does not exist, and why
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD or 'today', got {value!r}") from None


async def plans_of_day(api: AsyncCoachPlansClient, day: dt.date, *, coach: str | None = None) -> list[Plan]:
    """Every plan of one day (one coach's if ``coach``), all pages."""
    return newest_first([plan async for plan in api.aiter_plans(coach=coach, date=day)])


async def plans_of_day_for_ticker(api: AsyncCoachPlansClient, day: dt.date, ticker: str) -> list[Plan]:
    """Every plan of one day that mentions ``ticker``, all pages, by coach name."""
    plans = [plan async for plan in api.aiter_plans(date=day, ticker=ticker)]
    return sorted(plans, key=lambda plan: plan.coach)


def create_server(
    api_url: str | None = None,
    *,
    http_client: httpx.AsyncClient | None = None,
    timeout: float | None = None,
    max_retries: int = 2,
    plan_timezone: str = DEFAULT_PLAN_TIMEZONE,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
) -> "MCPServer[AsyncCoachPlansClient]":
    """The Coach Plans MCP server, reading ``api_url`` (or through an injected ``http_client``).

    Each run of the server (a stdio session, the streamable HTTP app) opens its own
    ``AsyncCoachPlansClient``; an injected ``http_client`` is used as is and never closed.
    Raises ImportError (with the install command) when the ``mcp`` extra is missing.
    """
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc

    from . import __version__

    if api_url is None and http_client is None:
        api_url = DEFAULT_BASE_URL
    shown_url = (api_url or str(http_client.base_url if http_client else "")).rstrip("/")

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AsyncCoachPlansClient]) -> AsyncIterator[AsyncCoachPlansClient]:
        async with AsyncCoachPlansClient(
            api_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            plan_timezone=plan_timezone,
        ) as api:
            yield api

    server: MCPServer[AsyncCoachPlansClient] = MCPServer(
        "coach-plans",
        title="Coach Plans",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level=log_level,
    )
    _add_tools(server, shown_url)
    _add_level_tools(server, shown_url)
    _add_resources(server, shown_url)
    return server


def _tool_error(exc: CoachPlansError | ValueError, api_url: str) -> "ToolError":
    """What a tool tells the agent: a bad argument as it is, an API failure explained for ``api_url``."""
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(str(exc) if isinstance(exc, ValueError) else explain(exc, api_url))


def _read_only() -> "ToolAnnotations":
    from mcp.types import ToolAnnotations

    return ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _add_tools(server: "MCPServer[AsyncCoachPlansClient]", api_url: str) -> None:
    """``get_coach_plan``, ``search_plans`` and ``list_coaches``; errors explained for ``api_url``."""
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError

    read_only = _read_only()

    def tool_error(exc: CoachPlansError | ValueError) -> "ToolError":
        return _tool_error(exc, api_url)

    def check_days(days: int) -> None:
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be 1..{MAX_DAYS}, got {days}")

    @server.tool(annotations=read_only)
    async def get_coach_plan(
        ctx: Context[AsyncCoachPlansClient, Any], coach: str, date: str | None = None
    ) -> PlanJSON:
        """One coach's trading plan for one day.

        coach: "coach_d", "d" or "D" (see list_coaches). date: YYYY-MM-DD or "today"
        (default: today in America/New_York). Fails with "No plan available for <coach> on
        <date>" when the coach posted none that day.
        """
        api = ctx.request_context.lifespan_context
        try:
            if not coach.strip():
                # An empty coach filter would match every coach's plan.
                raise ValueError("coach is required: coach_d, coach_i, ... (see list_coaches)")
            day = parse_day(date, api)
            plans = await plans_of_day(api, day, coach=coach)
        except (CoachPlansError, ValueError) as exc:
            raise tool_error(exc) from None
        if not plans:
            raise ToolError(f"No plan available for {normalise_coach(coach)} on {day.isoformat()}")
        return plan_json(plans[0])

    @server.tool(annotations=read_only)
    async def search_plans(
        ctx: Context[AsyncCoachPlansClient, Any],
        ticker: str,
        days: int = DEFAULT_TICKER_DAYS,
        as_of: str | None = None,
    ) -> SearchJSON:
        """Every coach's plans that mention a ticker, newest first.

        ticker: a symbol such as "NVDA" or "$nvda". days: how far back, 1..365 (default 30),
        counting the last day. as_of: the last day, YYYY-MM-DD (default: today in
        America/New_York; set it to replay a past date). An empty list means no coach
        mentioned the ticker in that window.
        """
        api = ctx.request_context.lifespan_context
        try:
            check_days(days)
            last = parse_day(as_of, api)
            plans = await api.fetch_plans_for_ticker(ticker, days, as_of=last)
        except (CoachPlansError, ValueError) as exc:
            raise tool_error(exc) from None
        return search_json(ticker, days=days, last=last, plans=plans)

    @server.tool(annotations=read_only)
    async def list_coaches(ctx: Context[AsyncCoachPlansClient, Any]) -> RosterJSON:
        """The coach roster: the names get_coach_plan accepts and who each coach is."""
        try:
            coaches = await ctx.request_context.lifespan_context.list_coaches()
        except CoachPlansError as exc:
            raise tool_error(exc) from None
        return {"coaches": [coach_json(coach) for coach in coaches]}


def _add_level_tools(server: "MCPServer[AsyncCoachPlansClient]", api_url: str) -> None:
    """``get_levels`` and ``search_text``: the plans read as data; errors explained for ``api_url``."""
    from mcp.server.mcpserver import Context

    read_only = _read_only()

    def tool_error(exc: CoachPlansError | ValueError) -> "ToolError":
        return _tool_error(exc, api_url)

    @server.tool(annotations=read_only)
    async def get_levels(
        ctx: Context[AsyncCoachPlansClient, Any], ticker: str, date: str | None = None
    ) -> LevelsJSON:
        """A ticker's price levels in each coach's plan of one day.

        ticker: "NVDA" or "$nvda". date: YYYY-MM-DD or "today" (default: today in
        America/New_York). Each coach whose plan mentions the ticker is listed with a bias
        (long, short, neutral; null when the plan names the ticker without levels) and levels
        (kind entry, target, stop, support, resistance, pivot or strike; `text` is the phrase of
        the plan it was read from). An empty list means no coach mentioned the ticker that day.
        """
        api = ctx.request_context.lifespan_context
        try:
            symbol = normalise_ticker(ticker)
            day = parse_day(date, api)
            plans = await plans_of_day_for_ticker(api, day, symbol)
        except (CoachPlansError, ValueError) as exc:
            raise tool_error(exc) from None
        return {
            "ticker": symbol,
            "date": day.isoformat(),
            "coaches": [coach_levels_json(plan, symbol) for plan in plans],
        }

    @server.tool(annotations=read_only)
    async def search_text(
        ctx: Context[AsyncCoachPlansClient, Any],
        query: str,
        coach: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int = DEFAULT_SEARCH_HITS,
    ) -> TextSearchJSON:
        """Full-text search over every coach's plans, best match first.

        query: words to find, all required ("vwap reclaim"; "targets" also finds "target").
        coach: only this coach ("coach_d", "d"). date_from / date_to: YYYY-MM-DD bounds.
        limit: 1..50 hits (default 10). Each hit has the plan and a snippet with the matched
        words in **bold**. To search by ticker symbol, search_plans is more precise.
        """
        api = ctx.request_context.lifespan_context
        try:
            if not 1 <= limit <= MAX_SEARCH_HITS:
                raise ValueError(f"limit must be 1..{MAX_SEARCH_HITS}, got {limit}")
            first = parse_day(date_from, api) if date_from else None
            last = parse_day(date_to, api) if date_to else None
            page = await api.search(query, coach=coach or None, date_from=first, date_to=last, limit=limit)
        except (CoachPlansError, ValueError) as exc:
            raise tool_error(exc) from None
        hits: list[HitJSON] = [
            {"snippet": marked_snippet(hit), "score": hit.score, "plan": plan_json(hit.plan)}
            for hit in page.items
        ]
        return {"query": query, "count": len(hits), "hits": hits}


def _add_resources(server: "MCPServer[AsyncCoachPlansClient]", api_url: str) -> None:
    """The plans of a day and of a ticker; errors explained for ``api_url``."""
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ResourceError

    def resource_error(exc: CoachPlansError | ValueError) -> ResourceError:
        return ResourceError(str(exc) if isinstance(exc, ValueError) else explain(exc, api_url))

    @server.resource(
        "coach-plans://plans/{date}",
        name="plans_of_day",
        title="Coach plans of a day",
        description="Every coach's plan of one day (YYYY-MM-DD or 'today'), as JSON.",
        mime_type="application/json",
    )
    async def day_resource(ctx: Context[AsyncCoachPlansClient, Any], date: str) -> str:
        api = ctx.request_context.lifespan_context
        try:
            day = parse_day(date, api)
            plans = await plans_of_day(api, day)
        except (CoachPlansError, ValueError) as exc:
            raise resource_error(exc) from None
        body: DayJSON = {"date": day.isoformat(), "plans": [plan_json(plan) for plan in plans]}
        return json.dumps(body, indent=2, ensure_ascii=False)

    @server.resource(
        "coach-plans://tickers/{ticker}",
        name="plans_of_ticker",
        title="Recent coach plans mentioning a ticker",
        description=f"Plans mentioning a ticker in the last {DEFAULT_TICKER_DAYS} days, newest first (JSON).",
        mime_type="application/json",
    )
    async def ticker_resource(ctx: Context[AsyncCoachPlansClient, Any], ticker: str) -> str:
        api = ctx.request_context.lifespan_context
        last = api.today()
        try:
            plans = await api.fetch_plans_for_ticker(ticker, DEFAULT_TICKER_DAYS, as_of=last)
        except (CoachPlansError, ValueError) as exc:
            raise resource_error(exc) from None
        body = search_json(ticker, days=DEFAULT_TICKER_DAYS, last=last, plans=plans)
        return json.dumps(body, indent=2, ensure_ascii=False)


# -- command line ------------------------------------------------------------------------------


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The ``coach-plans-mcp`` arguments; defaults come from ``environ`` (the process's)."""
    env = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(
        prog="coach-plans-mcp",
        description="MCP server giving LLM agents read access to coach plans via the Coach Plans API.",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "streamable-http"),
        default="stdio",
        help="stdio (an agent host starts this process) or streamable-http (serve at --host:--port)",
    )
    parser.add_argument(
        "--api-url",
        default=env.get(API_URL_ENV) or DEFAULT_BASE_URL,
        help=f"base URL of the Coach Plans API (default: ${API_URL_ENV} or {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http: address to bind")
    parser.add_argument("--port", type=int, default=8000, help="streamable-http: port (default 8000)")
    parser.add_argument("--path", default="/mcp", help="streamable-http: endpoint path (default /mcp)")
    parser.add_argument("--timeout", type=float, default=10.0, help="API request timeout in seconds")
    parser.add_argument(
        "--timezone",
        default=env.get(TIMEZONE_ENV) or DEFAULT_PLAN_TIMEZONE,
        help=f"market time zone for 'today' (default: ${TIMEZONE_ENV} or {DEFAULT_PLAN_TIMEZONE})",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        default="WARNING",
        help="logging on stderr (stdout carries the protocol in stdio mode)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``coach-plans-mcp``."""
    args = build_parser().parse_args(argv)
    try:
        server = create_server(
            args.api_url, timeout=args.timeout, plan_timezone=args.timezone, log_level=args.log_level
        )
    except ImportError as exc:
        sys.stderr.write(f"coach-plans-mcp: {exc}\n")
        return 2
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port, streamable_http_path=args.path)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
