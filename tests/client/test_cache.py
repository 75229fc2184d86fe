"""The TTL + LRU cache: expiry, eviction order, thread safety, logging."""

from __future__ import annotations

import logging
import threading

import pytest

from coach_plans_client import TTLCache

from .conftest import FakeClock


def test_value_is_fresh_until_its_ttl_then_expires(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl=60, max_size=10, clock=clock)
    cache.set("coach_d:2026-11-25", "plan")

    clock.advance(59.9)
    assert cache.get("coach_d:2026-11-25") == "plan"
    clock.advance(0.1)
    assert cache.get("coach_d:2026-11-25") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_per_entry_ttl_overrides_the_default(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl=3600, max_size=10, clock=clock)
    cache.set("miss", "No plan", ttl=60)
    cache.set("hit", "plan")

    clock.advance(61)
    assert cache.get("miss") is None
    assert cache.get("hit") == "plan"


def test_least_recently_used_is_evicted_first(clock: FakeClock) -> None:
    cache: TTLCache[int] = TTLCache(ttl=60, max_size=3, clock=clock)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.set(key, value)
    assert cache.get("a") == 1  # "a" becomes the most recently used

    cache.set("d", 4)

    assert "b" not in cache
    assert cache.keys() == ["c", "a", "d"]
    cache.set("c", 30)  # overwriting also counts as a use
    cache.set("e", 5)
    assert cache.keys() == ["d", "c", "e"]
    assert len(cache) == 3


def test_expired_entry_stays_for_revalidation_until_refreshed(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl=10, max_size=10, clock=clock)
    cache.set("k", "v", etag='"abc"')
    clock.advance(11)

    assert cache.get("k") is None
    stale = cache.get_stale("k")
    assert stale is not None
    assert stale.etag == '"abc"'
    assert cache.refresh("k") == "v"
    assert cache.get("k") == "v"
    assert cache.refresh("unknown") is None


def test_clear_drops_everything(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl=10, max_size=10, clock=clock)
    cache.set("a", "1")
    cache.set("b", "2")
    cache.clear()
    assert len(cache) == 0
    assert cache.get("a") is None


def test_hits_and_misses_are_logged_at_debug(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    cache: TTLCache[str] = TTLCache(ttl=10, max_size=1, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="coach_plans_client.cache"):
        cache.get("coach_d:2026-11-25")
        cache.set("coach_d:2026-11-25", "plan")
        cache.get("coach_d:2026-11-25")
        cache.set("coach_i:2026-11-25", "plan")
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.DEBUG, "cache miss: coach_d:2026-11-25 (absent)") in messages
    assert (logging.DEBUG, "cache hit: coach_d:2026-11-25") in messages
    assert (logging.DEBUG, "cache evict: coach_d:2026-11-25") in messages


@pytest.mark.parametrize(("ttl", "max_size"), [(-1, 10), (10, 0)])
def test_rejects_nonsense_configuration(ttl: float, max_size: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        TTLCache(ttl=ttl, max_size=max_size)


def test_concurrent_use_keeps_size_bound_and_counts_every_lookup() -> None:
    cache: TTLCache[int] = TTLCache(ttl=60, max_size=50)
    threads, rounds = 16, 2000
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        barrier.wait()
        try:
            for n in range(rounds):
                key = (worker * 7 + n) % 120
                if cache.get(key) is None:
                    cache.set(key, n)
        except BaseException as exc:  # noqa: BLE001 - a thread's failure, surfaced by the assertion below
            failures.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert failures == []
    assert len(cache) <= 50
    assert cache.hits + cache.misses == threads * rounds
