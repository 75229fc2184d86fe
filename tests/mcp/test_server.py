"""The MCP server through the SDK's own client, against the real API app on a fresh database."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, TextResourceContents

from coach_plans_client import AsyncCoachPlansClient
from coach_plans_client.mcp_server import create_server
from tests.conftest import PutPlan

from .conftest import connect

Server = MCPServer[AsyncCoachPlansClient]
DATE = "2025-06-16"  # never "today": the tests put plans on today too
CHARTS = ["https://cdn.discordapp.com/a/1/chart.png", "https://cdn.discordapp.com/a/1/volume.webp"]


def today_ny() -> dt.date:
    return dt.datetime.now(ZoneInfo("America/New_York")).date()


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def ok(result: CallToolResult) -> Any:
    """The tool's JSON answer; the text content and the structured content must agree."""
    assert not result.is_error, text_of(result)
    data = json.loads(text_of(result))
    structured = result.structured_content
    assert structured is not None
    assert structured == data
    return data


def resource_json(contents: list[Any]) -> Any:
    (content,) = contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    return json.loads(content.text)


async def test_lists_its_tools_and_resource_templates(plans_server: Server, mode: str) -> None:
    async with connect(plans_server, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates

    assert set(tools) == {"get_coach_plan", "search_plans", "search_text", "get_levels", "list_coaches"}
    assert tools["get_coach_plan"].input_schema["required"] == ["coach"]
    assert set(tools["search_plans"].input_schema["properties"]) == {"ticker", "days", "as_of"}
    assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools.values())
    assert all(tool.description for tool in tools.values())
    assert {t.uri_template for t in templates} == {
        "coach-plans://plans/{date}",
        "coach-plans://tickers/{ticker}",
    }


async def test_get_coach_plan(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    stored = put_plan("coach_d", DATE, text="$NVDA above 950, $AMD lagging", charts=CHARTS)
    put_plan("coach_i", DATE, text="Accumulate NVDA on pullbacks")

    async with connect(plans_server, mode) as client:
        plan = ok(await client.call_tool("get_coach_plan", {"coach": "d", "date": DATE}))

    posted_at = dt.datetime.fromisoformat(plan.pop("posted_at"))
    assert posted_at == dt.datetime.fromisoformat(stored["created_at"])
    assert plan == {
        "id": stored["id"],
        "coach": "coach_d",
        "coach_name": "Coach D",
        "date": DATE,
        "plan": "$NVDA above 950, $AMD lagging",
        "tickers": ["NVDA", "AMD"],
        "charts": CHARTS,
        "author": "Dan",
        "edited": False,
        "levels": [
            {
                "ticker": "NVDA",
                "bias": "neutral",
                "levels": [
                    {"kind": "entry", "condition": "above", "value": 950.0, "high": None, "text": "above 950"}
                ],
            }
        ],
    }


async def test_get_coach_plan_defaults_to_today_in_new_york(
    plans_server: Server, mode: str, put_plan: PutPlan
) -> None:
    put_plan("coach_n", today_ny().isoformat(), text="Rates first, then $SPY")
    async with connect(plans_server, mode) as client:
        by_default = ok(await client.call_tool("get_coach_plan", {"coach": "coach_n"}))
        by_word = ok(await client.call_tool("get_coach_plan", {"coach": "N", "date": "today"}))
    assert by_default["plan"] == by_word["plan"] == "Rates first, then $SPY"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"coach": "coach_i", "date": DATE}, f"No plan available for coach_i on {DATE}"),
        ({"coach": "I", "date": DATE}, f"No plan available for coach_i on {DATE}"),
        ({"coach": "coach_x", "date": DATE}, "The Coach Plans API rejected the request: HTTP 400"),
        ({"coach": "d", "date": "25/11/2026"}, "date must be YYYY-MM-DD or 'today', got '25/11/2026'"),
        ({"coach": "d", "date": "2026-02-30"}, "2026-02-30 does not exist: February 2026 has 28 days"),
        ({"coach": "d", "date": "2028-02-30"}, "2028-02-30 does not exist: February 2028 has 29 days"),
        ({"coach": " ", "date": DATE}, "coach is required"),
    ],
)
async def test_get_coach_plan_errors_are_tool_errors(
    plans_server: Server, mode: str, put_plan: PutPlan, arguments: dict[str, str], message: str
) -> None:
    put_plan("coach_d", DATE)
    async with connect(plans_server, mode) as client:
        result = await client.call_tool("get_coach_plan", arguments)
    assert result.is_error
    assert message in text_of(result)
    assert "Traceback" not in text_of(result)


async def test_search_plans(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    newest = put_plan("coach_d", DATE, text="$NVDA above 950")
    older = put_plan("coach_s", "2025-06-11", text="NVDA sentiment stretched, QQQ fine")
    put_plan("coach_i", "2025-06-15", text="$AMD only")
    put_plan("coach_n", "2025-04-01", text="NVDA, two months back")

    async with connect(plans_server, mode) as client:
        found = ok(await client.call_tool("search_plans", {"ticker": "$nvda", "days": 30, "as_of": DATE}))
        one_day = ok(await client.call_tool("search_plans", {"ticker": "NVDA", "days": 1, "as_of": DATE}))
        none = ok(await client.call_tool("search_plans", {"ticker": "TSLA", "as_of": DATE}))

    assert [plan["id"] for plan in found["plans"]] == [newest["id"], older["id"]]
    assert found["plans"][1]["tickers"] == ["NVDA", "QQQ"]
    assert (found["ticker"], found["date_from"], found["date_to"]) == ("NVDA", "2025-05-18", DATE)
    assert found["count"] == 2
    assert [plan["id"] for plan in one_day["plans"]] == [newest["id"]]
    assert none == {"ticker": "TSLA", "date_from": "2025-05-18", "date_to": DATE, "count": 0, "plans": []}


async def test_search_plans_defaults_to_the_last_30_days(
    plans_server: Server, mode: str, put_plan: PutPlan
) -> None:
    today = today_ny()
    inside = put_plan("coach_d", (today - dt.timedelta(days=29)).isoformat(), text="$NVDA a while ago")
    put_plan("coach_i", (today - dt.timedelta(days=30)).isoformat(), text="$NVDA too long ago")
    async with connect(plans_server, mode) as client:
        found = ok(await client.call_tool("search_plans", {"ticker": "NVDA"}))
    assert [plan["id"] for plan in found["plans"]] == [inside["id"]]
    assert found["date_to"] == today.isoformat()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"ticker": "NVDA", "days": 0}, "days must be 1..365, got 0"),
        ({"ticker": "NVDA", "days": 366}, "days must be 1..365, got 366"),
        ({"ticker": "NVDA", "as_of": "yesterday"}, "date must be YYYY-MM-DD"),
        ({"ticker": "NVDA", "as_of": "2026-13-01"}, "2026-13-01 does not exist: months run from 01 to 12"),
        ({"ticker": "not a ticker"}, "The Coach Plans API rejected the request: HTTP 422"),
    ],
)
async def test_search_plans_errors_are_tool_errors(
    plans_server: Server, mode: str, api_client: Any, arguments: dict[str, Any], message: str
) -> None:
    async with connect(plans_server, mode) as client:
        result = await client.call_tool("search_plans", arguments)
    assert result.is_error
    assert message in text_of(result)


async def test_get_levels(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    put_plan("coach_d", DATE, text="NVDA long above 950, targets 968/985, stop 938; fade AMD below 158")
    put_plan("coach_s", DATE, text="Watching NVDA into earnings, no levels from me")
    put_plan("coach_i", DATE, text="$AMD only")
    put_plan("coach_n", "2025-06-13", text="NVDA short below 900")

    async with connect(plans_server, mode) as client:
        found = ok(await client.call_tool("get_levels", {"ticker": "$nvda", "date": DATE}))
        none = ok(await client.call_tool("get_levels", {"ticker": "TSLA", "date": DATE}))
        bad = await client.call_tool("get_levels", {"ticker": " ", "date": DATE})

    assert (found["ticker"], found["date"]) == ("NVDA", DATE)
    by_coach = {c["coach"]: c for c in found["coaches"]}
    assert set(by_coach) == {"coach_d", "coach_s"}
    assert by_coach["coach_d"]["bias"] == "long"
    assert [(lv["kind"], lv["value"], lv["text"]) for lv in by_coach["coach_d"]["levels"]] == [
        ("entry", 950.0, "long above 950"),
        ("target", 968.0, "targets 968"),
        ("target", 985.0, "985"),
        ("stop", 938.0, "stop 938"),
    ]
    assert (by_coach["coach_s"]["bias"], by_coach["coach_s"]["levels"]) == (None, [])
    assert none == {"ticker": "TSLA", "date": DATE, "coaches": []}
    assert bad.is_error
    assert "ticker must not be empty" in text_of(bad)


async def test_search_text(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    best = put_plan("coach_d", DATE, text="VWAP reclaim on NVDA, then VWAP reclaim on AMD")
    other = put_plan("coach_i", "2025-06-13", text="NVDA above 950 after a VWAP reclaim")
    put_plan("coach_s", DATE, text="nothing about it")

    async with connect(plans_server, mode) as client:
        found = ok(await client.call_tool("search_text", {"query": "vwap reclaim"}))
        filtered = ok(
            await client.call_tool("search_text", {"query": "reclaim", "coach": "i", "date_to": "2025-06-13"})
        )
        hostile = ok(await client.call_tool("search_text", {"query": '"NEAR( vwap*'}))
        too_many = await client.call_tool("search_text", {"query": "vwap", "limit": 51})

    assert found["count"] == 2
    assert [hit["plan"]["id"] for hit in found["hits"]] == [best["id"], other["id"]]
    assert "**VWAP** **reclaim**" in found["hits"][0]["snippet"]
    assert found["hits"][0]["score"] > found["hits"][1]["score"]
    assert [hit["plan"]["id"] for hit in filtered["hits"]] == [other["id"]]
    assert hostile["count"] == 0
    assert too_many.is_error
    assert "limit must be 1..50" in text_of(too_many)


async def test_list_coaches(plans_server: Server, mode: str) -> None:
    async with connect(plans_server, mode) as client:
        coaches = ok(await client.call_tool("list_coaches", {}))
    assert coaches["coaches"] == [
        {"coach": "coach_d", "key": "d", "name": "Coach D"},
        {"coach": "coach_i", "key": "i", "name": "Coach I"},
        {"coach": "coach_s", "key": "s", "name": "Coach S"},
        {"coach": "coach_n", "key": "n", "name": "Coach N"},
    ]


async def test_day_resource(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    first = put_plan("coach_d", DATE, text="$NVDA above 950")
    second = put_plan("coach_s", DATE, text="Crowd is long $TSLA")
    put_plan("coach_i", "2025-06-15", text="the day before")
    today = put_plan("coach_n", today_ny().isoformat(), text="today's macro")

    async with connect(plans_server, mode) as client:
        day = resource_json((await client.read_resource(f"coach-plans://plans/{DATE}")).contents)
        empty = resource_json((await client.read_resource("coach-plans://plans/2025-06-14")).contents)
        now = resource_json((await client.read_resource("coach-plans://plans/today")).contents)

    assert day["date"] == DATE
    assert [plan["id"] for plan in day["plans"]] == [second["id"], first["id"]]
    assert day["plans"][0]["tickers"] == ["TSLA"]
    assert empty == {"date": "2025-06-14", "plans": []}
    assert now["date"] == today_ny().isoformat()
    assert [plan["id"] for plan in now["plans"]] == [today["id"]]


async def test_day_resource_rejects_a_bad_date(plans_server: Server, mode: str, api_client: Any) -> None:
    async with connect(plans_server, mode) as client:
        with pytest.raises(MCPError, match="date must be YYYY-MM-DD"):
            await client.read_resource("coach-plans://plans/november")
        with pytest.raises(MCPError, match="2026-04-31 does not exist: April 2026 has 30 days"):
            await client.read_resource("coach-plans://plans/2026-04-31")


async def test_ticker_resource(plans_server: Server, mode: str, put_plan: PutPlan) -> None:
    today = today_ny()
    recent = put_plan("coach_d", today.isoformat(), text="$NVDA above 950")
    week_ago = put_plan("coach_i", (today - dt.timedelta(days=7)).isoformat(), text="NVDA earnings")
    put_plan("coach_s", (today - dt.timedelta(days=45)).isoformat(), text="NVDA long ago")

    async with connect(plans_server, mode) as client:
        body = resource_json((await client.read_resource("coach-plans://tickers/nvda")).contents)

    assert body["ticker"] == "NVDA"
    assert body["date_to"] == today.isoformat()
    assert body["date_from"] == (today - dt.timedelta(days=29)).isoformat()
    assert body["count"] == 2
    assert [plan["id"] for plan in body["plans"]] == [recent["id"], week_ago["id"]]


async def test_ticker_resource_reports_api_errors(plans_server: Server, mode: str, api_client: Any) -> None:
    async with connect(plans_server, mode) as client:
        with pytest.raises(MCPError, match="rejected the request: HTTP 422"):
            await client.read_resource("coach-plans://tickers/TOOLONGTICKER")


# -- API down ----------------------------------------------------------------------------------

DOWN = "http://127.0.0.1:9"
UNREACHABLE = f"The Coach Plans API at {DOWN} is unreachable"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_coach_plan", {"coach": "coach_d", "date": DATE}),
        ("search_plans", {"ticker": "NVDA", "days": 7}),
        ("list_coaches", {}),
        ("get_levels", {"ticker": "NVDA"}),
        ("search_text", {"query": "vwap"}),
    ],
)
async def test_tools_report_an_unreachable_api(mode: str, tool: str, arguments: dict[str, Any]) -> None:
    server = create_server(DOWN, max_retries=0, timeout=2)
    async with connect(server, mode) as client:
        result = await client.call_tool(tool, arguments)
        assert result.is_error
        text = text_of(result)
        assert UNREACHABLE in text
        assert "COACH_PLANS_API_URL" in text
        assert "Traceback" not in text
        # The server survives the failure and keeps answering.
        assert len((await client.list_tools()).tools) == 5


@pytest.mark.parametrize("uri", [f"coach-plans://plans/{DATE}", "coach-plans://tickers/NVDA"])
async def test_resources_report_an_unreachable_api(mode: str, uri: str) -> None:
    server = create_server(DOWN, max_retries=0, timeout=2)
    async with connect(server, mode) as client:
        with pytest.raises(MCPError, match=UNREACHABLE):
            await client.read_resource(uri)


async def test_day_resource_follows_pages_of_the_default_api_url(mode: str) -> None:
    def plan(plan_id: int, coach: str) -> dict[str, Any]:
        return {
            "id": plan_id,
            "coach": coach,
            "date": DATE,
            "plan": f"{coach} plan",
            "charts": [],
            "edited": False,
        }

    server = create_server()  # http://localhost:5000, like the CLI without --api-url
    with respx.mock(base_url="http://localhost:5000") as api:
        route = api.get("/api/v1/plans")
        route.side_effect = [
            httpx.Response(200, json={"items": [plan(4, "coach_n"), plan(3, "coach_s")], "next_cursor": "c"}),
            httpx.Response(200, json={"items": [plan(2, "coach_i")], "next_cursor": None}),
        ]
        async with connect(server, mode) as client:
            day = resource_json((await client.read_resource(f"coach-plans://plans/{DATE}")).contents)

    assert [p["id"] for p in day["plans"]] == [4, 3, 2]
    assert day["plans"][0]["tickers"] == []  # a server without ticker tags still parses
    assert route.calls[1].request.url.params["cursor"] == "c"
