"""The shared cache and rate limits through a Redis that drops connections or stops answering.

The test Redis is reached through a proxy that the test cuts (connections dropped, new ones
refused: Redis restarted or unreachable) or freezes (connections accepted, nothing answered: a
stopped process or a dead network), each under a key prefix of the test's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from coach_plans_api.app import create_app
from tests.conftest import INTERNAL_TOKEN, RedisNamespace, ServiceProcess, make_settings, plan_body
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
PLAN = "/api/coach-plans/?coach=coach_d&date=2026-11-25"


class RedisProxy(TcpProxy):
    """The proxy in front of the test Redis, with its URL (same db)."""

    def __init__(self, url: str) -> None:
        address = redis.Redis.from_url(url).connection_pool.connection_kwargs
        super().__init__((address["host"], address["port"]))
        self.db = address.get("db", 0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"


@pytest.fixture
def proxy(redis_namespace: RedisNamespace) -> Iterator[RedisProxy]:
    server = RedisProxy(redis_namespace.url)
    yield server
    server.close()


@pytest.fixture
def direct(redis_namespace: RedisNamespace) -> Iterator[Callable[[str], bytes | None]]:
    """Reads a key of the test's namespace straight from Redis, past the proxy."""
    client = redis.Redis.from_url(redis_namespace.url)

    def read(name: str) -> bytes | None:
        value = client.get(f"{redis_namespace.prefix}:{name}")
        assert value is None or isinstance(value, bytes)
        return value

    yield read
    client.close()


def put(client: TestClient | httpx.Client, text: str, message_id: str) -> None:
    response = client.put(
        "/internal/plans/d/2026-11-25", json=plan_body(text=text, message_id=message_id), headers=AUTH
    )
    assert response.status_code in (200, 201), response.text


def test_a_write_while_redis_is_unreachable_is_never_hidden_behind_its_old_entries(
    database_url: str,
    redis_namespace: RedisNamespace,
    proxy: RedisProxy,
    direct: Callable[[str], bytes | None],
) -> None:
    settings = make_settings(database_url, redis_url=proxy.url, redis_prefix=redis_namespace.prefix)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        put(one, "version one", "1")
        for client in (one, two, one):  # the last read is a hit
            assert client.get(PLAN).json()["plan"] == "version one"
        generation = direct("cache:generation")

        proxy.cut()
        put(one, "version two", "2")  # its invalidation cannot reach Redis
        proxy.restore()
        # The old entry is still in Redis; `one` does not serve it (it did, for an hour).
        for _ in range(2):
            assert one.get(PLAN).json()["plan"] == "version two"

        # `one` clears Redis by itself within about a second (`two`, which would clear it on its
        # next read, is not asked): an instance that missed the write never serves the entry.
        deadline = time.monotonic() + 5
        while direct("cache:generation") == generation and time.monotonic() < deadline:
            time.sleep(0.05)
        assert direct("cache:generation") != generation
        time.sleep(1.1)  # past the pause after the failure: both use Redis again
        for client in (one, one, two, two):
            assert client.get(PLAN).json()["plan"] == "version two"


def test_a_frozen_redis_does_not_hold_up_the_event_loop(
    start_api: Callable[..., ServiceProcess],
    redis_namespace: RedisNamespace,
    proxy: RedisProxy,
) -> None:
    api = start_api(REDIS_URL=proxy.url, REDIS_PREFIX=redis_namespace.prefix, RATE_LIMIT_PER_MINUTE="1000")
    paths = [PLAN, PLAN, "/api/v1/coaches", PLAN, "/api/coach-plans/all?date=2026-11-25", "/health"]
    with httpx.Client(base_url=api.url, timeout=30) as http, ThreadPoolExecutor(len(paths)) as pool:

        def timed(path: str) -> tuple[int, float]:
            started = time.monotonic()
            status = http.get(path).status_code
            return status, time.monotonic() - started

        put(http, "version one", "1")
        # Every path once (the plan is then cached), with as many connections as below.
        assert [status for status, _ in pool.map(timed, paths)] == [200] * len(paths)
        proxy.freeze()
        # Cached reads (the rate limit and the cache both ask Redis), a route that does not use
        # the cache, and /health, all at once.
        answers = list(pool.map(timed, paths))
        # Each used to wait for Redis, one request after another on the event loop: 1 s per
        # call, several calls per request, 3-13 s each. Now Redis costs a few tens of
        # milliseconds, then is left alone for a second.
        assert [status for status, _ in answers] == [200] * len(paths)
        assert max(seconds for _, seconds in answers) < 2.0, answers
        assert timed("/health")[1] < 1.0
        # A write publishes its event on the event loop: that call waited 2 s for a frozen Redis.
        started = time.monotonic()
        put(http, "version two", "2")
        assert time.monotonic() - started < 1.5

        proxy.thaw()
        time.sleep(1.1)  # the pause after the failures is over: Redis is used again
        hits = cache_hits(http)
        put(http, "version three", "3")
        deadline = time.monotonic() + 5
        while cache_hits(http) == hits and time.monotonic() < deadline:
            assert http.get(PLAN).json()["plan"] == "version three"
        assert cache_hits(http) > hits


def cache_hits(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('coach_plans_cache_total{result="hit"}'):
            return float(line.split()[-1])
    return 0.0
