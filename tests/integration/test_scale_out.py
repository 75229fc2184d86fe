"""Two API processes on one PostgreSQL and one Redis behave as one service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
import redis

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body, require_service

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
DATABASE = "coach_plans_scale"
REDIS_DB_URL = "redis://127.0.0.1:6379/14"
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@pytest.fixture
def shared_backends() -> Iterator[tuple[str, str]]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    client = redis.Redis.from_url(REDIS_DB_URL)
    client.flushdb()
    yield f"postgresql://postgres@127.0.0.1:5432/{DATABASE}", REDIS_DB_URL
    client.flushdb()
    client.close()


def test_write_on_one_instance_is_read_fresh_on_the_other(
    start_api: Callable[..., ServiceProcess], shared_backends: tuple[str, str]
) -> None:
    database_url, redis_url = shared_backends
    one = start_api(database_url, REDIS_URL=redis_url, RATE_LIMIT_PER_MINUTE="0")
    two = start_api(database_url, REDIS_URL=redis_url, RATE_LIMIT_PER_MINUTE="0")
    url = "/api/coach-plans/?coach=coach_d&date=2026-11-25"
    assert httpx.get(two.url + url).status_code == 404
    for n in range(5):
        put = httpx.put(
            f"{one.url}/internal/plans/d/2026-11-25",
            headers=AUTH,
            json=plan_body(text=f"version {n}", message_id=str(100 + n)),
        )
        assert put.status_code in (200, 201)
        # Read twice through the other instance: the second read is a cache hit there.
        for _ in range(2):
            assert httpx.get(two.url + url).json()["plan"] == f"version {n}"
    hits = httpx.get(f"{two.url}/metrics", headers={"Accept": "application/json"}).json()
    assert hits["cache_hit_rate"] > 0


def test_rate_limit_counts_across_instances(
    start_api: Callable[..., ServiceProcess], shared_backends: tuple[str, str]
) -> None:
    database_url, redis_url = shared_backends
    one = start_api(database_url, REDIS_URL=redis_url, RATE_LIMIT_PER_MINUTE="10")
    two = start_api(database_url, REDIS_URL=redis_url, RATE_LIMIT_PER_MINUTE="10")
    if time.time() % 60 > 55:  # stay inside one one-minute window
        time.sleep(61 - time.time() % 60)
    statuses = [httpx.get(f"{(one, two)[n % 2].url}/api/coach-plans/all").status_code for n in range(14)]
    # Ten in all, not ten per instance.
    assert statuses == [200] * 10 + [429] * 4
