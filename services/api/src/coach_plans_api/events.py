"""Live plan events for `/api/v1/events`: fan-out to subscribers, across instances via Redis.

Events are identified by their revision id, and revisions are stored: the database is the record
of events, Redis only a fast path that says "there is news". Whenever an event may have been lost
on the way (Redis down or restarted, the pub/sub connection re-established, a write whose outcome
is unknown, a gap in the ids received, a subscriber too slow for its queue), delivery catches up
from the database: a subscriber misses nothing, and one that comes back with the last id it saw
is first sent what it missed, then live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio as aredis

from coach_plans_api.cache import Breaker, redis_options
from coach_plans_api.errors import PlanError
from coach_plans_api.schemas import PlanEvent

log = logging.getLogger("coach_plans_api.events")
QUEUE_SIZE = 1000
# The stored changes after a revision id, oldest first, at most a batch at a time.
MissedEvents = Callable[[int], Awaitable[Sequence[PlanEvent]]]
# The newest revision id stored (None: no revision yet).
LatestEvent = Callable[[], Awaitable[int | None]]
# How long the lifespan waits for the first subscription to Redis: a Redis that accepts
# connections but does not answer must not keep the API from starting.
START_WAIT = 2.0
# The listener's connect and read timeouts; it pings Redis after this long without a message, so
# a frozen server or a dead connection is noticed within about twice this.
LISTEN_TIMEOUT = 2.0
# Published on the channel instead of an event: "read the database, an event may be missing".
RESYNC = b"resync"


@dataclass(eq=False, slots=True)
class Subscription:
    """One subscriber's queue of live events (None: the server stops); `behind` when an event
    did not fit in it: the subscriber catches up from the database instead."""

    queue: asyncio.Queue[PlanEvent | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    behind: bool = False


class EventBroker:
    """Delivers each event to every current subscriber of this process, in revision id order.

    `publish` may be called from any thread (writes run in the thread pool). With Redis, events
    go through a pub/sub channel, so subscribers of every instance see every write. Everything
    this process receives goes through one task (`_deliver`), which skips what it delivered
    already and reads the database when an event may be missing: a query per gap, not per write,
    and none while nobody subscribes.
    """

    def __init__(self, redis_url: str | None = None, *, prefix: str = "coach-plans") -> None:
        self._redis_url = redis_url
        self._channel = f"{prefix}:events"
        self._publisher = redis.Redis.from_url(redis_url, **redis_options()) if redis_url else None
        self._breaker = Breaker()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, Subscription]] = set()
        self._lock = threading.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Events received, or None: catch up from the database.
        self._inbox: asyncio.Queue[PlanEvent | None] = asyncio.Queue()
        self._missed: MissedEvents | None = None
        self._delivered: int | None = None  # the newest revision id delivered (or known to be)

    def publish(self, events: list[PlanEvent]) -> None:
        if not self._through_redis([event.model_dump_json() for event in events]):
            for event in events:
                self._receive(event)

    def resync(self) -> None:
        """The database may hold revisions nobody announced (a write whose outcome is unknown):
        every instance catches up from it."""
        if not self._through_redis([RESYNC]):
            self._receive(None)

    def _through_redis(self, messages: list[str | bytes]) -> bool:
        """Publish on the shared channel; False when Redis did not take them (this instance then
        delivers them itself, the others catch up from the database once they hear again).

        Writes call this on the event loop: a Redis that does not answer costs one short timeout,
        then is left alone for a while (the read cache's breaker)."""
        if self._publisher is None or self._breaker.open:
            return False
        try:
            for message in messages:
                self._publisher.publish(self._channel, message)
        except redis.RedisError as exc:
            self._breaker.trip()
            log.error("redis unavailable; events reach this instance's subscribers only: %s", exc)
            return False
        return True

    def close_streams(self) -> None:
        """End every open subscription (shutdown must not wait for clients to hang up)."""
        self._fan_out(None)

    def _receive(self, event: PlanEvent | None) -> None:
        loop = self._loop
        if loop is None:  # not started (no lifespan): nothing to order or catch up with
            if event is not None:
                self._fan_out(event)
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server stops
            loop.call_soon_threadsafe(self._inbox.put_nowait, event)

    def _fan_out(self, event: PlanEvent | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, subscription in subscribers:
            with contextlib.suppress(RuntimeError):  # that subscriber's loop is gone
                loop.call_soon_threadsafe(_offer, subscription, event)

    def _has_subscribers(self) -> bool:
        with self._lock:
            return bool(self._subscribers)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[Subscription]:
        """The events published while the block runs."""
        subscription = Subscription()
        entry = (asyncio.get_running_loop(), subscription)
        with self._lock:
            self._subscribers.add(entry)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscribers.discard(entry)

    async def start(self, *, missed: MissedEvents, latest: LatestEvent) -> None:
        """Deliver events (and with Redis listen to the shared channel); once, in the lifespan.

        `latest` is read once: the position the first catch-up starts from."""
        if self._deliverer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._missed = missed
        self._deliverer = asyncio.create_task(self._deliver(latest), name="events-deliver")
        if self._redis_url:
            self._listener = asyncio.create_task(self._listen(self._redis_url), name="events-listen")
            try:
                await asyncio.wait_for(self._ready.wait(), timeout=START_WAIT)
            except TimeoutError:
                log.error(
                    "redis did not answer within %.0f s; events reach this instance's subscribers"
                    " only until it does",
                    START_WAIT,
                )

    async def stop(self) -> None:
        for task in (self._listener, self._deliverer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._publisher is not None:
            self._publisher.close()

    async def _deliver(self, latest: LatestEvent) -> None:
        # Where catching up starts; read here, not in `start`: the API starts without its database.
        try:
            newest = await latest()
        except PlanError as exc:
            log.warning("newest revision not read (%s): no catch-up before the first event", exc)
        else:
            # An event received meanwhile may be older than that: it starts delivery itself.
            if self._inbox.empty():
                self._delivered = newest or 0
        while True:
            event = await self._inbox.get()
            delivered = self._delivered
            if event is None:
                await self._catch_up()
            elif delivered is None or event.id == delivered + 1:
                self._send(event)
            elif event.id > delivered:
                # Ids are given in commit order (see `repository.insert_revision`), so the ones
                # between were lost on the way, or never committed: the database says which.
                await self._catch_up(until=event.id)
                if self._delivered is None or self._delivered < event.id:
                    self._send(event)

    async def _catch_up(self, until: int | None = None) -> None:
        """Deliver the stored revisions after the last one delivered (up to `until` at least)."""
        if self._missed is None or self._delivered is None or not self._has_subscribers():
            return
        try:
            while batch := await self._missed(self._delivered):
                for event in batch:
                    if event.id > self._delivered:
                        self._send(event)
                if until is not None and self._delivered >= until:
                    return
        except PlanError as exc:  # storage trouble must not end delivery for good
            log.error("events not caught up from the database (%s); some may be missing", exc)

    def _send(self, event: PlanEvent) -> None:
        self._delivered = event.id
        self._fan_out(event)

    async def _listen(self, url: str) -> None:
        while True:
            client = aredis.Redis.from_url(
                url, socket_connect_timeout=LISTEN_TIMEOUT, socket_timeout=LISTEN_TIMEOUT
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    heard = time.monotonic()
                    while True:
                        message = await pubsub.get_message(timeout=LISTEN_TIMEOUT)
                        if message is None:
                            if time.monotonic() - heard > 2 * LISTEN_TIMEOUT:
                                raise redis.TimeoutError("no answer to a ping")
                            await pubsub.ping()
                            continue
                        heard = time.monotonic()
                        if message["type"] == "subscribe":
                            self._ready.set()
                            # Events published while nobody here listened are in the database.
                            self._inbox.put_nowait(None)
                        elif message["type"] == "message":
                            data = message["data"]
                            self._inbox.put_nowait(
                                None if data == RESYNC else PlanEvent.model_validate_json(data)
                            )
            except (redis.RedisError, OSError) as exc:
                log.warning("event listener lost redis (%s); retrying in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    await client.aclose()


async def follow(
    subscription: Subscription,
    *,
    after: int | None,
    missed: MissedEvents,
    first: Sequence[PlanEvent] = (),
) -> AsyncIterator[PlanEvent]:
    """The events after revision `after` (all stored ones first), then live ones, each once.

    Subscribe before calling: a write committed while the store is being read then reaches the
    queue too, and is skipped there because it was already sent. `first` is the first batch of
    stored ones, read before the response started (so storage trouble was still a 503).
    """
    last = after
    pending = list(first)
    reading = after is not None
    while True:
        if last is not None and (reading or subscription.behind):
            subscription.behind = False
            batch = pending or await missed(last)
            pending = []
            for stored in batch:
                if stored.id > last:
                    yield stored
                    last = stored.id
            reading = bool(batch)
            continue
        live = await subscription.queue.get()
        if live is None:
            return
        if last is None or live.id > last:
            yield live
            last = live.id


def _offer(subscription: Subscription, event: PlanEvent | None) -> None:
    try:
        subscription.queue.put_nowait(event)
    except asyncio.QueueFull:
        if event is None:  # the server stops: make room for the end of the stream
            subscription.queue.get_nowait()
            subscription.queue.put_nowait(None)
        else:
            subscription.behind = True  # `follow` reads the database after what it sent
