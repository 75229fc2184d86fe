"""Two API processes on one PostgreSQL and one Redis behave as one service."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, RedisNamespace, ServiceProcess, plan_body

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@pytest.fixture
def shared_backends(postgres_url: str, redis_namespace: RedisNamespace) -> tuple[str, dict[str, str]]:
    return postgres_url, {"REDIS_URL": redis_namespace.url, "REDIS_PREFIX": redis_namespace.prefix}


def test_write_on_one_instance_is_read_fresh_on_the_other(
    start_api: Callable[..., ServiceProcess], shared_backends: tuple[str, dict[str, str]]
) -> None:
    database_url, redis_env = shared_backends
    one = start_api(database_url, **redis_env, RATE_LIMIT_PER_MINUTE="0")
    two = start_api(database_url, **redis_env, RATE_LIMIT_PER_MINUTE="0")
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
    start_api: Callable[..., ServiceProcess], shared_backends: tuple[str, dict[str, str]]
) -> None:
    database_url, redis_env = shared_backends
    one = start_api(database_url, **redis_env, RATE_LIMIT_PER_MINUTE="10")
    two = start_api(database_url, **redis_env, RATE_LIMIT_PER_MINUTE="10")
    if time.time() % 60 > 55:  # stay inside one one-minute window
        time.sleep(61 - time.time() % 60)
    statuses = [httpx.get(f"{(one, two)[n % 2].url}/api/coach-plans/all").status_code for n in range(14)]
    # Ten in all, not ten per instance.
    assert statuses == [200] * 10 + [429] * 4
