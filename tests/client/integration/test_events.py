"""Live events with the typed clients against real API processes, killed and restarted."""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from coach_plans_client import AsyncCoachPlansClient, CoachPlansClient, CoachPlansError, PlanEvent
from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
ACTOR = {"user_id": "1001", "display_name": "Dan"}
DAY = "2026-11-25"


class Stopped(Exception):
    """Raised from the subscriber's sleep to end it."""


class Subscriber:
    """Follows the events with the sync client in a thread, as a long-running agent would.

    Its reconnections wait for `may_reconnect`: closed, the test controls what happens while
    the subscriber is disconnected.
    """

    def __init__(self, url: str) -> None:
        self.events: queue.Queue[PlanEvent] = queue.Queue()
        self.error: CoachPlansError | None = None
        self.may_reconnect = threading.Event()
        self.may_reconnect.set()
        self.stopped = threading.Event()
        self.waits: list[float] = []
        thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        thread.start()

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.may_reconnect.wait(60)
        if self.stopped.is_set():
            raise Stopped
        time.sleep(min(seconds, 0.2))

    def stop(self) -> None:
        """End the thread at its next reconnection (the API stops after the test)."""
        self.stopped.set()
        self.may_reconnect.set()

    def _run(self, url: str) -> None:
        try:
            with CoachPlansClient(url, sleep=self._sleep) as client:
                # last_event_id=0: everything since the first revision, so nothing races the start.
                for event in client.events(last_event_id=0, max_reconnects=100):
                    self.events.put(event)
        except CoachPlansError as exc:
            self.error = exc
        except Stopped:
            pass

    def take(self, count: int) -> list[tuple[int, str, str]]:
        taken: list[tuple[int, str, str]] = []
        for _ in range(count):
            try:
                event = self.events.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"no event after {taken}; subscriber error: {self.error}") from None
            taken.append((event.id, event.type, event.coach))
        return taken


def write(api: ServiceProcess, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.request(method, f"{api.url}{path}", json=body, headers=AUTH, timeout=10)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def put(api: ServiceProcess, coach: str, text: str, message_id: int) -> dict[str, Any]:
    return write(
        api, "PUT", f"/internal/plans/{coach}/{DAY}", plan_body(text=text, message_id=str(message_id))
    )


def test_no_change_is_missed_or_repeated_across_api_restarts(
    start_api: Callable[..., ServiceProcess],
) -> None:
    api = start_api()
    plan_d = put(api, "d", "v1", 1)
    put(api, "d", "v2", 2)
    subscriber = Subscriber(api.url)
    try:
        follow_through_restarts(api, subscriber, plan_d["id"])
    finally:
        subscriber.stop()


def follow_through_restarts(api: ServiceProcess, subscriber: Subscriber, plan_d: int) -> None:
    assert subscriber.take(2) == [(1, "plan.created", "coach_d"), (2, "plan.updated", "coach_d")]
    put(api, "i", "live", 3)
    assert subscriber.take(1) == [(3, "plan.created", "coach_i")]

    # Killed mid-stream; restarted and written to before the subscriber is back.
    subscriber.may_reconnect.clear()
    api.stop(signal.SIGKILL)
    api.start()
    put(api, "s", "while the subscriber was away", 4)
    write(api, "DELETE", f"/internal/plans/{plan_d}", {"actor": ACTOR, "message_id": "5"})
    subscriber.may_reconnect.set()
    assert subscriber.take(2) == [(4, "plan.created", "coach_s"), (5, "plan.deleted", "coach_d")]
    put(api, "n", "live again", 6)
    assert subscriber.take(1) == [(6, "plan.created", "coach_n")]

    # A graceful restart (SIGTERM ends open streams cleanly) then the same.
    subscriber.may_reconnect.clear()
    api.stop(signal.SIGTERM)
    api.start()
    put(api, "n", "edited after a graceful restart", 7)
    subscriber.may_reconnect.set()
    assert subscriber.take(1) == [(7, "plan.updated", "coach_n")]
    # Had anything come twice, it would be queued before this last change.
    put(api, "i", "last", 8)
    assert subscriber.take(1) == [(8, "plan.updated", "coach_i")]
    # Reconnections waited the server's `retry: 3000`, with full jitter.
    assert subscriber.waits
    assert all(0 <= wait <= 3.0 for wait in subscriber.waits)


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
            response = await writer.put(
                f"/internal/plans/d/{DAY}", json=plan_body(text=f"v{message}", message_id=str(message))
            )
            plan_id = response.json()["id"]
            await asyncio.sleep(0.1)
        await writer.patch(
            f"/internal/plans/{plan_id}", json={"plan_text": "edited", "actor": ACTOR, "message_id": "1"}
        )
        await writer.request("DELETE", f"/internal/plans/{plan_id}", json={"actor": ACTOR, "message_id": "2"})
    await asyncio.wait_for(listener, timeout=10)
    assert [event.type for event in received[-2:]] == ["plan.updated", "plan.deleted"]
    assert [event.id for event in received] == sorted(event.id for event in received)
    assert {event.plan_id for event in received} == {plan_id}

    # Resuming from an event id replays what came after it, from the database.
    async with (
        AsyncCoachPlansClient(api.url) as client,
        aclosing(client.events(last_event_id=received[-3].id)) as events,
    ):
        resumed = [await anext(events), await anext(events)]
    assert resumed == received[-2:]
    async with httpx.AsyncClient() as http:
        bad = await http.get(f"{api.url}/api/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert (bad.status_code, bad.json()["error"]) == (422, "validation_error")
