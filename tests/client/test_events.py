"""Subscribing to live plan events with the typed clients."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import httpx
import pytest
import respx

from coach_plans_client import (
    APIError,
    AsyncCoachPlansClient,
    CoachPlansClient,
    ConnectionError,
    InvalidResponseError,
    PlanEvent,
)
from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
STREAM = (
    b"retry: 3000\n: connected\n\n"
    b'id: 7\nevent: plan.created\ndata: {"type": "plan.created", "id": 7, "plan_id": 3, "coach": "coach_d",'
    b' "date": "2026-11-25", "at": "2026-11-25T15:00:00Z"}\n\n'
    b": keepalive\n\n"
    b'id: 8\nevent: plan.deleted\ndata: {"type": "plan.deleted", "id": 8, "plan_id": 3, "coach": "coach_d",'
    b' "date": "2026-11-25", "at": "2026-11-25T15:01:00Z"}\n\n'
)


@respx.mock
def test_sync_client_parses_the_stream() -> None:
    respx.get("http://api.test/api/v1/events").respond(
        200, content=STREAM, headers={"content-type": "text/event-stream"}
    )
    with CoachPlansClient("http://api.test") as client:
        events = list(client.events())
    assert events == [
        PlanEvent(
            "plan.created",
            7,
            3,
            "coach_d",
            dt.date(2026, 11, 25),
            dt.datetime(2026, 11, 25, 15, tzinfo=dt.UTC),
        ),
        PlanEvent(
            "plan.deleted",
            8,
            3,
            "coach_d",
            dt.date(2026, 11, 25),
            dt.datetime(2026, 11, 25, 15, 1, tzinfo=dt.UTC),
        ),
    ]


@respx.mock
@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, json={"error": "storage_unavailable", "detail": "down"}), APIError),
        (httpx.Response(200, content=b"data: {not json\n\n"), InvalidResponseError),
        (httpx.Response(200, content=b'data: {"type": "plan.exploded"}\n\n'), InvalidResponseError),
    ],
)
async def test_async_client_errors_are_typed(response: httpx.Response, error: type[Exception]) -> None:
    respx.get("http://api.test/api/v1/events").mock(return_value=response)
    async with AsyncCoachPlansClient("http://api.test") as client:
        with pytest.raises(error):
            async for _ in client.events():
                pass


def test_unreachable_api_is_a_connection_error() -> None:
    with CoachPlansClient("http://127.0.0.1:9") as client, pytest.raises(ConnectionError):
        next(client.events())


async def test_async_client_follows_a_real_api(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    received: list[PlanEvent] = []

    async def listen() -> None:
        async with AsyncCoachPlansClient(api.url) as client:
            async for event in client.events():
                received.append(event)
                if event.type == "plan.deleted":
                    return

    listener = asyncio.create_task(listen())
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH) as writer:
        message = 100
        while not received:  # keep writing until the subscription is surely open
            message += 1
            put = await writer.put(
                "/internal/plans/d/2026-11-25", json=plan_body(text=f"v{message}", message_id=str(message))
            )
            plan_id = put.json()["id"]
            await asyncio.sleep(0.1)
        actor = {"user_id": "1001", "display_name": "Dan"}
        await writer.patch(
            f"/internal/plans/{plan_id}", json={"plan_text": "edited", "actor": actor, "message_id": "1"}
        )
        await writer.request("DELETE", f"/internal/plans/{plan_id}", json={"actor": actor, "message_id": "2"})
    await asyncio.wait_for(listener, timeout=10)
    assert [e.type for e in received[-2:]] == ["plan.updated", "plan.deleted"]
    assert [e.id for e in received] == sorted(e.id for e in received)
    assert {e.plan_id for e in received} == {plan_id}
