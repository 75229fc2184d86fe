"""DiscordWebhookClient: the old client's methods and shapes, and it never raises."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from coach_plans_client import DiscordWebhookClient
from coach_plans_client._legacy import server_base_url

from .conftest import API, DATE, HEALTHY, FakeClock, legacy_plan

PLAN_PATH = "/api/coach-plans/"
COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")
SUMMARY_URL = "https://discord.com/api/webhooks/123/s3cr3t-token"
FALLBACK = f"No plan available for coach_d on {DATE}"


def trading_agents_urls(base: str = API) -> dict[str, str]:
    """The dict TradingAgents passes: one legacy URL per coach plus the summary webhook."""
    urls = {coach: f"{base}/api/coach-plans/?coach={coach}" for coach in COACHES}
    urls["summary_webhook"] = SUMMARY_URL
    return urls


def plan_for_request(request: httpx.Request) -> httpx.Response:
    params = request.url.params
    return httpx.Response(200, json=legacy_plan(params["coach"], params["date"]))


@pytest.fixture
def client(clock: FakeClock, sleeps: list[float]) -> DiscordWebhookClient:
    return DiscordWebhookClient(trading_agents_urls(), clock=clock, sleep=sleeps.append)


def test_fetch_coach_plan_returns_the_servers_json(
    api: respx.MockRouter, client: DiscordWebhookClient
) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())

    plan = client.fetch_coach_plan("coach_d", DATE)

    assert plan == legacy_plan()
    assert dict(route.calls.last.request.url.params) == {"coach": "coach_d", "date": DATE}


@pytest.mark.parametrize("name", ["coach_d", "d", "D", "Coach_D"])
def test_coach_name_forms_are_normalised(
    api: respx.MockRouter, client: DiscordWebhookClient, name: str
) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    client.fetch_coach_plan(name, DATE)
    assert route.calls.last.request.url.params["coach"] == "coach_d"


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://host:5000/api/coach-plans/?coach=coach_d", "http://host:5000"),
        ("http://host:5000/api/coach-plans/", "http://host:5000"),
        ("http://host:5000/api/coach-plans", "http://host:5000"),
        ("http://host:5000", "http://host:5000"),
        ("http://host:5000/", "http://host:5000"),
        ("host:5000", "http://host:5000"),
        ("https://example.com/plans/api/coach-plans/?coach=d", "https://example.com/plans"),
    ],
)
def test_server_base_url_is_derived_liberally(url: str, base: str) -> None:
    assert server_base_url(url) == base


def test_bare_host_urls_reach_the_legacy_endpoint(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    client = DiscordWebhookClient({"coach_d": API})
    client.fetch_coach_plan("coach_d", DATE)
    assert route.call_count == 1


def test_dates_may_be_date_objects_and_default_to_today_in_new_york(
    api: respx.MockRouter, client: DiscordWebhookClient
) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)

    client.fetch_coach_plan("coach_d", dt.date(2026, 11, 25))
    assert route.calls.last.request.url.params["date"] == DATE
    client.fetch_coach_plan("coach_d", dt.datetime(2026, 11, 26, 23, 0))
    assert route.calls.last.request.url.params["date"] == "2026-11-26"
    today = dt.datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    assert client.fetch_coach_plan("coach_d")["date"] == today


FAILURES = [
    pytest.param(httpx.ReadTimeout("timed out"), "TimeoutError", id="timeout"),
    pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), "ConnectionError", id="refused"),
    pytest.param(
        httpx.Response(400, json={"error": "invalid_date", "detail": "x"}),
        "BadRequestError",
        id="400",
    ),
    pytest.param(httpx.Response(401, json={"error": "unauthorized", "detail": "x"}), "APIError", id="401"),
    pytest.param(httpx.Response(429, headers={"Retry-After": "600"}), "RateLimitError", id="429"),
    pytest.param(httpx.Response(500, json={"error": "internal", "detail": "x"}), "ServerError", id="500"),
    pytest.param(httpx.Response(503, text="<html>Service Unavailable</html>"), "ServerError", id="503-html"),
    pytest.param(
        httpx.Response(
            200, text="<!doctype html><title>Login</title>", headers={"content-type": "text/html"}
        ),
        "InvalidResponseError",
        id="html-200",
    ),
    pytest.param(
        httpx.Response(200, content=b'{"plan": "NVDA', headers={"content-type": "application/json"}),
        "InvalidResponseError",
        id="malformed-json",
    ),
    pytest.param(httpx.Response(200, json={"charts": []}), "InvalidResponseError", id="no-plan-field"),
]


@pytest.mark.parametrize(("outcome", "error"), FAILURES)
def test_every_failure_returns_the_fallback_counts_and_logs_an_error(
    api: respx.MockRouter,
    client: DiscordWebhookClient,
    caplog: pytest.LogCaptureFixture,
    outcome: httpx.Response | Exception,
    error: str,
) -> None:
    api.get(PLAN_PATH).mock(side_effect=[outcome] * 3)  # retried ones fail every time

    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        plan = client.fetch_coach_plan("coach_d", DATE)

    assert plan == {"plan": FALLBACK, "charts": [], "error": error}
    assert plan["plan"].startswith("No plan available")
    assert client.get_metrics()["errors"] == 1
    [record] = [r for r in caplog.records if r.name == "coach_plans_client.legacy"]
    message = record.getMessage()
    assert "coach=coach_d" in message
    assert f"date={DATE}" in message
    assert f"GET {API}/api/coach-plans/?coach=coach_d&date={DATE}" in message
    assert error in message


def test_a_bug_below_still_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug in a transport")

    http = httpx.Client(transport=httpx.MockTransport(broken))
    client = DiscordWebhookClient({"coach_d": API}, http_client=http)

    with caplog.at_level(logging.ERROR, logger="coach_plans_client"):
        plan = client.fetch_coach_plan("coach_d", DATE)
        all_plans = client.fetch_all_coach_plans("2026-11-26")

    assert plan["plan"] == FALLBACK
    assert all_plans["coach_d_plan"] == "No plan available for coach_d on 2026-11-26"
    assert client.get_metrics()["errors"] == 2
    assert caplog.records[0].exc_info is not None  # the traceback is kept for the bug report


def test_not_found_is_a_miss_not_an_error(api: respx.MockRouter, client: DiscordWebhookClient) -> None:
    api.get(PLAN_PATH).respond(
        404,
        json={"plan": FALLBACK, "charts": [], "error": "not_found", "detail": "no plan"},
    )
    plan = client.fetch_coach_plan("coach_d", DATE)
    assert plan == {"plan": FALLBACK, "charts": [], "error": "not_found"}
    metrics = client.get_metrics()
    assert (metrics["errors"], metrics["not_found"]) == (0, 1)


def test_errors_and_misses_are_cached_only_for_miss_ttl(
    api: respx.MockRouter, client: DiscordWebhookClient, clock: FakeClock
) -> None:
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(404, json={"plan": FALLBACK, "charts": [], "error": "not_found", "detail": "x"}),
            httpx.ConnectError("refused"),
            httpx.ConnectError("refused"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    assert client.fetch_coach_plan("coach_d", DATE)["error"] == "not_found"
    clock.advance(59)
    assert client.fetch_coach_plan("coach_d", DATE)["error"] == "not_found"
    assert route.call_count == 1
    clock.advance(2)
    assert client.fetch_coach_plan("coach_d", DATE)["error"] == "ConnectionError"
    assert route.call_count == 4  # 1 + first try and 2 retries
    clock.advance(61)
    assert client.fetch_coach_plan("coach_d", DATE) == legacy_plan()
    assert route.call_count == 5


def test_plans_are_cached_for_the_full_ttl(
    api: respx.MockRouter, client: DiscordWebhookClient, clock: FakeClock
) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)
    client.fetch_coach_plan("coach_d", DATE)
    clock.advance(3599)
    client.fetch_coach_plan("coach_d", DATE)
    assert route.call_count == 1
    clock.advance(2)
    client.fetch_coach_plan("coach_d", DATE)
    assert route.call_count == 2


def test_miss_ttl_never_exceeds_cache_ttl() -> None:
    assert DiscordWebhookClient({}, cache_ttl=10, miss_ttl=60).miss_ttl == 10


def test_returned_plans_are_copies(api: respx.MockRouter, client: DiscordWebhookClient) -> None:
    api.get(PLAN_PATH).respond(200, json=legacy_plan())
    client.fetch_coach_plan("coach_d", DATE)["charts"].append("tampered")
    assert client.fetch_coach_plan("coach_d", DATE)["charts"] == legacy_plan()["charts"]


NO_PLAN = httpx.Response(
    404, json={"plan": FALLBACK, "charts": [], "error": "not_found", "detail": "no plan"}
)


def test_fetch_all_makes_one_request_when_coaches_share_a_server(
    api: respx.MockRouter, client: DiscordWebhookClient
) -> None:
    """`/all` lists the plans the server has; each coach it leaves out gets the server's own verdict."""
    all_route = api.get("/api/coach-plans/all").respond(
        200, json={"coach_d": legacy_plan("coach_d"), "coach_s": legacy_plan("coach_s")}
    )
    single_route = api.get(PLAN_PATH).mock(return_value=NO_PLAN)

    plans = client.fetch_all_coach_plans(DATE)

    assert all_route.call_count == 1
    assert [call.request.url.params["coach"] for call in single_route.calls] == ["coach_i", "coach_n"]
    assert dict(all_route.calls.last.request.url.params) == {"date": DATE}
    assert plans == {
        "coach_d_plan": legacy_plan("coach_d")["plan"],
        "coach_d_charts": legacy_plan("coach_d")["charts"],
        "coach_i_plan": f"No plan available for coach_i on {DATE}",
        "coach_i_charts": [],
        "coach_s_plan": legacy_plan("coach_s")["plan"],
        "coach_s_charts": legacy_plan("coach_s")["charts"],
        "coach_n_plan": f"No plan available for coach_n on {DATE}",
        "coach_n_charts": [],
    }
    # The answer is cached per coach: no further request for the same day.
    assert client.fetch_all_coach_plans(DATE) == plans
    assert client.fetch_coach_plan("coach_s", DATE) == legacy_plan("coach_s")
    assert (all_route.call_count, single_route.call_count) == (1, 2)
    metrics = client.get_metrics()
    assert (metrics["api_calls"], metrics["errors"], metrics["not_found"]) == (3, 0, 2)


def test_fetch_all_asks_each_server_when_coaches_are_spread() -> None:
    client = DiscordWebhookClient(
        {"coach_d": f"{API}/api/coach-plans/?coach=coach_d", "coach_i": "http://other.test"}
    )
    with respx.mock(assert_all_called=False) as router:
        ours = router.get(f"{API}{PLAN_PATH}").mock(side_effect=plan_for_request)
        other = router.get(f"http://other.test{PLAN_PATH}").mock(side_effect=plan_for_request)
        all_route = router.get(url__regex=r".*/all").respond(500)
        plans = client.fetch_all_coach_plans(DATE)

    assert plans["coach_d_plan"] == legacy_plan("coach_d")["plan"]
    assert plans["coach_i_plan"] == legacy_plan("coach_i")["plan"]
    assert (ours.call_count, other.call_count, all_route.call_count) == (1, 1, 0)


def test_fetch_all_failure_falls_back_for_every_coach(
    api: respx.MockRouter, client: DiscordWebhookClient, clock: FakeClock
) -> None:
    route = api.get("/api/coach-plans/all").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"coach_n": legacy_plan("coach_n")}),
        ]
    )

    plans = client.fetch_all_coach_plans(DATE)

    assert all(plans[f"{coach}_plan"] == f"No plan available for {coach} on {DATE}" for coach in COACHES)
    assert all(plans[f"{coach}_charts"] == [] for coach in COACHES)
    assert client.get_metrics()["errors"] == 1
    clock.advance(61)
    assert client.fetch_all_coach_plans(DATE)["coach_n_plan"] == legacy_plan("coach_n")["plan"]
    assert route.call_count == 2


def test_fetch_all_rejects_a_malformed_answer(api: respx.MockRouter, client: DiscordWebhookClient) -> None:
    api.get("/api/coach-plans/all").respond(200, json=["coach_d"])
    plans = client.fetch_all_coach_plans(DATE)
    assert plans["coach_d_plan"].startswith("No plan available")
    assert client.get_metrics()["errors"] == 1


def test_trading_agents_usage(api: respx.MockRouter) -> None:
    """As TradingAgents does it: four coach URLs plus the summary webhook, then the agents."""
    trade_date = "2026-11-25"
    api.get("/api/coach-plans/all").respond(
        200,
        json={
            "coach_d": legacy_plan("coach_d", trade_date, "NVDA long above 950, stop 935"),
            "coach_n": legacy_plan("coach_n", trade_date, "CPI today; stay hedged"),
        },
    )
    client = DiscordWebhookClient(trading_agents_urls(), cache_ttl=3600, max_cache_size=100)

    plans = client.fetch_all_coach_plans(trade_date)

    assert set(plans) == {f"{coach}_{kind}" for coach in COACHES for kind in ("plan", "charts")}
    assert not any(key.startswith("summary_webhook") for key in plans)

    def coach_agent_context(coach: str) -> str | None:
        """The coach agents' rule: a plan whose text starts with "No" is skipped."""
        plan = plans[f"{coach}_plan"]
        return None if plan.startswith("No") else plan

    assert coach_agent_context("coach_d") == "NVDA long above 950, stop 935"
    assert coach_agent_context("coach_n") == "CPI today; stay hedged"
    assert coach_agent_context("coach_i") is None
    assert coach_agent_context("coach_s") is None
    assert plans["coach_d_charts"] == [f"https://cdn.example/coach_d/{trade_date}/1.png"]


def test_a_coach_missing_from_webhook_urls_is_not_configured(
    api: respx.MockRouter, client: DiscordWebhookClient
) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)
    assert client.fetch_coach_plan("coach_x", DATE) == {
        "plan": "No webhook configured for coach_x",
        "charts": [],
        "error": "not_configured",
    }
    assert not route.called


def test_metrics_and_clear_cache(api: respx.MockRouter, client: DiscordWebhookClient) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)
    client.fetch_coach_plan("coach_d", DATE)
    client.fetch_coach_plan("coach_d", DATE)
    client.fetch_coach_plan("coach_d", DATE)
    client.fetch_coach_plan("coach_i", DATE)

    metrics = client.get_metrics()
    assert metrics["cache_hits"] == 2
    assert metrics["cache_misses"] == 2
    assert metrics["cache_hit_rate"] == 0.5
    assert metrics["api_calls"] == 2
    assert metrics["errors"] == 0
    assert metrics["cache_size"] == 2

    assert client.clear_cache() == 2
    client.fetch_coach_plan("coach_d", DATE)
    assert route.call_count == 3
    assert client.get_metrics()["cache_size"] == 1


def test_metrics_start_at_zero(client: DiscordWebhookClient) -> None:
    metrics = client.get_metrics()
    assert metrics["cache_hit_rate"] == 0.0
    assert (metrics["cache_hits"], metrics["api_calls"], metrics["errors"]) == (0, 0, 0)


def test_lru_eviction_beyond_max_cache_size(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)
    client = DiscordWebhookClient(trading_agents_urls(), max_cache_size=2)
    client.fetch_coach_plan("coach_d", DATE)
    client.fetch_coach_plan("coach_i", DATE)
    client.fetch_coach_plan("coach_d", DATE)  # coach_i is now the least recently used
    client.fetch_coach_plan("coach_s", DATE)  # evicts coach_i
    client.fetch_coach_plan("coach_d", DATE)
    assert route.call_count == 3
    client.fetch_coach_plan("coach_i", DATE)
    assert route.call_count == 4


def test_concurrent_fetches_are_consistent(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=plan_for_request)
    client = DiscordWebhookClient(trading_agents_urls(), max_cache_size=8)
    dates = [f"2026-11-{day:02d}" for day in range(20, 25)]
    threads, rounds = 8, 40
    barrier = threading.Barrier(threads)
    wrong: list[tuple[str, str, object]] = []

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(rounds):
            coach, date = COACHES[(worker + n) % 4], dates[(worker * n) % 5]
            plan = client.fetch_coach_plan(coach, date)
            if plan.get("coach") != coach or plan.get("date") != date:
                wrong.append((coach, date, plan))

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    metrics = client.get_metrics()
    assert wrong == []
    assert metrics["errors"] == 0
    assert metrics["cache_hits"] + metrics["cache_misses"] == threads * rounds
    assert metrics["api_calls"] == metrics["cache_misses"] == route.call_count
    assert metrics["cache_size"] <= 8


@pytest.mark.parametrize(
    ("summary", "colour"),
    [
        ({"ticker": "NVDA", "decision": "BUY", "summary": "Strong momentum"}, 0x2ECC71),
        ({"ticker": "NVDA", "final_trade_decision": "Sell into strength"}, 0xE74C3C),
        ({"ticker": "NVDA", "action": "hold"}, 0xF1C40F),
        ({"ticker": "NVDA"}, 0x95A5A6),
        ("FINAL TRANSACTION PROPOSAL: **SELL**", 0xE74C3C),
    ],
)
def test_send_trading_summary_posts_a_coloured_embed(
    client: DiscordWebhookClient, summary: dict[str, str] | str, colour: int
) -> None:
    with respx.mock:
        route = respx.post(SUMMARY_URL).respond(204)
        assert client.send_trading_summary(SUMMARY_URL, summary) is True
    [embed] = json.loads(route.calls.last.request.content)["embeds"]
    assert embed["color"] == colour
    assert embed["title"].startswith("Trading Summary")
    if isinstance(summary, dict):
        assert embed["title"] == "Trading Summary - NVDA"
    assert client.get_metrics()["api_calls"] == 1


@pytest.mark.parametrize(
    "outcome",
    [
        httpx.Response(400, json={"message": "Invalid Form Body"}),
        httpx.Response(429),
        httpx.ConnectError("refused"),
    ],
)
def test_send_trading_summary_failure_returns_false_and_hides_the_token(
    client: DiscordWebhookClient,
    caplog: pytest.LogCaptureFixture,
    outcome: httpx.Response | Exception,
) -> None:
    with respx.mock, caplog.at_level(logging.INFO, logger="coach_plans_client"):
        respx.post(SUMMARY_URL).mock(side_effect=[outcome])
        assert client.send_trading_summary(SUMMARY_URL, {"ticker": "NVDA", "decision": "BUY"}) is False
    assert client.get_metrics()["errors"] == 1
    assert "s3cr3t-token" not in caplog.text
    assert "https://discord.com/api/webhooks/123/***" in caplog.text


def test_send_trading_summary_without_url_returns_false(client: DiscordWebhookClient) -> None:
    assert client.send_trading_summary("", {"decision": "BUY"}) is False
    assert client.get_metrics()["errors"] == 1


def test_check_health_returns_the_servers_answer(api: respx.MockRouter, client: DiscordWebhookClient) -> None:
    api.get("/health").respond(
        200,
        json={
            "status": "healthy",
            "bot_connected": True,
            "database_connected": True,
            "plans_count": 12,
            "uptime_seconds": 3.5,
            "version": "2.0.0",
        },
    )
    health = client.check_health()
    assert health["status"] == "healthy"
    assert health["plans_count"] == 12
    assert health["servers"][API]["database_connected"] is True


def test_check_health_never_raises() -> None:
    client = DiscordWebhookClient(
        {"coach_d": API, "coach_i": "http://other.test"}, sleep=lambda seconds: None
    )
    with respx.mock:
        respx.get(f"{API}/health").mock(side_effect=httpx.ConnectError("refused"))
        respx.get("http://other.test/health").respond(200, json=HEALTHY)
        health = client.check_health()
        respx.get(f"{API}/health").respond(
            200, content=b"[" * 100_000 + b"]" * 100_000
        )  # too deep for Python
        nested = client.check_health()

    assert nested["servers"][API] == {"status": "unhealthy", "error": nested["servers"][API]["error"]}
    assert "expected JSON" in nested["servers"][API]["error"]
    assert health["status"] == "degraded"
    assert health["servers"][API]["status"] == "unhealthy"
    assert "refused" in health["servers"][API]["error"]
    assert health["servers"]["http://other.test"]["status"] == "healthy"
    assert client.get_metrics()["errors"] == 2
    assert DiscordWebhookClient({}).check_health()["status"] == "unhealthy"


def test_mock_mode_serves_every_coach_and_date_without_network(clock: FakeClock) -> None:
    with DiscordWebhookClient({"summary_webhook": SUMMARY_URL}, mock_mode=True, clock=clock) as client:
        plans = client.fetch_all_coach_plans("2030-02-03")
        single = client.fetch_coach_plan("i", "1999-12-31")
        sent = client.send_trading_summary(SUMMARY_URL, {"decision": "BUY"})
        health = client.check_health()
    assert sorted(plans) == sorted(f"{c}_{k}" for c in COACHES for k in ("plan", "charts"))
    assert all(not plans[f"{c}_plan"].startswith("No") for c in COACHES)
    assert "2030-02-03" in plans["coach_d_plan"]
    assert single["plan"].startswith("[MOCK] Fundamental plan for 1999-12-31")
    assert sent is True
    assert health["status"] == "healthy"


def test_context_manager_closes_only_its_own_http_client() -> None:
    with DiscordWebhookClient({"coach_d": API}) as owned:
        pass
    assert owned._http.is_closed
    http = httpx.Client()
    with DiscordWebhookClient({"coach_d": API}, http_client=http):
        pass
    assert not http.is_closed
    http.close()


def test_unknown_time_zone_falls_back_to_utc(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        DiscordWebhookClient({}, plan_timezone="Mars/Olympus")
    assert "Mars/Olympus" in caplog.text


def test_timeout_is_ten_seconds_or_the_injected_clients(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    DiscordWebhookClient({"coach_d": API}).fetch_coach_plan("coach_d", DATE)
    assert route.calls.last.request.extensions["timeout"]["read"] == 10.0
    DiscordWebhookClient({"coach_d": API}, timeout=1.5).fetch_coach_plan("coach_d", DATE)
    assert route.calls.last.request.extensions["timeout"]["read"] == 1.5
    with httpx.Client(timeout=4.0) as http:
        DiscordWebhookClient({"coach_d": API}, http_client=http).fetch_coach_plan("coach_d", DATE)
    assert route.calls.last.request.extensions["timeout"]["read"] == 4.0


def test_summary_embed_stays_within_discord_limits() -> None:
    from coach_plans_client import build_summary_embed

    summary = {"ticker": "NVDA", "decision": "BUY", "summary": "x" * 9000}
    summary.update({f"analyst_{n}": "y" * 2000 for n in range(40)})
    embed = build_summary_embed(summary)
    size = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    size += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert size <= 6000
    assert len(embed["description"]) <= 4096
    assert all(len(field["value"]) <= 1024 for field in embed["fields"])
    assert len(embed["fields"]) <= 25
    assert embed["color"] == 0x2ECC71


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"error": "route_not_found", "detail": "no such route: GET /wrong/x"}),
        httpx.Response(404, text="<html>Not Found</html>"),
        # a 404 of the versioned API: not the legacy "no plan" body
        httpx.Response(404, json={"error": "not_found", "detail": "no plan with id 3"}),
    ],
)
def test_a_404_that_is_not_the_no_plan_answer_is_a_misconfiguration(
    caplog: pytest.LogCaptureFixture, answer: httpx.Response
) -> None:
    client = DiscordWebhookClient({"coach_d": f"{API}/wrong/api/coach-plans/"}, sleep=lambda seconds: None)
    with respx.mock(base_url=API) as router, caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        router.get("/wrong/api/coach-plans/").mock(return_value=answer)
        router.get("/wrong/health").respond(200, json=HEALTHY)
        plan = client.fetch_coach_plan("coach_d", DATE)
        health = client.check_health()

    assert plan == {"plan": FALLBACK, "charts": [], "error": "misconfigured"}
    metrics = client.get_metrics()
    assert (metrics["errors"], metrics["not_found"]) == (1, 0)
    url = f"{API}/wrong/api/coach-plans/?coach=coach_d&date={DATE}"
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert url in warning.getMessage()
    assert "check webhook_urls" in warning.getMessage()
    assert health["status"] == "unhealthy"
    assert health["error"].startswith("misconfigured: GET ")
    assert url in health["error"]


def test_a_misconfiguration_clears_once_the_server_answers(clock: FakeClock) -> None:
    client = DiscordWebhookClient(trading_agents_urls(), clock=clock)
    with respx.mock(base_url=API) as router:
        route = router.get("/api/coach-plans/all")
        route.side_effect = [
            httpx.Response(404, json={"error": "route_not_found", "detail": "no such route"}),
            httpx.Response(200, json={"coach_d": legacy_plan()}),
        ]
        router.get(PLAN_PATH).mock(return_value=NO_PLAN)
        router.get("/health").respond(200, json=HEALTHY)
        plans = client.fetch_all_coach_plans(DATE)
        assert all(plans[f"{coach}_plan"] == f"No plan available for {coach} on {DATE}" for coach in COACHES)
        assert client.check_health()["status"] == "unhealthy"
        clock.advance(61)
        assert client.fetch_all_coach_plans(DATE)["coach_d_plan"] == legacy_plan()["plan"]
        assert client.check_health()["status"] == "healthy"
    assert client.get_metrics()["errors"] == 1


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://host:5000/webhooks/", "http://host:5000"),
        ("http://host:5000/webhooks", "http://host:5000"),
        ("http://host:5000/webhooks/coach_d", "http://host:5000"),
        ("http://host:5000/proxy/webhooks/?coach=coach_d", "http://host:5000/proxy"),
        ("https://discord.com/api/webhooks/1/token", "https://discord.com/api"),
    ],
)
def test_the_old_webhooks_url_forms_are_understood(url: str, base: str) -> None:
    assert server_base_url(url) == base


@pytest.mark.parametrize("url", ["http://[::1", "http://plans.test/\ud800", 12345])
def test_a_url_that_cannot_be_requested_fails_each_call_not_the_constructor(
    caplog: pytest.LogCaptureFixture, url: object
) -> None:
    """The old client only stored the URLs; each call answers its fallback instead."""
    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        client = DiscordWebhookClient({"coach_d": url, "coach_i": API})  # type: ignore[dict-item]
    assert "webhook_urls['coach_d']" in caplog.text
    with respx.mock(base_url=API) as router:
        router.get("/api/coach-plans/").mock(side_effect=plan_for_request)
        router.get("/health").respond(200, json=HEALTHY)
        plan = client.fetch_coach_plan("coach_d", DATE)
        plans = client.fetch_all_coach_plans(DATE)
        health = client.check_health()
    assert plan == {"plan": FALLBACK, "charts": [], "error": "misconfigured"}
    assert plans["coach_d_plan"] == FALLBACK
    assert plans["coach_i_plan"] == legacy_plan("coach_i")["plan"]
    assert client.get_metrics()["errors"] == 2
    assert health["status"] == "degraded"
    [bad] = [server for server in health["servers"].values() if server["status"] == "unhealthy"]
    assert bad["error"].startswith("misconfigured: not")


@pytest.mark.parametrize("coach", [None, 5, "\ud800"])
def test_odd_coach_names_get_a_fallback(
    api: respx.MockRouter, client: DiscordWebhookClient, coach: object
) -> None:
    plan = client.fetch_coach_plan(coach, DATE)  # type: ignore[arg-type]
    assert plan["plan"].startswith("No ")
    assert plan["charts"] == []


@pytest.mark.parametrize("url", ["http://[::1", "https://discord.com/api/webhooks/1/\ud800", 5, None])
def test_send_trading_summary_to_an_unusable_url_returns_false(
    client: DiscordWebhookClient, url: object
) -> None:
    with respx.mock:  # no request may be made
        assert client.send_trading_summary(url, {"ticker": "NVDA", "decision": "BUY"}) is False  # type: ignore[arg-type]
    assert client.get_metrics()["errors"] == 1


def test_summaries_with_odd_content_are_still_sent(client: DiscordWebhookClient) -> None:
    """A lone surrogate cannot be sent as UTF-8 and a key may not be a string: neither stops the post."""
    with respx.mock:
        route = respx.post(SUMMARY_URL).respond(204)
        summary: dict[object, str] = {"ticker": "NVDA", "decision": "BUY \ud800", 1: "x"}
        assert client.send_trading_summary(SUMMARY_URL, summary)  # type: ignore[arg-type]
    [embed] = json.loads(route.calls.last.request.content)["embeds"]
    assert embed["color"] == 0x2ECC71
    assert {"name": "1", "value": "x", "inline": True} in embed["fields"]
    assert "BUY ?" in json.dumps(embed)


def test_after_close_every_method_keeps_its_promise(api: respx.MockRouter) -> None:
    client = DiscordWebhookClient(trading_agents_urls())
    client.close()
    assert client.fetch_coach_plan("coach_d", DATE)["error"] == "ClientClosedError"
    assert client.fetch_all_coach_plans(DATE)["coach_d_plan"] == FALLBACK
    assert client.check_health()["status"] == "unhealthy"
    with respx.mock:
        assert client.send_trading_summary(SUMMARY_URL, {"decision": "BUY"}) is False
    assert not api.calls


@pytest.mark.parametrize("unknown", ["coach_x", "x", "technical_coach"])
def test_a_key_off_the_roster_gets_the_servers_400_also_beside_real_coaches(
    caplog: pytest.LogCaptureFixture, unknown: str
) -> None:
    """`/all` leaves out a name the server does not know: it must not read as "no plan"."""
    client = DiscordWebhookClient({"coach_d": API, unknown: API})
    unknown_coach = httpx.Response(400, json={"error": "unknown_coach", "detail": "unknown coach 'coach_x'"})
    with respx.mock(base_url=API) as router, caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        router.get("/api/coach-plans/all").respond(200, json={"coach_d": legacy_plan()})
        single = router.get(PLAN_PATH).mock(return_value=unknown_coach)
        plans = client.fetch_all_coach_plans(DATE)
    assert plans[f"{unknown}_plan"].startswith("No plan available")
    assert single.call_count == 1
    metrics = client.get_metrics()
    assert (metrics["errors"], metrics["not_found"]) == (1, 0)
    assert "unknown_coach" in caplog.text


def test_an_argument_no_request_can_carry_is_a_warning_not_a_bug(
    api: respx.MockRouter, client: DiscordWebhookClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        plan = client.fetch_coach_plan("coach_d", "9" * 70_000)
    assert plan["plan"].startswith("No plan available")
    assert plan["error"] == "ValueError"
    assert "65,536 characters" in caplog.text
    assert all(record.levelno == logging.WARNING for record in caplog.records)
    assert not api.calls
