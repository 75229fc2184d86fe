"""One error shape from one mapping (middleware included); the app's plumbing: operation ids,
resources that open and close with the lifespan."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from coach_plans_api import db, migrate
from coach_plans_api.app import create_app
from coach_plans_api.routes import charts, dashboard, internal, legacy, ops, v1
from tests.conftest import INTERNAL_TOKEN, make_settings, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
URL = "/internal/plans/coach_d/2026-11-25"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("PUT", URL, {"content": b"x" * 70_000, "headers": AUTH}, 413, "payload_too_large"),
        (
            "PUT",
            URL,
            {"content": b"{}", "headers": {**AUTH, "content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("GET", "/api/v1/plans?author=%00", {}, 400, "bad_request"),
        ("GET", "/api/v1/plans?limit=1&limit=2", {}, 400, "bad_request"),
        ("GET", "/no/such/route", {}, 404, "route_not_found"),
        ("DELETE", "/api/coach-plans/all", {}, 405, "method_not_allowed"),
        ("PUT", URL, {"json": plan_body()}, 401, "unauthorized"),
        ("GET", "/api/v1/plans/12345", {}, 404, "not_found"),
        ("GET", "/api/v1/plans?cursor=nope", {}, 400, "invalid_cursor"),
    ],
)
def test_every_refusal_has_the_one_shape(
    api_client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = api_client.request(method, path, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert body["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


def test_a_method_not_allowed_names_get_and_head_where_get_is_served(api_client: TestClient) -> None:
    assert api_client.request("OPTIONS", "/api/v1/plans").headers["Allow"] == "GET, HEAD"
    assert api_client.head("/api/v1/plans").status_code == 200


def test_rate_limited_answer_carries_retry_after(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url, rate_limit_per_minute=1))) as client:
        client.get("/api/v1/coaches")
        response = client.get("/api/v1/coaches")
    assert response.status_code == 429
    assert set(response.json()) == {"error", "detail"}
    assert response.json()["detail"] == f"too many requests; retry in {response.headers['Retry-After']} s"


def test_legacy_no_plan_body_is_unchanged(api_client: TestClient) -> None:
    response = api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no plan for coach_d on 2026-11-25",
        "plan": "No plan available for coach_d on 2026-11-25",
        "charts": [],
    }


def test_every_route_has_an_explicit_operation_id(api_app: FastAPI) -> None:
    routers = (legacy.router, v1.router, internal.router, charts.router, ops.router, dashboard.router)
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 18
    missing = [r.path for r in routes if r.operation_id is None]
    assert missing == []
    schema = api_app.openapi()
    ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    links = [
        link["operationId"]
        for path in schema["paths"].values()
        for op in path.values()
        for response in op.get("responses", {}).values()
        for link in response.get("links", {}).values()
    ]
    assert links
    assert set(links) <= ids


def test_the_app_runs_twice_in_one_process(database_url: str) -> None:
    """Resources open with the lifespan and close with it: a second run starts clean."""
    app = create_app(make_settings(database_url))
    for run in range(2):
        with TestClient(app) as client:
            engine = client.app.state.core.service.db.engine  # type: ignore[attr-defined]
            response = client.put(URL, json=plan_body(text=f"run {run}", message_id=str(run)), headers=AUTH)
            assert response.status_code == (201 if run == 0 else 200)
            assert client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()["plan"] == f"run {run}"
        assert app.state.core is None  # nothing of the closed run is left for requests to use
        assert engine.pool.checkedout() == 0


def test_a_lock_held_elsewhere_is_a_503_after_the_lock_wait_not_a_hang(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session holds the plans table (a stuck migration, a manual `LOCK TABLE`): a request
    waits at most the lock wait (30 s; 0.3 s here), then says the storage is unavailable."""
    monkeypatch.setattr(db, "LOCK_WAIT_MS", 300)
    migrate.upgrade(make_url(postgres_url))
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    with TestClient(create_app(make_settings(postgres_url))) as client:
        written = client.put("/internal/plans/d/2026-11-25", json=plan_body(), headers=headers)
        assert written.status_code == 201
        dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as holder:
            holder.execute("LOCK TABLE coach_plans IN ACCESS EXCLUSIVE MODE")
            for response in (
                client.put("/internal/plans/d/2026-11-25", json=plan_body(text="new"), headers=headers),
                client.get("/api/v1/plans/1"),
            ):
                assert (response.status_code, response.json()["error"]) == (503, "storage_unavailable")
        assert client.get("/api/v1/plans/1").json()["plan"] == plan_body()["plan_text"]
