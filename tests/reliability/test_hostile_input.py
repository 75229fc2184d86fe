"""The catalogue of hostile and malformed input (docs/reliability.md): each gets its answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coach_plans_api.app import create_app
from tests.conftest import INTERNAL_TOKEN, PutPlan, make_settings, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
URL = "/internal/plans/coach_d/2026-11-25"


def _body(**changes: Any) -> dict[str, Any]:
    return {**plan_body(), **changes}


# (name, method, path, json body or raw bytes, extra headers, expected status, expected error code)
CATALOGUE: list[tuple[str, str, str, Any, dict[str, str], int, str | None]] = [
    ("unknown coach", "PUT", "/internal/plans/coach_x/2026-11-25", _body(), AUTH, 400, "unknown_coach"),
    ("impossible day", "PUT", "/internal/plans/d/2026-02-30", _body(), AUTH, 400, "invalid_date"),
    ("five-digit year", "GET", "/api/coach-plans/?coach=d&date=99999-01-01", None, {}, 400, "invalid_date"),
    ("empty text", "PUT", URL, _body(plan_text=""), AUTH, 422, "validation_error"),
    ("10,001 characters", "PUT", URL, _body(plan_text="x" * 10_001), AUTH, 422, "validation_error"),
    (
        "11 charts",
        "PUT",
        URL,
        _body(charts=[{"url": f"https://c.example/{n}.png"} for n in range(11)]),
        AUTH,
        422,
        "validation_error",
    ),
    (
        "non-image attachment",
        "PUT",
        URL,
        _body(charts=[{"url": "https://c.example/run.exe"}]),
        AUTH,
        422,
        "validation_error",
    ),
    (
        "path traversal in a file name",
        "PUT",
        URL,
        _body(charts=[{"url": "https://c.example/a.png", "filename": "../../etc/passwd"}]),
        AUTH,
        422,
        "validation_error",
    ),
    (
        "path traversal in a chart URL",
        "GET",
        "/charts/..%2F..%2Fetc%2Fpasswd",
        None,
        {},
        404,
        "route_not_found",
    ),
    ("NUL in text", "PUT", URL, _body(plan_text="bad\x00text"), AUTH, 422, "validation_error"),
    ("NUL in a query", "GET", "/api/v1/plans?author=a%00b", None, {}, 400, "bad_request"),
    ("oversized body", "PUT", URL, _body(plan_text="x" * 70_000), AUTH, 413, "payload_too_large"),
    (
        "not JSON at all",
        "PUT",
        URL,
        b"{nope",
        {**AUTH, "content-type": "application/json"},
        422,
        "validation_error",
    ),
    (
        "wrong content type",
        "PUT",
        URL,
        json.dumps(plan_body()).encode(),
        {**AUTH, "content-type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    ("missing token", "PUT", URL, _body(), {}, 401, "unauthorized"),
    (
        "forged token",
        "PUT",
        URL,
        _body(),
        {"Authorization": "Bearer " + INTERNAL_TOKEN[:-1] + "x"},
        401,
        "unauthorized",
    ),
    ("negative id", "GET", "/api/v1/plans/-1", None, {}, 422, "validation_error"),
    ("id past 32 bits", "GET", "/api/v1/plans/99999999999", None, {}, 422, "validation_error"),
    ("unknown field", "PUT", URL, _body(is_admin=True), AUTH, 422, "validation_error"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error"),
    [pytest.param(*case[1:], id=case[0]) for case in CATALOGUE],
)
def test_hostile_input_gets_a_clear_answer_and_stores_nothing(
    api_client: TestClient,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = api_client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]
    assert api_client.get("/api/v1/plans").json()["items"] == []


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE coach_plans; --",
        "1' OR '1'='1",
        "📈🚀 NVDA to the moon 🌕",
        "مرحبا — خطة اليوم: شراء فوق 950",  # right-to-left
        "\u202eRTL override\u202c and zero\u200bwidth",
        "<img src=x onerror=alert(1)>",
    ],
)
def test_strange_but_valid_text_is_stored_verbatim(
    api_client: TestClient, put_plan: PutPlan, text: str
) -> None:
    put_plan(text=text)
    assert api_client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()["plan"] == text


def test_another_users_plan_and_non_admin_clear_are_refused(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    plan = put_plan(user_id="1001")
    stranger = {"user_id": "2002", "display_name": "Eve", "is_admin": False}
    for method, path, body in [
        (
            "PATCH",
            f"/internal/plans/{plan['id']}",
            {"plan_text": "mine now", "actor": stranger, "message_id": "9"},
        ),
        ("DELETE", f"/internal/plans/{plan['id']}", {"actor": stranger, "message_id": "9"}),
        ("POST", "/internal/plans/clear", {"date": "2026-11-25", "actor": stranger, "message_id": "9"}),
    ]:
        response = api_client.request(method, path, json=body, headers=internal_headers)
        assert (response.status_code, response.json()["error"]) == (403, "forbidden")
    assert api_client.get(f"/api/v1/plans/{plan['id']}").json()["plan"] == plan["plan"]


@pytest.mark.parametrize(
    "query",
    ["coach=coach_d&coach=coach_i", "coach=d&date=2026-11-25&date=2026-11-26", "coach=d&co%61ch=i"],
)
def test_a_repeated_query_parameter_is_refused(api_client: TestClient, put_plan: PutPlan, query: str) -> None:
    """Silently reading the last value answered a question the caller did not ask."""
    put_plan(coach="d", text="D")
    response = api_client.get(f"/api/coach-plans/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "repeated" in response.json()["detail"]
    assert api_client.get("/api/v1/plans?limit=1&limit=2").status_code == 400


def test_missing_database_file_is_503_not_no_plan(tmp_path: Any) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'never-migrated.db'}"))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 503
        response = client.get("/api/coach-plans/?coach=d&date=2026-11-25")
        assert response.status_code == 503
        assert "plan" not in response.json()


def test_cors_is_off_unless_configured(database_url: str) -> None:
    origin = {"Origin": "https://dashboard.example"}
    with TestClient(create_app(make_settings(database_url))) as client:
        assert "access-control-allow-origin" not in client.get("/api/coach-plans/all", headers=origin).headers
    with TestClient(
        create_app(make_settings(database_url, cors_origins="https://dashboard.example"))
    ) as client:
        response = client.get("/api/coach-plans/all", headers=origin)
        assert response.headers["access-control-allow-origin"] == "https://dashboard.example"
        assert (
            "access-control-allow-origin"
            not in client.get("/api/coach-plans/all", headers={"Origin": "https://evil.example"}).headers
        )
