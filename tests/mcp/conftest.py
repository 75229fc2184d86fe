"""Fixtures of the MCP server tests: the server wired to the real in-process API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mcp import Client
from mcp.server.mcpserver import MCPServer

from coach_plans_client import AsyncCoachPlansClient
from coach_plans_client.mcp_server import create_server

SERVER = "http://testserver"


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    """legacy: JSON-RPC over the SDK's in-memory streams; auto: its direct in-process dispatch."""
    mode: str = request.param
    return mode


@pytest.fixture
async def plans_server(
    api_app: FastAPI, api_client: TestClient
) -> AsyncIterator[MCPServer[AsyncCoachPlansClient]]:
    """The MCP server reading the real API app (api_client keeps the app's lifespan open)."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url=SERVER) as http:
        yield create_server(http_client=http)


@asynccontextmanager
async def connect(server: MCPServer[AsyncCoachPlansClient], mode: str) -> AsyncIterator[Client]:
    # A context manager rather than a fixture: the SDK's task groups must be entered and
    # left by the same task, which async generator fixtures do not guarantee.
    async with Client(server, mode=mode) as client:
        yield client
