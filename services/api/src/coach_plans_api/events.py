"""Live plan events for `/api/v1/events`: fan-out to subscribers, across instances via Redis.

Events are identified by their revision id, and revisions are stored: a subscriber that comes
back with the last id it saw is first sent what it missed from the database, then live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import redis
import redis.asyncio as aredis

from coach_plans_api.schemas import PlanEvent

log = logging.getLogger("coach_plans_api.events")
QUEUE_SIZE = 1000
# The stored changes after a revision id, oldest first, at most a batch at a time.
MissedEvents = Callable[[int], Awaitable[Sequence[PlanEvent]]]


class EventBroker:
    """Delivers each published event to every current subscriber of this process.

    `publish` may be called from any thread (writes run in the thread pool). With Redis, events
    go through a pub/sub channel, so subscribers of every instance see every write, in order.
    """

    def __init__(self, redis_url: str | None = None, *, prefix: str = "coach-plans") -> None:
        self._redis_url = redis_url
        self._channel = f"{prefix}:events"
        self._publisher = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[PlanEvent | None]]] = set()
        self._lock = threading.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def publish(self, events: list[PlanEvent]) -> None:
        if self._publisher is None:
            for event in events:
                self._fan_out(event)
            return
        try:
            for event in events:
                self._publisher.publish(self._channel, event.model_dump_json())
        except redis.RedisError as exc:
            log.error("redis unavailable; events reach this instance's subscribers only: %s", exc)
            for event in events:
                self._fan_out(event)

    def close_streams(self) -> None:
        """End every open subscription (shutdown must not wait for clients to hang up)."""
        self._fan_out(None)

    def _fan_out(self, event: PlanEvent | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # that subscriber's loop is gone
                loop.call_soon_threadsafe(_offer, queue, event)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[PlanEvent | None]]:
        """A queue of the events published while the block runs; None means the server stops."""
        queue: asyncio.Queue[PlanEvent | None] = asyncio.Queue(QUEUE_SIZE)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subscribers.add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                self._subscribers.discard(entry)

    async def start(self) -> None:
        """With Redis: listen to the shared channel (call once per process, in the lifespan)."""
        if self._redis_url and self._listener is None:
            self._listener = asyncio.create_task(self._listen(self._redis_url))
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._publisher is not None:
            self._publisher.close()

    async def _listen(self, url: str) -> None:
        while True:
            client = aredis.Redis.from_url(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._fan_out(PlanEvent.model_validate_json(message["data"]))
            except redis.RedisError as exc:
                log.warning("event listener lost redis (%s); retrying in 1 s", exc)
                self._ready.set()
                await asyncio.sleep(1)
            finally:
                await client.aclose()


async def follow(
    queue: asyncio.Queue[PlanEvent | None], *, after: int | None, missed: MissedEvents
) -> AsyncIterator[PlanEvent]:
    """The events after revision `after` (all stored ones first), then live ones, each once.

    Subscribe (`queue`) before calling: a write committed while the store is being read then
    reaches the queue too, and is skipped there because it was already sent.
    """
    replayed = after
    if replayed is not None:
        while batch := await missed(replayed):
            for stored in batch:
                yield stored
                replayed = stored.id
    while (live := await queue.get()) is not None:
        if replayed is None or live.id > replayed:
            yield live


def _offer(queue: asyncio.Queue[PlanEvent | None], event: PlanEvent | None) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        log.warning("a slow events subscriber missed an event (%s)", event)
