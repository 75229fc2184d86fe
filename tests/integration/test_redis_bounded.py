"""The shared Redis read cache stays small under writes and client-chosen keys."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from coach_plans_api.cache import RedisReadCache
from tests.conftest import INTERNAL_TOKEN, RedisNamespace, ServiceProcess, plan_body

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
MAX_BYTES = 64 * 1024
MAX_ENTRIES = 50


def footprint(client: redis.Redis, prefix: str) -> tuple[int, int, int]:
    """(keys, bytes, longest remaining lifetime in ms) of the cache's keys in this namespace."""
    keys = list(client.scan_iter(match=f"{prefix}:cache:*"))
    memory = sum(client.memory_usage(k) or 0 for k in keys)
    lifetime = max((client.pttl(k) for k in keys), default=-2)
    return len(keys), memory, lifetime


def test_two_instances_writing_and_reading_random_keys_stay_bounded(
    start_api: Callable[..., ServiceProcess], redis_namespace: RedisNamespace, tmp_path: Path
) -> None:
    env = {
        "REDIS_URL": redis_namespace.url,
        "REDIS_PREFIX": redis_namespace.prefix,
        "CACHE_TTL_SECONDS": "3",
        "MAX_CACHE_SIZE": str(MAX_ENTRIES),
        "CACHE_MAX_BYTES": str(MAX_BYTES),
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    apis = [start_api(database, measured=False, **env), start_api(database, measured=False, **env)]
    client = redis.Redis.from_url(redis_namespace.url)
    rng = random.Random(7)
    samples: list[tuple[int, int, int]] = []
    with httpx.Client(timeout=10) as http:
        for n in range(60):
            writer = apis[n % 2]
            day = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}"
            http.put(
                f"{writer.url}/internal/plans/{'disn'[n % 4]}/{day}",
                json=plan_body(text=f"plan {n} " + "x" * 500, message_id=str(1000 + n)),
                headers=AUTH,
            ).raise_for_status()
            for _ in range(10):  # keys an anonymous client chooses
                reader = rng.choice(apis)
                author = "".join(rng.choices("abcdefghij", k=12))
                http.get(
                    f"{reader.url}/api/v1/plans", params={"author": author, "limit": rng.randint(1, 200)}
                )
                http.get(f"{reader.url}/api/coach-plans/all", params={"date": day})
            samples.append(footprint(client, redis_namespace.prefix))
    client.close()
    keys, memory, _ = max(samples, key=lambda s: s[1])
    assert max(s[0] for s in samples) <= 2  # the generation counter and one hash of entries
    assert memory <= 2 * MAX_BYTES  # entries are bounded; Redis adds its own bookkeeping
    assert max(s[2] for s in samples) <= 3000  # no entry outlives CACHE_TTL_SECONDS
    assert keys >= 1


@pytest.fixture
def shared(redis_namespace: RedisNamespace) -> tuple[redis.Redis, str]:
    return redis.Redis.from_url(redis_namespace.url), redis_namespace.prefix


def test_reads_alone_fill_no_more_than_the_limits(shared: tuple[redis.Redis, str]) -> None:
    client, prefix = shared
    cache = RedisReadCache(client, ttl=60, prefix=prefix, max_size=20, max_bytes=10_000)
    for n in range(200):
        cache.put(f"v1:author-{n}", body=b"x" * 300, etag=f'"{n}"', generation=cache.generation)
    entries = client.hlen(f"{prefix}:cache:entries") - 1  # one field counts the bytes
    assert 0 < entries <= 20
    used = client.memory_usage(f"{prefix}:cache:entries")
    assert used is not None
    assert used <= 2 * 10_000
    assert 0 < client.pttl(f"{prefix}:cache:entries") <= 60_000
    cache.put("huge", body=b"y" * 20_000, etag='"h"', generation=cache.generation)
    assert cache.get("huge") is None


def test_a_write_drops_the_entries_at_once(shared: tuple[redis.Redis, str]) -> None:
    client, prefix = shared
    cache = RedisReadCache(client, ttl=60, prefix=prefix)
    for n in range(50):
        cache.put(f"k{n}", body=b"z" * 1000, etag='"e"', generation=cache.generation)
    assert client.exists(f"{prefix}:cache:entries")
    cache.invalidate()
    assert not client.exists(f"{prefix}:cache:entries")
    assert [k.decode() for k in client.scan_iter(match=f"{prefix}:*")] == [f"{prefix}:cache:generation"]
    client.close()
