"""The two read caches: LRU order, generations, stale answers, and Redis being down."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from coach_plans_api.cache import ReadCache, RedisReadCache
from tests.conftest import RedisNamespace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lru_evicts_least_recently_used() -> None:
    cache = ReadCache(ttl=60, max_size=2)
    for key in ("a", "b"):
        cache.put(key, body=key.encode(), etag=key, generation=0)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", body=b"c", etag="c", generation=0)
    assert (cache.get("a") is not None, cache.get("b"), cache.get("c") is not None) == (
        True,
        None,
        True,
    )
    assert len(cache) == 2


def test_put_after_a_write_is_dropped() -> None:
    cache = ReadCache(ttl=60, max_size=10)
    seen = cache.generation
    cache.invalidate()
    cache.put("k", body=b"old", etag="e", generation=seen)
    assert cache.get("k") is None


@pytest.fixture
def shared(redis_namespace: RedisNamespace) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(redis_namespace.url)
    yield client, redis_namespace.prefix
    client.close()


@pytest.mark.redis
def test_redis_cache_ttl_generation_and_stale(shared: tuple[redis.Redis, str]) -> None:
    client, prefix = shared
    clock = Clock()
    one, two = (
        RedisReadCache(client, ttl=10, prefix=prefix, clock=clock),
        RedisReadCache(client, ttl=10, prefix=prefix, clock=clock),
    )
    one.put("k", body=b'{"plan": 1}', etag='"e1"', generation=one.generation)
    hit = two.get("k")
    assert hit is not None
    assert (hit.body, hit.etag) == (b'{"plan": 1}', '"e1"')
    clock.now += 11
    assert two.get("k") is None
    stale = two.get("k", allow_stale=True)
    assert stale is not None
    assert stale.body == b'{"plan": 1}'
    before = one.generation
    two.invalidate()
    assert one.get("k", allow_stale=True) is None
    one.put("k", body=b"late", etag='"e2"', generation=before)
    assert one.get("k") is None


@pytest.mark.redis
def test_an_invalidation_redis_refused_keeps_its_entries_unused_until_it_is_done(
    shared: tuple[redis.Redis, str],
) -> None:
    admin, prefix = shared
    entries = f"{prefix}:cache:entries"
    # A user of our own that may read but not invalidate, as a Redis refuses writes when it is
    # out of memory or has become a replica.
    user = prefix
    admin.acl_setuser(
        user, enabled=True, nopass=True, keys=[f"{prefix}:*"], commands=["+@all", "-incr", "-unlink"]
    )
    url = admin.connection_pool.connection_kwargs
    client = redis.Redis(host=url["host"], port=url["port"], db=url.get("db", 0), username=user, password="x")
    version = [1]
    cache = RedisReadCache(client, ttl=60, prefix=prefix, backoff=0.05)
    try:
        cache.follow(lambda: version[0])
        cache.put("k", body=b"old", etag='"e"', generation=cache.generation)
        assert cache.get("k") is not None
        version[0] += 1  # a commit: the next read invalidates first, and Redis refuses it
        for _ in range(3):
            assert cache.get("k") is None
            time.sleep(0.06)  # past the pause after the failure: Redis is asked again
        assert cache.pending
        assert admin.hexists(entries, "k")  # still there, never served
        cache.put("k", body=b"new", etag='"e"', generation=0)
        assert admin.hget(entries, "k") != b"new"

        admin.acl_setuser(user, commands=["+incr", "+unlink"])  # Redis takes invalidations again
        time.sleep(0.06)
        assert cache.get("k") is None
        assert not cache.pending
        assert not admin.exists(entries)
        cache.put("k", body=b"new", etag='"e"', generation=cache.generation)
        hit = cache.get("k")
        assert hit is not None
        assert hit.body == b"new"
    finally:
        cache.close()
        client.close()
        admin.acl_deluser(user)


def test_redis_down_degrades_to_misses() -> None:
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    cache = RedisReadCache(down, ttl=10)
    assert cache.generation == -1
    cache.put("k", body=b"x", etag="e", generation=0)
    assert cache.get("k") is None
    cache.invalidate()
    assert cache.pending  # kept, to be retried
    cache.close()


def test_in_process_cache_is_bounded_by_bytes_too() -> None:
    cache = ReadCache(ttl=60, max_size=10_000, max_bytes=50_000)
    for n in range(100):
        cache.put(f"k{n}", body=b"x" * 1_000, etag='"e"', generation=0)
    assert 0 < cache.size_bytes <= 50_000
    assert len(cache) < 50
    assert cache.get("k99") is not None  # the newest stay, the oldest went
    assert cache.get("k0") is None
    cache.put("too big", body=b"y" * 60_000, etag='"e"', generation=0)
    assert cache.get("too big") is None


def test_cache_follows_the_data_version() -> None:
    version = [1]
    cache = ReadCache(ttl=60, max_size=10)
    cache.follow(lambda: version[0])
    cache.put("k", body=b"old", etag='"e"', generation=cache.generation)
    assert cache.get("k") is not None
    version[0] += 1  # another process committed
    assert cache.get("k") is None
    assert cache.get("k", allow_stale=True) is None
