"""coach-plans-mcp as a real process (stdio and streamable HTTP) against a real API process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, free_port, plan_body

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("coach-plans-mcp")
DATE = "2025-06-16"


@pytest.fixture
def api_with_plans(start_api: Callable[..., ServiceProcess]) -> ServiceProcess:
    api = start_api()
    plans = (("coach_d", "$NVDA above 950"), ("coach_i", "$AMD earnings, NVDA later"))
    for message_id, (coach, text) in enumerate(plans, start=1):
        response = httpx.put(
            f"{api.url}/internal/plans/{coach}/{DATE}",
            json=plan_body(text=text, message_id=str(message_id)),
            headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        assert response.status_code == 201, response.text
    return api


async def test_console_script_over_stdio(api_with_plans: ServiceProcess, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=str(SCRIPT),
        env={"COACH_PLANS_API_URL": api_with_plans.url},  # the default --api-url
    )
    with (tmp_path / "mcp-stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("search_plans", {"ticker": "NVDA", "days": 7, "as_of": DATE})

    assert not result.is_error, result.content
    assert isinstance(result.content[0], TextContent)
    found = json.loads(result.content[0].text)
    assert [plan["coach"] for plan in found["plans"]] == ["coach_i", "coach_d"]
    assert found["plans"][1]["plan"] == "$NVDA above 950"


@pytest.fixture
def http_server(api_with_plans: ServiceProcess, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "mcp-http.log").open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "--transport", "streamable-http", "--port", str(port), "--api-url", api_with_plans.url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COACH_PLANS_API_URL": "http://127.0.0.1:9"},  # the flag wins
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "mcp-http.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "coach-plans-mcp did not listen in 20 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


async def test_console_script_over_streamable_http(http_server: str) -> None:
    async with Client(http_server) as client:
        result = await client.call_tool("get_coach_plan", {"coach": "i", "date": DATE})

    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["plan"] == "$AMD earnings, NVDA later"
    assert result.structured_content["tickers"] == ["AMD", "NVDA"]
