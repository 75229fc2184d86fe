"""CoachPlansClient against respx: models, error mapping, retries, backoff, ETag revalidation."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import respx

from coach_plans_client import (
    APIError,
    BadRequestError,
    ClientClosedError,
    CoachPlansClient,
    CoachPlansError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from coach_plans_client._base import parse_retry_after

from .conftest import API, DATE, HEALTHY, FakeClock, full_jitter, legacy_plan

PLAN_PATH = "/api/coach-plans/"


@pytest.fixture
def client(sleeps: list[float], clock: FakeClock) -> CoachPlansClient:
    return CoachPlansClient(API, sleep=sleeps.append, clock=clock)


def test_get_plan_returns_typed_plan_and_sends_coach_and_date(
    api: respx.MockRouter, client: CoachPlansClient
) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())

    plan = client.get_plan("coach_d", dt.date(2026, 11, 25))

    assert plan.plan == "coach_d plan for 2026-11-25: NVDA above 950"
    assert plan.charts == ("https://cdn.example/coach_d/2026-11-25/1.png",)
    assert plan.timestamp == dt.datetime(2026, 11, 25, 13, 30, tzinfo=dt.timezone.utc)
    assert plan.date == dt.date(2026, 11, 25)
    assert plan.to_legacy_dict()["author"] == "Dan"
    request = route.calls.last.request
    assert dict(request.url.params) == {"coach": "coach_d", "date": DATE}
    assert request.headers["accept"] == "application/json"


def test_date_is_left_to_the_server_when_not_given(api: respx.MockRouter, client: CoachPlansClient) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    client.get_plan("d")
    assert dict(route.calls.last.request.url.params) == {"coach": "d"}


@pytest.mark.parametrize(
    ("status", "body", "error_type", "code"),
    [
        (
            404,
            {"plan": "No plan available", "charts": [], "error": "not_found"},
            NotFoundError,
            "not_found",
        ),
        (400, {"error": "invalid_date", "detail": "bad date"}, BadRequestError, "invalid_date"),
        (
            422,
            {"error": "validation_error", "detail": "x", "fields": []},
            BadRequestError,
            "validation_error",
        ),
        (401, {"error": "unauthorized", "detail": "token"}, APIError, "unauthorized"),
        (403, {"error": "forbidden", "detail": "not yours"}, APIError, "forbidden"),
    ],
)
def test_client_errors_raise_typed_errors_without_retrying(
    api: respx.MockRouter,
    client: CoachPlansClient,
    sleeps: list[float],
    status: int,
    body: dict[str, object],
    error_type: type[APIError],
    code: str,
) -> None:
    route = api.get(PLAN_PATH).respond(status, json=body)

    with pytest.raises(error_type) as info:
        client.get_plan("coach_d", DATE)

    assert info.value.status_code == status
    assert info.value.error == code
    assert info.value.body == body
    assert info.value.method == "GET"
    assert info.value.url is not None
    assert "coach=coach_d" in info.value.url
    assert route.call_count == 1
    assert sleeps == []


def test_server_error_is_retried_with_backoff_and_full_jitter(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(500, json={"error": "internal", "detail": "boom"}),
            httpx.Response(503, json={"error": "storage_unavailable", "detail": "db"}),
            httpx.Response(200, json=legacy_plan()),
        ]
    )

    assert client.get_plan("coach_d", DATE).coach == "coach_d"
    assert route.call_count == 3
    assert full_jitter(sleeps, [0.5, 1.0])


def test_jitter_spreads_the_waits_of_clients_that_failed_together(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    """Without jitter every client would come back exactly backoff_factor seconds later."""
    api.get(PLAN_PATH).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=legacy_plan())] * 200)
    for _ in range(200):
        client.get_plan("coach_d", DATE)
    assert full_jitter(sleeps, [0.5] * 200)
    assert min(sleeps) < 0.1
    assert max(sleeps) > 0.4
    assert len(set(sleeps)) > 150


def test_server_error_after_the_last_retry_is_raised(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).respond(502, text="<html><body>Bad gateway</body></html>")

    with pytest.raises(ServerError, match="Bad gateway") as info:
        client.get_plan("coach_d", DATE)

    assert info.value.status_code == 502
    assert route.call_count == 3  # first try + max_retries=2
    assert full_jitter(sleeps, [0.5, 1.0])


def test_backoff_is_capped(api: respx.MockRouter, sleeps: list[float]) -> None:
    client = CoachPlansClient(API, max_retries=4, backoff_factor=1.0, max_backoff=3.0, sleep=sleeps.append)
    api.get(PLAN_PATH).respond(500)
    with pytest.raises(ServerError):
        client.get_plan("coach_d", DATE)
    assert full_jitter(sleeps, [1.0, 2.0, 3.0, 3.0])


def test_rate_limit_honours_retry_after_seconds(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "rate_limited"}),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    client.get_plan("coach_d", DATE)
    assert sleeps == [7.0]


@pytest.mark.parametrize("status", [429, 503])
def test_unavailable_honours_retry_after_too(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float], status: int
) -> None:
    api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(status, headers={"Retry-After": "2"}, json={"error": "x", "detail": "later"}),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    client.get_plan("coach_d", DATE)
    assert sleeps == [2.0]


def test_unavailable_asking_too_long_a_wait_is_raised_at_once(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).respond(
        503, headers={"Retry-After": "600"}, json={"error": "storage_unavailable", "detail": "down"}
    )
    with pytest.raises(ServerError):
        client.get_plan("coach_d", DATE)
    assert (route.call_count, sleeps) == (1, [])


def test_rate_limit_without_retry_after_uses_backoff(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    api.get(PLAN_PATH).mock(side_effect=[httpx.Response(429), httpx.Response(200, json=legacy_plan())])
    client.get_plan("coach_d", DATE)
    assert full_jitter(sleeps, [0.5])


def test_rate_limit_asking_too_long_a_wait_is_raised_at_once(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).respond(
        429, headers={"Retry-After": "120"}, json={"error": "rate_limited", "detail": "slow down"}
    )

    with pytest.raises(RateLimitError) as info:
        client.get_plan("coach_d", DATE)

    assert info.value.retry_after == 120.0
    assert route.call_count == 1
    assert sleeps == []


def test_retry_after_accepts_http_dates() -> None:
    now = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "value", ["Wed, 25 Nov 2026 12:00:05 -0000", "Wed, 25 Nov 2026 12:00:05", "25 Nov 2026 12:00:05"]
)
def test_retry_after_dates_without_a_zone_are_gmt(value: str) -> None:
    now = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after(value, now=now) == 5.0


@pytest.mark.parametrize(
    "value",
    ["", "-5", "+5", "1e3", "nan", "inf", "Wed, 32 Nov 2026 12:00:05 GMT", "Wed, 25 Nov 99999 12:00:05 GMT"],
)
def test_unusable_retry_after_values_are_no_retry_after(value: str) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize("status", [429, 503])
def test_a_zoneless_retry_after_date_is_waited_like_any_other(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float], status: int
) -> None:
    api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(status, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    assert client.get_plan("coach_d", DATE).coach == "coach_d"
    assert sleeps == [0.0]  # a date in the past: retry at once


def test_connect_errors_are_retried_then_succeed(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.ConnectError("Connection refused"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    assert client.get_plan("coach_d", DATE).plan.startswith("coach_d plan")
    assert route.call_count == 3
    assert full_jitter(sleeps, [0.5, 1.0])


def test_refused_connection_becomes_connection_error(api: respx.MockRouter, client: CoachPlansClient) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=httpx.ConnectError("Connection refused"))

    with pytest.raises(ConnectionError, match="Connection refused") as info:
        client.get_plan("coach_d", DATE)

    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert not isinstance(info.value, TimeoutError)
    assert route.call_count == 3


def test_read_timeout_is_not_retried(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=httpx.ReadTimeout("read timed out"))

    with pytest.raises(TimeoutError) as info:
        client.get_plan("coach_d", DATE)

    assert isinstance(info.value, ConnectionError)  # a timeout is a kind of connection failure
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "exc",
    [httpx.RemoteProtocolError("peer closed"), httpx.InvalidURL("bad url")],
)
def test_other_transport_failures_become_connection_errors(
    api: respx.MockRouter, client: CoachPlansClient, exc: Exception
) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=exc)
    with pytest.raises(ConnectionError):
        client.get_plan("coach_d", DATE)
    assert route.call_count == 1


def test_an_error_answer_nested_too_deeply_is_still_the_server_error(
    api: respx.MockRouter, client: CoachPlansClient
) -> None:
    api.get(PLAN_PATH).respond(
        500, content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}
    )
    with pytest.raises(ServerError, match="HTTP 500"):
        client.get_plan("coach_d", DATE)


def test_a_query_longer_than_a_url_may_be_is_a_value_error_naming_the_limit(
    api: respx.MockRouter, client: CoachPlansClient
) -> None:
    """httpx refuses to build the request: the argument is at fault, not the API's reachability."""
    with pytest.raises(ValueError, match="65,536 characters"):
        client.get_plan("d" * 70_000, DATE)
    with pytest.raises(ValueError, match="65,536 characters"):
        client.search("vwap " * 14_000)
    assert not api.calls


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (dt.datetime(2026, 11, 25, 23, 30), DATE),
        (dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=14))), DATE),
        (dt.date(2026, 11, 25), DATE),
    ],
)
def test_a_datetime_is_sent_as_its_date_everywhere(
    api: respx.MockRouter, client: CoachPlansClient, value: dt.date, sent: str
) -> None:
    plan_route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    plans_route = api.get("/api/v1/plans").respond(200, json={"items": [], "next_cursor": None})
    client.get_plan("d", value)
    client.list_plans(date=value, date_from=value, date_to=value)
    assert plan_route.calls.last.request.url.params["date"] == sent
    params = plans_route.calls.last.request.url.params
    assert (params["date"], params["from"], params["to"]) == (sent, sent, sent)


def test_undecodable_body_becomes_invalid_response(api: respx.MockRouter, client: CoachPlansClient) -> None:
    api.get(PLAN_PATH).mock(side_effect=httpx.DecodingError("bad gzip"))
    with pytest.raises(InvalidResponseError, match="bad gzip"):
        client.get_plan("coach_d", DATE)


@pytest.mark.parametrize(
    ("content", "content_type", "match"),
    [
        (b"<!doctype html><html>Login</html>", "text/html", "text/html"),
        (b'{"plan": "NVDA", "charts": [', "application/json", "expected JSON"),
        (b'{"charts": []}', "application/json", "'plan'"),
        (b'["not", "an", "object"]', "application/json", "JSON object"),
        (b'{"plan": "x", "charts": "nope"}', "application/json", "'charts'"),
        (b'{"plan": "x", "charts": [], "timestamp": "yesterday"}', "application/json", "ISO-8601"),
        (
            b"[" * 100_000 + b"]" * 100_000,
            "application/json",
            "expected JSON",
        ),  # Python's parser: RecursionError
    ],
)
def test_responses_breaking_the_contract_become_invalid_response(
    api: respx.MockRouter,
    client: CoachPlansClient,
    content: bytes,
    content_type: str,
    match: str,
) -> None:
    api.get(PLAN_PATH).respond(200, content=content, headers={"content-type": content_type})
    with pytest.raises(InvalidResponseError, match=match) as info:
        client.get_plan("coach_d", DATE)
    assert isinstance(info.value, CoachPlansError)
    assert info.value.status_code == 200
    assert info.value.url is not None


def test_etag_304_serves_and_refreshes_the_cached_plan(
    api: respx.MockRouter, sleeps: list[float], clock: FakeClock
) -> None:
    client = CoachPlansClient(API, cache_ttl=30, sleep=sleeps.append, clock=clock)
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(200, json=legacy_plan(), headers={"ETag": '"v1"'}),
            httpx.Response(304, headers={"ETag": '"v1"'}),
        ]
    )

    first = client.get_plan("coach_d", DATE)
    assert client.get_plan("coach_d", DATE) == first  # fresh: served from memory
    assert route.call_count == 1

    clock.advance(31)
    assert client.get_plan("coach_d", DATE) == first  # stale: revalidated, 304
    assert route.call_count == 2
    assert route.calls.last.request.headers["if-none-match"] == '"v1"'

    clock.advance(29)  # the 304 made the entry fresh for another full TTL
    assert client.get_plan("coach_d", DATE) == first
    assert route.call_count == 2


def test_changed_etag_replaces_the_cached_plan(api: respx.MockRouter) -> None:
    client = CoachPlansClient(API)  # cache_ttl=0: always revalidate
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(200, json=legacy_plan(text="old"), headers={"ETag": '"v1"'}),
            httpx.Response(200, json=legacy_plan(text="new"), headers={"ETag": '"v2"'}),
            httpx.Response(304),
        ]
    )
    assert client.get_plan("coach_d", DATE).plan == "old"
    assert client.get_plan("coach_d", DATE).plan == "new"
    assert client.get_plan("coach_d", DATE).plan == "new"
    assert [call.request.headers.get("if-none-match") for call in route.calls] == [
        None,
        '"v1"',
        '"v2"',
    ]


def test_without_cache_no_conditional_request_is_sent(api: respx.MockRouter) -> None:
    client = CoachPlansClient(API, cache_ttl=None)
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan(), headers={"ETag": '"v1"'})
    client.get_plan("coach_d", DATE)
    client.get_plan("coach_d", DATE)
    assert "if-none-match" not in route.calls.last.request.headers


def test_clear_cache_forgets_etags(api: respx.MockRouter) -> None:
    client = CoachPlansClient(API)
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan(), headers={"ETag": '"v1"'})
    client.get_plan("coach_d", DATE)
    client.clear_cache()
    client.get_plan("coach_d", DATE)
    assert "if-none-match" not in route.calls.last.request.headers


def test_timeout_defaults_to_ten_seconds_and_can_be_set(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    CoachPlansClient(API).get_plan("coach_d", DATE)
    assert route.calls.last.request.extensions["timeout"]["read"] == 10.0
    CoachPlansClient(API, timeout=2.5).get_plan("coach_d", DATE)
    assert route.calls.last.request.extensions["timeout"]["read"] == 2.5


def test_injected_http_client_is_used_with_its_own_timeout_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=legacy_plan())

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://injected", timeout=3.0)
    with CoachPlansClient(http_client=http) as client:
        client.get_plan("coach_d", DATE)
    assert str(seen[0].url).startswith("http://injected/api/coach-plans/")
    assert seen[0].extensions["timeout"]["read"] == 3.0
    assert not http.is_closed
    http.close()


def test_owned_http_client_is_closed_on_exit() -> None:
    with CoachPlansClient(API) as client:
        pass
    assert client._http.is_closed


def test_negative_retries_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        CoachPlansClient(API, max_retries=-1)


def test_all_plans_history_and_v1_endpoints(api: respx.MockRouter, client: CoachPlansClient) -> None:
    v1_plan = {
        "id": 3,
        "coach": "coach_d",
        "coach_display_name": "Coach D",
        "date": DATE,
        "plan": "NVDA above 950",
        "charts": [
            {
                "url": "https://cdn.example/1.png",
                "order": 0,
                "filename": "1.png",
                "content_type": "image/png",
                "size_bytes": 10,
            }
        ],
        "author": "Dan",
        "author_id": "123456789012345678",
        "channel": "plans",
        "channel_id": "42",
        "source_message_id": "99",
        "created_at": "2026-11-25T13:30:00Z",
        "edited_at": None,
        "edited": False,
        "deleted_at": None,
    }
    revision = {
        "id": 1,
        "plan_id": 3,
        "action": "create",
        "plan_text": "NVDA above 950",
        "charts": [{"url": "https://cdn.example/1.png", "order": 0}],
        "editor": "Dan",
        "editor_id": "123456789012345678",
        "message_id": "99",
        "created_at": "2026-11-25T13:30:00Z",
    }
    api.get("/api/coach-plans/all").respond(200, json={"coach_d": legacy_plan()})
    api.get("/api/coach-plans/history").respond(200, json={"coach": "coach_d", "days": 7, "plans": [v1_plan]})
    plans_route = api.get("/api/v1/plans").respond(200, json={"items": [v1_plan], "next_cursor": "abc"})
    api.get("/api/v1/plans/3").respond(200, json=v1_plan)
    api.get("/api/v1/plans/3/revisions").respond(200, json={"plan_id": 3, "revisions": [revision]})
    api.get("/api/v1/coaches").respond(
        200, json={"coaches": [{"coach": "coach_d", "key": "d", "name": "Coach D"}]}
    )

    assert client.get_all_plans(DATE)["coach_d"].author == "Dan"
    assert client.get_history("coach_d")[0].author_id == "123456789012345678"
    page = client.list_plans(coach="coach_d", date_from="2026-11-01", date_to=dt.date(2026, 11, 30), limit=10)
    assert page.next_cursor == "abc"
    assert dict(plans_route.calls.last.request.url.params) == {
        "coach": "coach_d",
        "from": "2026-11-01",
        "to": "2026-11-30",
        "limit": "10",
    }
    plan = client.get_plan_by_id(3)
    assert plan.charts[0].content_type == "image/png"
    assert plan.created_at == dt.datetime(2026, 11, 25, 13, 30, tzinfo=dt.timezone.utc)
    assert client.get_revisions(3)[0].action == "create"
    assert client.list_coaches()[0].name == "Coach D"


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/api/coach-plans/all", ["coach_d"], lambda c: c.get_all_plans(DATE)),
        ("/api/v1/coaches", {"coaches": "all"}, lambda c: c.list_coaches()),
        (
            "/api/v1/plans/3/revisions",
            {"revisions": [{"id": 1, "plan_id": 3, "action": "undo"}]},
            lambda c: c.get_revisions(3),
        ),
        (
            "/api/v1/plans/3",
            {"id": "3", "coach": "coach_d", "date": DATE, "plan": "x"},
            lambda c: c.get_plan_by_id(3),
        ),
        (
            "/api/v1/plans/3",
            {"id": 3, "coach": "coach_d", "plan": "x"},
            lambda c: c.get_plan_by_id(3),
        ),
        (
            "/api/v1/plans/3",
            {"id": 3, "coach": "coach_d", "date": "25/11", "plan": "x"},
            lambda c: c.get_plan_by_id(3),
        ),
        (
            "/api/v1/plans/3",
            {"id": 3, "coach": "coach_d", "date": DATE, "plan": "x", "edited": "no"},
            lambda c: c.get_plan_by_id(3),
        ),
        ("/health", {**HEALTHY, "uptime_seconds": "long"}, lambda c: c.health()),
        ("/health", {**HEALTHY, "version": ["2"]}, lambda c: c.health()),
    ],
)
def test_malformed_bodies_of_every_endpoint_are_invalid_responses(
    api: respx.MockRouter, client: CoachPlansClient, path: str, body: object, call: object
) -> None:
    api.get(path).respond(200, json=body)
    with pytest.raises(InvalidResponseError):
        call(client)  # type: ignore[operator]


def test_health_reports_an_unhealthy_service_without_retrying(
    api: respx.MockRouter, client: CoachPlansClient, sleeps: list[float]
) -> None:
    body = {
        "status": "unhealthy",
        "bot_connected": False,
        "database_connected": False,
        "plans_count": None,
        "uptime_seconds": 12.5,
        "version": "2.0.0",
    }
    route = api.get("/health").respond(503, json=body)

    health = client.health()

    assert health.status == "unhealthy"
    assert not health.healthy
    assert health.uptime_seconds == 12.5
    assert route.call_count == 1
    assert sleeps == []


GATEWAY_BODIES = [
    pytest.param({}, id="empty-object"),
    pytest.param({"message": "upstream unavailable", "status": "error"}, id="gateway-json"),
    pytest.param({"items": []}, id="no-next_cursor"),
]
LIST_CALLS = [
    pytest.param(lambda c: c.list_plans(ticker="NVDA"), id="list_plans"),
    pytest.param(lambda c: list(c.iter_plans()), id="iter_plans"),
    pytest.param(lambda c: c.fetch_plans_for_ticker("NVDA", as_of=DATE), id="fetch_plans_for_ticker"),
    pytest.param(lambda c: c.search("vwap"), id="search"),
    pytest.param(lambda c: list(c.iter_search("vwap")), id="iter_search"),
    pytest.param(lambda c: c.get_history("d"), id="get_history"),
    pytest.param(lambda c: c.get_revisions(1), id="get_revisions"),
    pytest.param(lambda c: c.list_coaches(), id="list_coaches"),
]


@pytest.mark.parametrize("call", LIST_CALLS)
@pytest.mark.parametrize("body", GATEWAY_BODIES)
def test_a_200_without_the_contracts_list_is_invalid_not_empty(
    api: respx.MockRouter, client: CoachPlansClient, body: dict[str, object], call: object
) -> None:
    """A proxy's JSON error (or any object missing the list) must not read as "no plans"."""
    api.get(url__regex=r"/api/.*").respond(200, json=body)
    with pytest.raises(InvalidResponseError, match="does not match the contract"):
        call(client)  # type: ignore[operator]


V1_CORE = {"id": 3, "coach": "coach_d", "date": DATE, "plan": "x"}


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/api/v1/plans/3", {**V1_CORE, "edited": False}, "charts"),
        ("/api/v1/plans/3", {**V1_CORE, "charts": []}, "edited"),
        ("/api/v1/plans/3", {**V1_CORE, "edited": False, "charts": [{"url": "u"}]}, "order"),
        ("/api/coach-plans/", {"plan": "x"}, "charts"),
        ("/health", {"status": "healthy", "database_connected": True}, "bot_connected"),
    ],
)
def test_required_fields_are_never_defaulted(
    api: respx.MockRouter, client: CoachPlansClient, path: str, body: dict[str, object], call: str
) -> None:
    api.get(path).respond(200, json=body)
    calls = {
        "/api/v1/plans/3": lambda: client.get_plan_by_id(3),
        "/api/coach-plans/": lambda: client.get_plan("d", DATE),
        "/health": client.health,
    }
    with pytest.raises(InvalidResponseError, match=f"'{call}': missing"):
        calls[path]()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_plan("d", DATE),
        lambda c: c.get_all_plans(DATE),
        lambda c: c.list_plans(),
        lambda c: list(c.iter_plans()),
        lambda c: c.search("vwap"),
        lambda c: c.health(),
        lambda c: next(c.events(max_reconnects=0)),
    ],
)
def test_a_closed_client_raises_a_documented_error(api: respx.MockRouter, call: object) -> None:
    client = CoachPlansClient(API)
    client.close()
    with pytest.raises(ClientClosedError, match="closed") as info:
        call(client)  # type: ignore[operator]
    assert isinstance(info.value, RuntimeError)  # what httpx raised, for code that caught that
    assert isinstance(info.value, CoachPlansError)
    assert not api.calls


def test_a_closed_injected_http_client_is_reported_the_same() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    client = CoachPlansClient(API, http_client=http)
    http.close()
    with pytest.raises(ClientClosedError):
        client.list_coaches()
