"""Live plan events with the typed clients: the stream format, resuming, failures (respx).

The same against real API processes, killed and restarted, is in integration/test_events.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

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
from coach_plans_client._base import Subscription

from .conftest import full_jitter

API = "http://api.test"
EVENTS = f"{API}/api/v1/events"
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def event_block(event_id: int, kind: str = "plan.created", *, retry: int | None = None) -> bytes:
    data = {
        "type": kind,
        "id": event_id,
        "plan_id": 3,
        "coach": "coach_d",
        "date": "2026-11-25",
        "at": "2026-11-25T15:00:00.5Z",
    }
    lines = [f"event: {kind}", f"data: {json.dumps(data)}", f"id: {event_id}"]
    if retry is not None:
        lines.append(f"retry: {retry}")
    return ("\n".join(lines) + "\n\n").encode()


def stream(*blocks: bytes) -> httpx.Response:
    return httpx.Response(200, content=b": connected\nretry: 3000\n\n" + b"".join(blocks), headers=SSE)


class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that breaks off mid-stream, as when the API process is killed."""

    def __init__(self, *blocks: bytes) -> None:
        self.blocks = blocks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.blocks
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    async def __aiter__(self) -> Any:
        for block in self.blocks:
            yield block
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def sync_client(sleeps: list[float]) -> CoachPlansClient:
    return CoachPlansClient(API, sleep=sleeps.append)


def async_client(sleeps: list[float]) -> AsyncCoachPlansClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncCoachPlansClient(API, sleep=sleep)


@respx.mock
def test_events_are_parsed_with_their_type_id_and_time(sleeps: list[float]) -> None:
    respx.get(EVENTS).respond(
        200,
        content=b": connected\nretry: 3000\n\n"
        + event_block(7)
        + b": ping\n\n"
        + event_block(8, "plan.deleted")
        + b'event: plan.updated\ndata: {"type": "plan.updated",\n'
        + b'data: "id": 9, "plan_id": 4, "coach": "coach_i", "date": "2026-11-26", "at": null}\n\n',
        headers=SSE,
    )
    with sync_client(sleeps) as client:
        events = list(itertools.islice(client.events(), 3))
    at = dt.datetime(2026, 11, 25, 15, 0, 0, 500000, tzinfo=dt.timezone.utc)
    assert events == [
        PlanEvent("plan.created", 7, 3, "coach_d", dt.date(2026, 11, 25), at),
        PlanEvent("plan.deleted", 8, 3, "coach_d", dt.date(2026, 11, 25), at),
        PlanEvent("plan.updated", 9, 4, "coach_i", dt.date(2026, 11, 26), None),
    ]


@respx.mock
def test_a_closed_stream_is_resumed_after_the_last_event_id(sleeps: list[float]) -> None:
    route = respx.get(EVENTS)
    route.side_effect = [stream(event_block(7), event_block(8)), stream(event_block(9))]
    with sync_client(sleeps) as client:
        ids = [event.id for event in itertools.islice(client.events(), 3)]
    assert ids == [7, 8, 9]
    assert "Last-Event-ID" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["Last-Event-ID"] == "8"
    assert route.calls[0].request.headers["Accept"] == "text/event-stream"
    assert full_jitter(sleeps, [3.0])  # the server's `retry: 3000`


@respx.mock
def test_a_stream_broken_off_is_resumed_and_a_given_id_is_sent_first(sleeps: list[float]) -> None:
    route = respx.get(EVENTS)
    route.side_effect = [
        httpx.Response(200, headers=SSE, stream=BrokenStream(event_block(41), event_block(42)[:20])),
        stream(event_block(42)),
    ]
    with sync_client(sleeps) as client:
        ids = [event.id for event in itertools.islice(client.events(last_event_id=40), 2)]
    assert ids == [41, 42]  # the half-received 42 is not delivered twice
    assert [call.request.headers["Last-Event-ID"] for call in route.calls] == ["40", "41"]


@respx.mock
def test_the_servers_retry_advice_sets_the_reconnect_delay(sleeps: list[float]) -> None:
    respx.get(EVENTS).side_effect = [stream(event_block(n, retry=100)) for n in range(1, 21)]
    with sync_client(sleeps) as client:
        assert len(list(itertools.islice(client.events(), 20))) == 20
    assert full_jitter(sleeps, [0.1] * 19)


@respx.mock
def test_unavailable_api_is_retried_with_growing_delays_until_it_answers(sleeps: list[float]) -> None:
    route = respx.get(EVENTS)
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"error": "storage_unavailable", "detail": "down"}),
        httpx.Response(503, headers={"Retry-After": "5"}, json={"error": "storage_unavailable"}),
        httpx.ConnectError("refused"),
        stream(event_block(1)),
    ]
    with sync_client(sleeps) as client:
        assert [event.id for event in itertools.islice(client.events(), 1)] == [1]
    assert full_jitter([sleeps[0], sleeps[1], sleeps[3]], [3.0, 6.0, 8.0])  # capped at max_backoff
    assert sleeps[2] == 5.0


@respx.mock
def test_max_reconnects_gives_up_with_a_connection_error(sleeps: list[float]) -> None:
    route = respx.get(EVENTS).mock(side_effect=httpx.ConnectError("refused"))
    with sync_client(sleeps) as client, pytest.raises(ConnectionError, match="refused"):
        next(client.events(max_reconnects=2))
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_unreachable_api_is_a_connection_error() -> None:
    with CoachPlansClient("http://127.0.0.1:9") as client, pytest.raises(ConnectionError):
        next(client.events(max_reconnects=0))


@respx.mock
@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404, json={"error": "route_not_found", "detail": "no such route"}), APIError),
        (
            httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
            InvalidResponseError,
        ),
        (httpx.Response(200, content=b"data: {not json\n\n", headers=SSE), InvalidResponseError),
        (
            httpx.Response(200, content=b'data: {"type": "plan.exploded"}\n\n', headers=SSE),
            InvalidResponseError,
        ),
    ],
)
def test_answers_that_are_not_a_usable_stream_raise_at_once(
    sleeps: list[float], response: httpx.Response, error: type[Exception]
) -> None:
    route = respx.get(EVENTS).mock(return_value=response)
    with sync_client(sleeps) as client, pytest.raises(error):
        next(client.events())
    assert (route.call_count, sleeps) == (1, [])


@respx.mock
def test_the_clients_headers_are_sent_and_the_stream_is_asked_for(sleeps: list[float]) -> None:
    route = respx.get(EVENTS).mock(return_value=stream(event_block(1)))
    with CoachPlansClient(API, headers={"Authorization": "Bearer proxy-token"}) as client:
        next(client.events())
    headers = route.calls.last.request.headers
    assert (headers["Authorization"], headers["Accept"]) == ("Bearer proxy-token", "text/event-stream")


@respx.mock
def test_a_body_that_cannot_be_decoded_is_an_invalid_response(sleeps: list[float]) -> None:
    headers = {**SSE, "content-encoding": "gzip"}
    respx.get(EVENTS).mock(return_value=httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"no")))
    with sync_client(sleeps) as client, pytest.raises(InvalidResponseError):
        next(client.events())


@pytest.mark.parametrize("url", ["ftp://api.test", "http://"])
def test_a_url_that_cannot_work_raises_at_once(url: str, sleeps: list[float]) -> None:
    with CoachPlansClient(url, sleep=sleeps.append) as client, pytest.raises(ConnectionError):
        next(client.events())
    assert sleeps == []


def test_negative_max_reconnects_is_rejected() -> None:
    with CoachPlansClient(API) as client, pytest.raises(ValueError, match="max_reconnects"):
        next(client.events(max_reconnects=-1))


@respx.mock
async def test_async_client_resumes_like_the_sync_one(sleeps: list[float]) -> None:
    route = respx.get(EVENTS)
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(200, headers=SSE, stream=BrokenStream(event_block(7))),
        stream(event_block(8, "plan.updated")),
    ]
    received: list[PlanEvent] = []
    async with async_client(sleeps) as client:
        async for event in client.events():
            received.append(event)
            if len(received) == 2:
                break
    assert [(event.id, event.type) for event in received] == [(7, "plan.created"), (8, "plan.updated")]
    assert route.calls[2].request.headers["Last-Event-ID"] == "7"
    assert len(sleeps) == 2


@respx.mock
@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(400, json={"error": "validation_error", "detail": "x"}), APIError),
        (httpx.Response(200, content=b"data: [1]\n\n", headers=SSE), InvalidResponseError),
        (httpx.Response(200, text="{}", headers={"content-type": "application/json"}), InvalidResponseError),
    ],
)
async def test_async_errors_are_typed(
    sleeps: list[float], response: httpx.Response, error: type[Exception]
) -> None:
    respx.get(EVENTS).mock(return_value=response)
    async with async_client(sleeps) as client:
        with pytest.raises(error):
            async for _ in client.events():
                pass


@respx.mock
async def test_async_max_reconnects(sleeps: list[float]) -> None:
    respx.get(EVENTS).mock(side_effect=httpx.ConnectError("refused"))
    async with async_client(sleeps) as client:
        with pytest.raises(ConnectionError):
            async for _ in client.events(max_reconnects=1):
                pass
    assert len(sleeps) == 1


@respx.mock
@pytest.mark.parametrize(
    ("retry", "ceiling"),
    [
        (b"1" + b"0" * 400, 60.0),  # more digits than a float holds
        (b"1" + b"0" * 16, 60.0),  # a float, but years of sleep
        (b"-5", 3.0),  # not plain digits: ignored
        (b"5000", 5.0),
    ],
)
def test_the_servers_retry_advice_is_bounded_to_a_minute(
    sleeps: list[float], retry: bytes, ceiling: float
) -> None:
    advice = httpx.Response(200, content=b"retry: " + retry + b"\n\n" + event_block(1), headers=SSE)
    respx.get(EVENTS).side_effect = [advice, *[stream(event_block(n)) for n in range(2, 5)]]
    with sync_client(sleeps) as client:
        assert [event.id for event in itertools.islice(client.events(), 2)] == [1, 2]
    assert full_jitter(sleeps, [ceiling])


@respx.mock
async def test_async_reconnect_waits_are_bounded_too(sleeps: list[float]) -> None:
    advice = b"retry: 1" + b"0" * 16 + b"\n\n"
    respx.get(EVENTS).side_effect = [
        httpx.Response(200, content=advice + event_block(1), headers=SSE),
        stream(event_block(2)),
    ]
    async with async_client(sleeps) as client:
        received = []
        async for event in client.events():
            received.append(event.id)
            if len(received) == 2:
                break
    assert full_jitter(sleeps, [60.0])


def test_an_api_away_for_thousands_of_attempts_is_still_waited_for() -> None:
    """2**1024 is no float: the doubling of the wait must stop before it overflows."""
    with CoachPlansClient(API) as client:
        subscription = Subscription(client, last_event_id=None, max_reconnects=None)
        subscription.failures = 1100  # as after 1,100 refused connections in a row
        assert 0 <= subscription.lost(httpx.ConnectError("refused")) <= 8.0
