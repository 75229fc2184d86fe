"""Rate limits: which paths are limited, one budget across instances through Redis, Redis down."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from coach_plans_api.app import create_app
from coach_plans_api.middleware import RateLimiter
from tests.conftest import INTERNAL_TOKEN, RedisNamespace, make_settings, plan_body

LIMITED = ["/", "/api/coach-plans/all", "/api/v1/plans", "/api/v1/coaches", "/docs", "/openapi.json", "/nope"]
NOT_LIMITED = ["/health", "/metrics", "/static/docs/swagger-ui.css"]


def test_every_public_page_but_probes_and_static_files_is_limited(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url, rate_limit_per_minute=2))) as client:
        for path in LIMITED:
            statuses = [client.get(path).status_code for _ in range(2)]
            assert 429 not in statuses, path
            refused = client.get(path)  # each path spends the one budget of this client
            assert refused.status_code == 429, path
            assert refused.json()["error"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            client.app.state.core.limiter._local.storage.reset()  # type: ignore[attr-defined]
        for path in NOT_LIMITED:
            assert {client.get(path).status_code for _ in range(5)} == {200}, path
        writes = [
            client.put(
                f"/internal/plans/d/2026-11-{day:02d}",
                json=plan_body(message_id=str(day)),
                headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
            ).status_code
            for day in range(1, 6)
        ]
        assert writes == [201] * 5  # the bot's writes are never rate limited


@pytest.mark.redis
def test_one_budget_across_instances_under_the_prefix(redis_namespace: RedisNamespace) -> None:
    one = RateLimiter(3, redis_url=redis_namespace.url, prefix=redis_namespace.prefix)
    two = RateLimiter(3, redis_url=redis_namespace.url, prefix=redis_namespace.prefix)
    try:
        assert [one.hit("c"), two.hit("c"), one.hit("c")] == [None, None, None]
        wait = two.hit("c")
        assert wait is not None
        assert 1 <= wait <= 60
        assert one.hit("other") is None
        keys = redis.Redis.from_url(redis_namespace.url, decode_responses=True).keys("*")
        prefix = f"{redis_namespace.prefix}:ratelimit"
        ours = [k for k in keys if isinstance(k, str) and k.startswith(prefix)]
        assert ours, "rate limit keys live under REDIS_PREFIX"
    finally:
        one.close()
        two.close()
    assert RateLimiter(0, redis_url=redis_namespace.url).hit("c") is None


def test_redis_down_counts_in_this_process() -> None:
    limiter = RateLimiter(2, redis_url="redis://127.0.0.1:1/0")
    assert [limiter.hit("client") is None for _ in range(3)] == [True, True, False]
    limiter.close()


def test_head_of_a_limited_path_is_limited_too(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url, rate_limit_per_minute=1))) as client:
        assert client.head("/api/v1/coaches").status_code == 200
        assert client.head("/api/v1/coaches").status_code == 429
