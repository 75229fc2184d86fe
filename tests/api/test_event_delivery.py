"""Event delivery in one process: order, gaps, resyncs and slow subscribers catch up from the store."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import pytest

from coach_plans_api import events
from coach_plans_api.events import EventBroker, Subscription, follow
from coach_plans_api.schemas import PlanEvent


def event(revision_id: int) -> PlanEvent:
    return PlanEvent.model_construct(
        type="plan.updated",
        id=revision_id,
        plan_id=1,
        coach="coach_d",
        date=dt.date(2026, 11, 25),
        at=dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
    )


class Store:
    """Stored revisions; counts the reads."""

    def __init__(self, ids: Sequence[int] = ()) -> None:
        self.ids = list(ids)
        self.reads = 0

    async def missed(self, after: int) -> list[PlanEvent]:
        self.reads += 1
        return [event(i) for i in self.ids if i > after][:2]

    async def latest(self) -> int | None:
        return max(self.ids, default=None)


async def take(stream: AsyncIterator[PlanEvent], count: int) -> list[int]:
    return [(await asyncio.wait_for(anext(stream), 2)).id for _ in range(count)]


async def started(store: Store) -> EventBroker:
    broker = EventBroker()
    await broker.start(missed=store.missed, latest=store.latest)
    await asyncio.sleep(0.01)  # the newest revision is read
    return broker


async def test_events_lost_on_the_way_are_read_from_the_store_in_order() -> None:
    store = Store([1, 2])
    broker = await started(store)
    with broker.subscription() as subscription:
        stream = follow(subscription, after=None, missed=store.missed)
        store.ids += [3, 4, 5]
        broker.publish([event(5)])  # 3 and 4 never arrived (another instance, Redis down)
        broker.publish([event(3)])  # late, and already sent from the store
        assert await take(stream, 3) == [3, 4, 5]
        store.ids += [6]
        broker.resync()  # a write whose outcome is unknown: 6 was stored, never announced
        broker.publish([event(7)])
        store.ids += [7]
        assert await take(stream, 2) == [6, 7]
    await broker.stop()


async def test_nothing_is_read_without_subscribers_or_gaps() -> None:
    store = Store([1])
    broker = await started(store)
    reads = store.reads
    broker.publish([event(3)])
    broker.resync()
    await asyncio.sleep(0.05)
    assert store.reads == reads
    with broker.subscription() as subscription:
        stream = follow(subscription, after=None, missed=store.missed)
        broker.publish([event(4), event(5)])
        assert await take(stream, 2) == [4, 5]
        assert store.reads == reads
    await broker.stop()


async def test_a_slow_subscriber_catches_up_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_SIZE", 3)
    store = Store()
    broker = await started(store)
    with broker.subscription() as subscription:
        stream = follow(subscription, after=None, missed=store.missed)
        for i in range(1, 11):
            store.ids.append(i)
            broker.publish([event(i)])
        await asyncio.sleep(0.05)
        assert subscription.behind
        assert await take(stream, 10) == list(range(1, 11))
    await broker.stop()


async def test_a_full_queue_still_ends_the_stream_at_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_SIZE", 1)
    subscription = Subscription()
    events._offer(subscription, event(1))
    events._offer(subscription, None)
    assert subscription.queue.get_nowait() is None
