"""coach-plans-mcp: its command line, the messages agents get, and a session against a fake API.

These need only the client and its ``mcp`` extra, so they run on every Python the client
supports; tests/mcp has the server against the real API.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import respx
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from coach_plans_client import RateLimitError, ServerError, TimeoutError
from coach_plans_client.mcp_server import build_parser, create_server, explain, main

URL = "http://plans.test:5000"


def test_defaults_come_from_the_environment() -> None:
    args = build_parser({"COACH_PLANS_API_URL": URL, "PLAN_TIMEZONE": "Europe/London"}).parse_args([])
    assert (args.transport, args.api_url, args.timezone) == ("stdio", URL, "Europe/London")
    args = build_parser({}).parse_args(["--transport", "streamable-http", "--api-url", "http://x:1"])
    assert (args.transport, args.api_url, args.timezone) == (
        "streamable-http",
        "http://x:1",
        "America/New_York",
    )
    assert build_parser({}).parse_args([]).api_url == "http://localhost:5000"


def test_an_unknown_transport_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--transport", "sse"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sse'" in capsys.readouterr().err


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Record MCPServer.run calls instead of serving."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def run(self: MCPServer[Any], transport: str = "stdio", **kwargs: Any) -> None:
        calls.append((transport, kwargs))

    monkeypatch.setattr(MCPServer, "run", run)
    return calls


def test_main_serves_the_chosen_transport(runs: list[tuple[str, dict[str, Any]]]) -> None:
    assert main(["--api-url", URL]) == 0
    assert main(["--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8123"]) == 0
    assert runs == [
        ("stdio", {}),
        ("streamable-http", {"host": "0.0.0.0", "port": 8123, "streamable_http_path": "/mcp"}),
    ]


def test_ctrl_c_exits_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: MCPServer[Any], transport: str = "stdio", **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(MCPServer, "run", interrupted)
    assert main([]) == 130


def test_without_the_mcp_extra_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # as if not installed
    assert main([]) == 2
    assert "pip install 'coach-plans-client[mcp]'" in capsys.readouterr().err
    with pytest.raises(ImportError, match="optional 'mcp' extra"):
        create_server(URL)


def test_explain_names_the_failure() -> None:
    timeout = TimeoutError("timed out: ReadTimeout()", method="GET", url=URL)
    assert explain(timeout, URL).startswith(
        f"The Coach Plans API at {URL} is unreachable (it did not answer in time)."
    )
    limited = RateLimitError("HTTP 429 rate_limited", retry_after=12.0, status_code=429)
    assert explain(limited, URL) == f"The Coach Plans API at {URL} is rate limiting requests. Retry in 12 s."
    unlimited = RateLimitError("HTTP 429", status_code=429)
    assert explain(unlimited, URL) == f"The Coach Plans API at {URL} is rate limiting requests."
    failed = ServerError("HTTP 503 storage_unavailable: database down", status_code=503)
    assert explain(failed, URL) == (
        f"The Coach Plans API at {URL} failed: HTTP 503 storage_unavailable: database down"
    )


def text_of(result: CallToolResult) -> str:
    (content,) = result.content
    assert isinstance(content, TextContent)
    return content.text


async def test_a_session_against_a_fake_api_and_an_impossible_day() -> None:
    plan = {
        "id": 7,
        "coach": "coach_d",
        "date": "2026-11-25",
        "plan": "$NVDA above 950",
        "charts": [],
        "edited": False,
    }
    with respx.mock(base_url=URL) as api:
        route = api.get("/api/v1/plans").respond(200, json={"items": [plan], "next_cursor": None})
        async with Client(create_server(URL)) as client:
            found = await client.call_tool("get_coach_plan", {"coach": "d", "date": "2026-11-25"})
            impossible = await client.call_tool("get_coach_plan", {"coach": "d", "date": "2026-02-30"})
            malformed = await client.call_tool("search_plans", {"ticker": "NVDA", "as_of": "30/02/2026"})
            too_early = await client.call_tool(
                "search_plans", {"ticker": "NVDA", "days": 365, "as_of": "0001-01-01"}
            )
    assert not found.is_error
    assert found.structured_content is not None
    assert found.structured_content["plan"] == "$NVDA above 950"
    assert impossible.is_error
    assert "2026-02-30 does not exist: February 2026 has 28 days" in text_of(impossible)
    assert "YYYY-MM-DD" not in text_of(impossible)
    assert malformed.is_error
    assert "date must be YYYY-MM-DD or 'today', got '30/02/2026'" in text_of(malformed)
    assert too_early.is_error
    assert "365 days back from 0001-01-01 is before the calendar begins" in text_of(too_early)
    assert route.call_count == 1  # bad dates never reach the API


async def test_a_200_without_items_is_a_tool_error_not_no_plans() -> None:
    with respx.mock(base_url=URL) as api:
        api.get(url__regex=r"/api/v1/.*").respond(200, json={"message": "upstream unavailable"})
        async with Client(create_server(URL)) as client:
            plans = await client.call_tool("search_plans", {"ticker": "NVDA", "as_of": "2026-11-25"})
            plan = await client.call_tool("get_coach_plan", {"coach": "d", "date": "2026-11-25"})
            hits = await client.call_tool("search_text", {"query": "vwap"})
    for result in (plans, plan, hits):
        assert result.is_error
        assert "does not match the contract" in text_of(result)
        assert "No plan available" not in text_of(result)
