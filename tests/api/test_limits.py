"""What each bad input gets, body and rate limits, ETag/304 and cache invalidation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coach_plans_api.app import create_app
from coach_plans_api.schemas import ChartIn
from tests.conftest import PutPlan, make_settings, plan_body

URL = "/internal/plans/coach_d/2026-11-25"


def _with(**changes: Any) -> dict[str, Any]:
    body = plan_body()
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (_with(plan_text=""), "plan_text", "at least 1 character"),
        (_with(plan_text="   \n "), "plan_text", "at least 1 character"),
        (_with(plan_text="x" * 10_001), "plan_text", "at most 10000 characters"),
        (
            _with(charts=[{"url": f"https://c.example/{n}.png"} for n in range(11)]),
            "charts",
            "at most 10 items",
        ),
        (
            _with(charts=[{"url": "https://c.example/notes.pdf"}]),
            "charts.0",
            "PNG, JPG, JPEG, GIF or WEBP",
        ),
        (
            _with(charts=[{"url": "https://c.example/a", "content_type": "text/html"}]),
            "charts.0",
            "PNG, JPG",
        ),
        (
            _with(charts=[{"url": "https://c.example/a.png", "filename": "../../etc/passwd.png"}]),
            "charts.0.filename",
            "plain file name",
        ),
        (
            _with(charts=[{"url": "javascript:alert(1).png"}]),
            "charts.0.url",
            "should match pattern",
        ),
        # URLs the pattern lets through but no HTTP client could fetch (each was a 500 once).
        *(
            (_with(charts=[{"url": url}]), "charts.0.url", f"not a valid chart URL: {reason}")
            for url, reason in [
                ("http://[::1/a.png", "Invalid port"),
                ("https://cdn.discordapp.com:abc/a.png", "Invalid port: 'abc'"),
                ("http://[zz]/a.png", "Invalid IPv6 address"),
                ("https://xn--/a.png", "Malformed A-label"),
                ("https:///a.png", "it names no host"),
                ("https://c.example:70000/a.png", "port 70000 is out of range"),
                ("https://c.example/\x01.png", "it holds a control character"),
            ]
        ),
        (_with(message_id="not-a-snowflake"), "message_id", "should match pattern"),
        (
            _with(actor={"user_id": "1", "display_name": ""}),
            "actor.display_name",
            "at least 1 character",
        ),
        (_with(unexpected="x"), "unexpected", "Extra inputs are not permitted"),
        ({"plan_text": "no actor"}, "actor", "Field required"),
    ],
)
def test_validation_errors_name_the_field(
    api_client: TestClient,
    internal_headers: dict[str, str],
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = api_client.put(URL, json=body, headers=internal_headers)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "validation_error"
    assert any(f["field"] == field and message in f["message"] for f in error["fields"]), error
    assert api_client.get("/api/v1/plans").json()["items"] == []


def test_an_edit_with_a_chart_url_no_client_could_fetch_is_422_and_keeps_the_plan(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    plan = put_plan(text="before", charts=["https://c.example/a.png"])
    edit = {**plan_body(text="after"), "charts": [{"url": "https://c.example:abc/b.png"}]}
    del edit["channel"], edit["channel_id"]
    response = api_client.patch(f"/internal/plans/{plan['id']}", json=edit, headers=internal_headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "charts.0.url"
    kept = api_client.get(f"/api/v1/plans/{plan['id']}").json()
    assert (kept["plan"], [c["url"] for c in kept["charts"]]) == ("before", ["https://c.example/a.png"])


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["http://", "https://"]),
    st.lists(
        st.sampled_from([*"ab.-:[]@%19", "xn--", "[::1]", "é", "ß", "\u200b", "\x7f", "\uff0e"]), max_size=12
    ),
    st.sampled_from(["", "/", "?", "#"]),
    st.text(max_size=20),
)
def test_a_chart_url_that_passes_validation_is_one_an_http_client_can_fetch(
    scheme: str, authority: list[str], separator: str, rest: str
) -> None:
    """The archiver fetches with httpx: whatever the body's validation lets through, httpx parses
    (a URL it refused once made the write a 500)."""
    url = scheme + "".join(authority) + separator + rest + ".png"
    try:
        ChartIn(url=url)
    except ValidationError:
        return
    parsed = httpx.URL(url)
    assert parsed.host
    assert parsed.port is None or parsed.port <= 65535


def test_ten_charts_and_image_types_are_accepted(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    charts = [
        {"url": f"https://c.example/{n}.{ext}"}
        for n, ext in enumerate(["png", "jpg", "jpeg", "gif", "webp"] * 2)
    ]
    charts[0] = {
        "url": "https://c.example/x?sig=1",
        "content_type": "image/png",
        "filename": "x.png",
    }
    response = api_client.put(
        URL, json=_with(charts=charts, plan_text="x" * 10_000), headers=internal_headers
    )
    assert response.status_code == 201
    assert len(response.json()["charts"]) == 10


def test_text_is_stored_verbatim(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    text = "'; DROP TABLE coach_plans; -- 📈 مرحبا <script>alert(1)</script>"
    api_client.put(URL, json=_with(plan_text=text), headers=internal_headers)
    assert api_client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()["plan"] == text


@pytest.mark.parametrize(
    ("coach", "date", "error"),
    [("coach_x", "2026-11-25", "unknown_coach"), ("d", "2026-02-30", "invalid_date")],
)
def test_bad_path_is_400(
    api_client: TestClient, internal_headers: dict[str, str], coach: str, date: str, error: str
) -> None:
    response = api_client.put(f"/internal/plans/{coach}/{date}", json=plan_body(), headers=internal_headers)
    assert (response.status_code, response.json()["error"]) == (400, error)


def test_malformed_json_is_422(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    response = api_client.put(
        URL, content=b"{not json", headers={**internal_headers, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_body_over_64_kib_is_413(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    response = api_client.put(URL, json=_with(plan_text="x" * 70_000), headers=internal_headers)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_chunked_body_over_64_kib_is_413(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 4096

    response = api_client.put(
        URL, content=chunks(), headers={**internal_headers, "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_small_chunked_body_is_read(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    import json

    def chunks() -> Any:
        yield json.dumps(plan_body(text="chunked")).encode()

    response = api_client.put(
        URL, content=chunks(), headers={**internal_headers, "content-type": "application/json"}
    )
    assert response.status_code == 201


def test_rate_limit_answers_429_with_retry_after(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_per_minute=5))
    with TestClient(app) as client:
        statuses = [client.get("/api/coach-plans/all").status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        limited = client.get("/api/v1/plans")
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Health and internal endpoints are not rate limited.
        assert client.get("/health").status_code == 200


def test_etag_and_304(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan()
    first = api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    etag = first.headers["ETag"]
    again = api_client.get("/api/coach-plans/?coach=d&date=2026-11-25", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    other = api_client.get("/api/coach-plans/?coach=d&date=2026-11-25", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200
    for matching in (f"W/{etag}", f'"stale", {etag}', "*"):  # weakly, in a list, or any at all
        response = api_client.get(
            "/api/coach-plans/?coach=d&date=2026-11-25", headers={"If-None-Match": matching}
        )
        assert (response.status_code, response.headers["ETag"]) == (304, etag), matching


def test_writes_invalidate_cached_reads(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan(text="first", message_id="1")
    url = "/api/coach-plans/?coach=d&date=2026-11-25"
    etag = api_client.get(url).headers["ETag"]
    assert api_client.get(url).json()["plan"] == "first"
    assert api_client.get("/api/coach-plans/all?date=2026-11-25").json()["coach_d"]["plan"] == "first"
    put_plan(text="second", message_id="2")
    response = api_client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.json()["plan"] == "second"
    assert api_client.get("/api/coach-plans/all?date=2026-11-25").json()["coach_d"]["plan"] == "second"


def test_cache_hits_are_counted(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan()
    for _ in range(4):
        api_client.get("/api/coach-plans/?coach=d&date=2026-11-25")
    summary = api_client.get("/metrics", headers={"Accept": "application/json"}).json()
    assert summary["cache_hit_rate"] == pytest.approx(3 / 4)


def test_security_headers(api_client: TestClient) -> None:
    response = api_client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-request-id"]
