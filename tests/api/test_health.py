"""Health, metrics, docs, and what callers see when the database is gone."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from coach_plans_api.app import SQLITE_DB_THREADS, create_app
from coach_plans_api.observability import Metrics
from coach_plans_api.routes.deps import LOOP_PAGE
from coach_plans_api.routes.ops import TURNS_PER_PASS, Turns
from tests.conftest import INTERNAL_TOKEN, PutPlan, make_settings, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/test"


def eventually(check: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll `check` until it holds; the storage probe runs every 0.5 s (the limit is generous)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_health_fields(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan()
    response = api_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "status",
        "bot_connected",
        "database_connected",
        "plans_count",
        "uptime_seconds",
        "version",
        "instance_id",
        "reason",
    }
    assert (body["status"], body["database_connected"], body["plans_count"]) == ("healthy", True, 1)
    assert body["reason"] is None
    assert body["uptime_seconds"] >= 0
    assert body["version"] == "2.0.0"
    # Random per process, stable within it: `make run` tells its own API from another by it.
    assert re.fullmatch(r"[0-9a-f]{16}", body["instance_id"])
    assert api_client.get("/health").json()["instance_id"] == body["instance_id"]


def test_health_answered_ahead_of_the_router_looks_like_any_answer(
    api_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed uptime, so every answer has the same body and HEAD's length can be compared.
    monkeypatch.setattr(Metrics, "uptime", lambda self: 12.345)
    plain = api_client.get("/health", headers={"X-Request-ID": "probe-1"})
    routed = api_client.get("/health?verbose=1")  # a query string takes the routed path
    assert plain.json().keys() == routed.json().keys()
    assert plain.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert plain.headers["x-request-id"] == "probe-1"
    for header in ("x-content-type-options", "x-frame-options"):
        assert plain.headers[header] == routed.headers[header]
    head = api_client.head("/health")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == plain.headers["content-length"]
    text = api_client.get("/metrics").text
    assert 'coach_plans_http_requests_total{method="GET",route="/health",status="200"} 2.0' in text
    assert 'coach_plans_http_requests_total{method="HEAD",route="/health",status="200"} 1.0' in text


async def test_turns_are_taken_in_order_a_few_per_pass_of_the_loop() -> None:
    turns, passes = Turns(per_pass=2), 0
    started: list[tuple[int, int]] = []  # (request, pass)

    def count_passes() -> None:
        nonlocal passes
        passes += 1
        if len(started) < 9:
            asyncio.get_running_loop().call_soon(count_passes)

    async def request(number: int) -> None:
        await turns.take()
        started.append((number, passes))

    count_passes()
    await asyncio.gather(*(request(number) for number in range(9)))
    assert [number for number, _ in started] == list(range(9))
    assert max(Counter(at for _, at in started).values()) == 2
    # A request cancelled while it waits gives its turn up.
    later = [asyncio.ensure_future(request(number)) for number in range(9, 13)]
    await asyncio.sleep(0)
    later[2].cancel()
    await asyncio.gather(*later, return_exceptions=True)
    assert [number for number, _ in started[9:]] == [9, 10, 12]


def test_health_check_overtakes_the_queued_reads(tmp_path: Path, sqlite_template: Path) -> None:
    """Under more concurrent reads than a pass starts, /health is answered in the first pass
    (before the reads that wait their turn); without turns it came after all of them."""
    database = tmp_path / "plans.db"
    database.write_bytes(sqlite_template.read_bytes())
    app = create_app(make_settings(f"sqlite:///{database}", cache_ttl_seconds=0))
    reads = 6 * TURNS_PER_PASS

    async def answered_in_order() -> list[str]:
        order: list[str] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def get(path: str, name: str) -> None:
                assert (await client.get(path)).status_code in (200, 404)
                order.append(name)

            days = (f"2026-11-{1 + n % 28:02d}" for n in range(reads))
            reading = [get(f"/api/coach-plans/?coach=d&date={day}", "read") for day in days]
            await asyncio.gather(*reading, get("/health", "health"))
        return order

    with TestClient(app) as client:  # the lifespan: the database opened, the probe running
        assert client.get("/health").status_code == 200
        assert client.portal is not None
        order = client.portal.call(answered_in_order)
    assert order.index("health") <= TURNS_PER_PASS
    assert order.count("read") == reads


def test_bounded_reads_are_answered_while_every_database_thread_is_busy(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """On SQLite a read that walks an index and stops (one plan, one day, a coach's history, a page
    by coach and dates) runs on the event loop: slow reads holding every database thread (searches,
    a filter with no index to walk) do not hold it up. Those wait for a thread."""
    database = tmp_path / "plans.db"
    database.write_bytes(sqlite_template.read_bytes())
    app = create_app(make_settings(f"sqlite:///{database}", cache_ttl_seconds=0))
    bounded = [
        "/api/coach-plans/?coach=d&date=2026-11-25",
        "/api/coach-plans/all?date=2026-11-25",
        "/api/coach-plans/history?coach=d&days=30",
        "/api/v1/plans?coach=d&to=2026-11-25",
        f"/api/v1/plans?from=2026-11-01&to=2026-11-30&limit={LOOP_PAGE}",
        "/api/v1/plans/1",
    ]
    on_threads = [
        "/api/v1/search?q=breakout",
        "/api/v1/plans?author=dan",
        "/api/v1/plans?ticker=NVDA",
        f"/api/v1/plans?coach=d&limit={LOOP_PAGE + 1}",
        f"/api/coach-plans/history?coach=d&days={LOOP_PAGE + 1}",
    ]

    async def answered(release: threading.Event) -> tuple[list[int], list[str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            statuses = [(await asyncio.wait_for(client.get(path), 10)).status_code for path in bounded]
            waiting = [asyncio.ensure_future(client.get(path)) for path in on_threads]
            await asyncio.sleep(0.3)
            held = [path for path, task in zip(on_threads, waiting, strict=True) if not task.done()]
            release.set()
            assert all(r.status_code == 200 for r in await asyncio.gather(*waiting))
        return statuses, held

    with TestClient(app) as client:
        put = client.put("/internal/plans/d/2026-11-25", json=plan_body(text="NVDA breakout"), headers=AUTH)
        assert put.status_code == 201
        release = threading.Event()
        for _ in range(SQLITE_DB_THREADS):
            app.state.core.db_threads.submit(release.wait)
        assert client.portal is not None
        try:
            statuses, held = client.portal.call(answered, release)
        finally:
            release.set()
    assert statuses == [200] * len(bounded)
    assert held == on_threads


def test_prometheus_metrics(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan()
    api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    response = api_client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r"coach_plans_http_requests_total\{method=\"GET\",route=\"/api/coach-plans/\","
        r"status=\"200\"\} 2\.0",
        text,
    )
    assert (
        'coach_plans_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/api/coach-plans/"}'
        in text
    )
    assert 'coach_plans_cache_total{result="hit"} 1.0' in text
    assert "coach_plans_plans_stored 1.0" in text


def test_json_metrics(api_client: TestClient) -> None:
    api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    body = api_client.get("/metrics", headers={"Accept": "application/json"}).json()
    assert set(body) == {
        "total_requests",
        "error_count",
        "error_rate",
        "cache_hit_rate",
        "average_response_time_ms",
        "uptime_seconds",
    }
    assert body["total_requests"] == 1
    assert body["error_count"] == 0
    assert body["average_response_time_ms"] > 0


def test_docs_work_offline(api_client: TestClient) -> None:
    html = api_client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert api_client.get(asset).status_code == 200, asset
    assert "cdn" not in api_client.get("/redoc").text.lower()


def test_openapi_declares_errors_and_internal_tag(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    put = spec["paths"]["/internal/plans/{coach}/{date}"]["put"]
    assert put["tags"] == ["internal"]
    assert {"200", "201", "400", "401", "403", "404", "413", "422", "429", "503"} <= set(put["responses"])
    legacy = spec["paths"]["/api/coach-plans/"]["get"]["responses"]
    assert legacy["404"]["content"]["application/json"]["schema"]["$ref"].endswith("LegacyNotFoundOut")


def test_unreachable_database_is_503_never_no_plan() -> None:
    app = create_app(make_settings(UNREACHABLE_PG))
    with TestClient(app) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["database_connected"] is False
        read = client.get("/api/coach-plans/?coach=d&date=2026-11-25")
        assert read.status_code == 503
        assert read.json()["error"] == "storage_unavailable"
        assert "plan" not in read.json()
        write = client.put(
            "/internal/plans/d/2026-11-25",
            json=plan_body(),
            headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        assert write.status_code == 503
        assert "coach_plans_plans_stored NaN" in client.get("/metrics").text


def _corrupt(url: str) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 512)


def test_corrupted_database_file_is_503(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "plans.db"
    db.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{db}"
    with TestClient(create_app(make_settings(url))) as client:
        _corrupt(url)
        assert client.get("/api/coach-plans/?coach=d&date=2026-11-25").status_code == 503
        assert eventually(lambda: client.get("/health").status_code == 503)
        assert "not a SQLite database" in client.get("/health").json()["reason"]
        response = client.get("/api/coach-plans/?coach=d&date=2026-11-25")
        assert response.status_code == 503
        assert client.get("/api/v1/plans").status_code == 503


def test_cached_reads_survive_a_database_outage(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "plans.db"
    db.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{db}"
    # A TTL this short makes every entry stale at once: only the outage fallback can serve it.
    with TestClient(create_app(make_settings(url, cache_ttl_seconds=1e-9))) as client:
        client.put(
            "/internal/plans/d/2026-11-25",
            json=plan_body(text="cached"),
            headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        assert client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()["plan"] == "cached"
        _corrupt(url)
        response = client.get("/api/coach-plans/?coach=d&date=2026-11-25")
        assert (response.status_code, response.json()["plan"]) == (200, "cached")
        assert client.get("/api/coach-plans/?coach=i&date=2026-11-25").status_code == 503


def test_bug_is_500_with_request_id_not_a_traceback(api_app: object) -> None:
    from fastapi import FastAPI

    assert isinstance(api_app, FastAPI)

    @api_app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    client = TestClient(api_app, raise_server_exceptions=False)  # api_app's lifespan is running
    response = client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "internal error; quote request id req-123",
    }


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/webhooks/api/coach-plans/all"])
def test_unknown_route_is_told_apart_from_a_missing_plan(api_client: TestClient, path: str) -> None:
    response = api_client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "route_not_found", "detail": f"no such route: GET {path}"}


def test_wrong_method_uses_error_shape(api_client: TestClient) -> None:
    response = api_client.delete("/api/coach-plans/all")
    assert (response.status_code, response.json()["error"]) == (405, "method_not_allowed")


def test_event_replay_with_an_unreachable_database_is_503_before_the_stream() -> None:
    """The first read of missed events happens before the response starts: a 503 like any read,
    not `: connected` and then a stream cut with a traceback."""
    app = create_app(make_settings(UNREACHABLE_PG))
    with TestClient(app) as client:
        replay = client.get("/api/v1/events", headers={"Last-Event-ID": "5"})
        assert replay.status_code == 503
        assert replay.json()["error"] == "storage_unavailable"
