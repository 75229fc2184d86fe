"""The old client's observable behaviour, call by call, checked against the drop-in.

The old client is TradingAgents' ``tradingagents/integrations/discord_webhook.py``
(``DiscordWebhookClient``). TradingAgents builds it with ``DiscordWebhookClient(webhook_urls)``,
where ``webhook_urls`` is ``config["discord_webhooks"]``: ``coach_d``, ``coach_i``, ``coach_s``,
``coach_n`` and ``summary_webhook``, each read from an environment variable that defaults to "".
It then calls ``fetch_all_coach_plans(trade_date)`` and, after a decision,
``send_trading_summary(summary_url, {"ticker", "date", "decision", "action"})``. The coach agents
skip every plan whose text starts with "No".

What the old client did, call by call (the drop-in's answer in brackets):

- ``DiscordWebhookClient(urls)`` keeps ``urls`` as ``webhook_urls`` [same].
- ``fetch_coach_plan(coach_name, date=None)``, plan found: ``{"plan", "charts"}`` [the same two
  keys plus the server's additive fields].
- A coach's URL becomes ``url.replace("/webhooks/", "/api/coach-plans/")``, requested with the
  ``coach`` and ``date`` parameters [the same path; a bare host works too].
- No plan that day: "No plan available for DATE" ["No plan available for COACH on DATE"].
- Empty, None or missing URL: "No webhook configured for NAME", no request [same].
- Any other failure: "No plan available for DATE", "Could not fetch plan: ..." or "Error
  fetching plan for ..."; the last two do not start with "No", so agents read them as a plan
  ["No plan available for COACH on DATE" for every failure, logged and counted].
- ``date=None``: today on the machine's clock [today in America/New_York]; a ``datetime`` was
  sent as "2026-11-25 23:00:00", which no server takes [its date].
- ``fetch_all_coach_plans(date=None)``: ``KEY_plan`` and ``KEY_charts`` for every key but
  ``summary_webhook``, in order [same keys].
- A key like ``technical_coach``: kept and fetched under that name [kept and fetched; a warning
  says it is not a coach name, and the server's refusal is logged and counted].
- ``send_trading_summary(webhook_url, summary)``: a Discord embed, True on 204, False on any
  failure [same; coloured by ``action`` when given].

docs/agents.md lists every intended difference.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from coach_plans_client import DiscordWebhookClient

from .conftest import HEALTHY

HOST = "http://plans:5000"
SUMMARY_URL = "https://discord.com/api/webhooks/123/secret"
DAY = "2026-11-25"
COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")


def old_request_path(url: str) -> str:
    """The path the old client requested for a coach URL (its only URL rule)."""
    return urlsplit(url.replace("/webhooks/", "/api/coach-plans/")).path


def trading_agents_config(**urls: str) -> dict[str, str]:
    """TradingAgents' ``config["discord_webhooks"]``: every variable defaults to ""."""
    config = dict.fromkeys((*COACHES, "summary_webhook"), "")
    config.update(urls)
    return config


class FakeAPI:
    """The Coach Plans API's legacy answers (the real one: integration/test_contract.py)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.plans: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []

    def post(self, coach: str, date: str, text: str) -> None:
        self.plans[(coach, date)] = {
            "plan": text,
            "charts": [f"https://cdn.example/{coach}.png"],
            "author": "Dan",
            "timestamp": f"{date}T13:30:00+00:00",
            "id": len(self.plans) + 1,
            "coach": coach,
            "date": date,
            "edited": False,
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, params = request.url.path, request.url.params
        date = params.get("date", DAY)
        coach = params.get("coach", "")
        if coach and coach.removeprefix("coach_") not in {"d", "i", "s", "n"}:
            return httpx.Response(400, json={"error": "unknown_coach", "detail": f"unknown coach {coach!r}"})
        if path == f"{self.prefix}/api/coach-plans/":
            plan = self.plans.get((coach, date))
            if plan is None:
                body = {"plan": f"No plan available for {coach} on {date}", "charts": []}
                return httpx.Response(404, json={**body, "error": "not_found", "detail": "no plan"})
            return httpx.Response(200, json=plan)
        if path == f"{self.prefix}/api/coach-plans/all":
            return httpx.Response(200, json={c: p for (c, d), p in self.plans.items() if d == date})
        if path == f"{self.prefix}/health":
            return httpx.Response(200, json=HEALTHY)
        return httpx.Response(404, json={"error": "route_not_found", "detail": f"no such route: GET {path}"})


@pytest.fixture
def server() -> Iterator[FakeAPI]:
    api = FakeAPI()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="plans").mock(side_effect=api)
        router.post(SUMMARY_URL).respond(204)
        yield api


def client_for(**urls: str) -> DiscordWebhookClient:
    return DiscordWebhookClient(trading_agents_config(**urls), sleep=lambda seconds: None)


# -- construction and method names ----------------------------------------------------------------


def test_constructed_as_trading_agents_does_with_the_old_methods_and_parameter_names() -> None:
    urls = trading_agents_config(coach_d=f"{HOST}/api/coach-plans/")
    client = DiscordWebhookClient(urls)
    assert client.webhook_urls == urls
    parameters = {
        "fetch_coach_plan": ["coach_name", "date"],
        "fetch_all_coach_plans": ["date"],
        "send_trading_summary": ["webhook_url", "summary"],
    }
    for method, names in parameters.items():
        signature = inspect.signature(getattr(client, method))
        assert list(signature.parameters) == names
    assert inspect.signature(client.fetch_coach_plan).parameters["date"].default is None
    assert inspect.signature(client.fetch_all_coach_plans).parameters["date"].default is None


# -- fetch_coach_plan ------------------------------------------------------------------------------


def test_a_found_plan_has_the_old_keys_and_types(server: FakeAPI) -> None:
    server.post("coach_d", DAY, "NVDA long above 950")
    plan = client_for(coach_d=f"{HOST}/api/coach-plans/").fetch_coach_plan("coach_d", DAY)
    assert plan["plan"] == "NVDA long above 950"
    assert plan["charts"] == ["https://cdn.example/coach_d.png"]
    assert isinstance(plan["charts"], list)


OLD_URL_FORMS = [
    f"{HOST}/api/coach-plans/",  # TradingAgents' documented form
    f"{HOST}/api/coach-plans/?coach=coach_d",
    f"{HOST}/webhooks/",  # rewritten by the old client
    f"{HOST}/webhooks/?coach=coach_d",
]


@pytest.mark.parametrize("url", OLD_URL_FORMS)
def test_every_url_form_the_old_client_accepted_requests_the_same_path(server: FakeAPI, url: str) -> None:
    server.post("coach_d", DAY, "NVDA long above 950")
    client = client_for(coach_d=url)

    plan = client.fetch_coach_plan("coach_d", DAY)

    assert plan["plan"] == "NVDA long above 950"
    [request] = server.requests
    assert request.url.path == old_request_path(url) == "/api/coach-plans/"
    assert (request.url.params["coach"], request.url.params["date"]) == ("coach_d", DAY)


def test_webhooks_under_a_path_prefix_keep_the_prefix() -> None:
    api = FakeAPI(prefix="/plans")
    api.post("coach_d", DAY, "behind a reverse proxy")
    url = f"{HOST}/plans/webhooks/"
    with respx.mock() as router:
        router.route(host="plans").mock(side_effect=api)
        plan = client_for(coach_d=url).fetch_coach_plan("coach_d", DAY)
    assert plan["plan"] == "behind a reverse proxy"
    assert api.requests[0].url.path == old_request_path(url) == "/plans/api/coach-plans/"


@pytest.mark.parametrize("url", [HOST, "plans:5000", f"{HOST}/api/coach-plans"])
def test_a_bare_host_works_too(server: FakeAPI, url: str) -> None:
    server.post("coach_d", DAY, "NVDA")
    assert client_for(coach_d=url).fetch_coach_plan("coach_d", DAY)["plan"] == "NVDA"


@pytest.mark.parametrize("url", ["", None])
def test_an_empty_url_switches_the_coach_off_as_before(server: FakeAPI, url: str | None) -> None:
    """Even when another coach's server would answer for it (that was the drop-in's bug)."""
    server.post("coach_d", DAY, "must not be fetched")
    urls: dict[str, str | None] = {
        **trading_agents_config(coach_i=f"{HOST}/api/coach-plans/"),
        "coach_d": url,
    }
    client = DiscordWebhookClient(urls)

    assert client.fetch_coach_plan("coach_d", DAY) == {
        "plan": "No webhook configured for coach_d",
        "charts": [],
        "error": "not_configured",
    }
    assert client.fetch_all_coach_plans(DAY)["coach_d_plan"] == "No webhook configured for coach_d"
    assert all(request.url.params.get("coach") != "coach_d" for request in server.requests)
    assert client.get_metrics()["errors"] == 0  # switched off is not a failure


def test_trading_agents_with_no_coach_url_set_makes_no_request(server: FakeAPI) -> None:
    client = DiscordWebhookClient(trading_agents_config(summary_webhook=SUMMARY_URL))
    plans = client.fetch_all_coach_plans(DAY)
    assert plans == {
        key: value
        for coach in COACHES
        for key, value in ((f"{coach}_plan", f"No webhook configured for {coach}"), (f"{coach}_charts", []))
    }
    assert server.requests == []


def ok(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers={"content-type": "text/html"})


FAILURES = [
    pytest.param(
        httpx.Response(404, json={"plan": "No plan available", "charts": [], "error": "not_found"}),
        id="no-plan",
    ),
    pytest.param(
        httpx.Response(404, json={"error": "route_not_found", "detail": "no such route"}), id="wrong-route"
    ),
    pytest.param(httpx.Response(404, text="<h1>Not Found</h1>"), id="other-server-404"),
    pytest.param(httpx.Response(400, json={"error": "invalid_date", "detail": "x"}), id="bad-date"),
    pytest.param(httpx.Response(401, json={"error": "unauthorized", "detail": "x"}), id="401"),
    pytest.param(httpx.Response(500, json={"error": "internal_error", "detail": "x"}), id="500"),
    pytest.param(httpx.Response(503, text="Service Unavailable"), id="503"),
    pytest.param(ok("<html>captive portal</html>"), id="html"),
    pytest.param(httpx.Response(200, json={"charts": []}), id="no-plan-field"),
    pytest.param(httpx.Response(200, json={"plan": None}), id="null-plan"),
    pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), id="refused"),
    pytest.param(httpx.ReadTimeout("timed out"), id="timeout"),
    pytest.param(httpx.RemoteProtocolError("peer closed connection"), id="dropped"),
]


@pytest.mark.parametrize("outcome", FAILURES)
def test_every_failure_is_a_plan_starting_with_no_and_never_an_exception(
    outcome: httpx.Response | Exception,
) -> None:
    """The old client said "Could not fetch plan: ..." for some, which agents then read as a plan."""
    client = client_for(**dict.fromkeys(COACHES, f"{HOST}/api/coach-plans/"))
    with respx.mock() as router:
        router.route(host="plans").mock(side_effect=[outcome] * 6)
        single = client.fetch_coach_plan("coach_d", DAY)
        every = client.fetch_all_coach_plans("2026-11-24")
    assert single["plan"].startswith("No plan available")
    assert single["charts"] == []
    for coach in COACHES:
        assert every[f"{coach}_plan"].startswith("No plan available")
        assert every[f"{coach}_charts"] == []


# -- dates -------------------------------------------------------------------------------------


def test_date_arguments(server: FakeAPI) -> None:
    client = client_for(coach_d=f"{HOST}/api/coach-plans/")
    today = dt.datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    calls: list[str | dt.date | None] = [
        "2026-11-25",
        dt.date(2026, 11, 24),
        dt.datetime(2026, 11, 23, 23, 30),  # the old client sent "2026-11-23 23:30:00"
        None,
        "",
    ]
    for date in calls:
        client.fetch_coach_plan("coach_d", date)
    client.fetch_coach_plan("coach_d")
    assert [request.url.params["date"] for request in server.requests] == [
        "2026-11-25",
        "2026-11-24",
        "2026-11-23",
        today,  # cached afterwards: "" and no argument mean the same day
    ]


# -- fetch_all_coach_plans ----------------------------------------------------------------------


def test_fetch_all_returns_a_plan_and_charts_key_per_configured_coach(server: FakeAPI) -> None:
    server.post("coach_d", DAY, "NVDA long above 950")
    server.post("coach_n", DAY, "CPI day: stay hedged")
    urls = trading_agents_config(
        **dict.fromkeys(COACHES, f"{HOST}/api/coach-plans/"), summary_webhook=SUMMARY_URL
    )
    plans = DiscordWebhookClient(urls).fetch_all_coach_plans(DAY)

    assert list(plans) == [f"{coach}_{kind}" for coach in COACHES for kind in ("plan", "charts")]
    assert plans["coach_d_plan"] == "NVDA long above 950"
    assert plans["coach_d_charts"] == ["https://cdn.example/coach_d.png"]
    assert plans["coach_i_plan"] == f"No plan available for coach_i on {DAY}"
    assert plans["coach_i_charts"] == []
    skipped = [coach for coach in COACHES if plans[f"{coach}_plan"].startswith("No")]
    assert skipped == ["coach_i", "coach_s"]


def test_keys_that_are_not_coach_names_are_kept_and_loudly_reported(
    server: FakeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    urls = {"technical_coach": f"{HOST}/api/coach-plans/", "coach_d": f"{HOST}/api/coach-plans/"}
    server.post("coach_d", DAY, "NVDA")
    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        client = DiscordWebhookClient(urls, sleep=lambda seconds: None)
        plans = client.fetch_all_coach_plans(DAY)

    assert list(plans) == ["technical_coach_plan", "technical_coach_charts", "coach_d_plan", "coach_d_charts"]
    assert plans["technical_coach_plan"] == f"No plan available for technical_coach on {DAY}"
    assert plans["coach_d_plan"] == "NVDA"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("'technical_coach' is not a coach name" in message for message in warnings)
    assert any("unknown coach 'technical_coach'" in message for message in warnings)
    assert client.get_metrics()["errors"] == 1


# -- send_trading_summary -----------------------------------------------------------------------


def test_trading_agents_summary_is_posted_coloured_by_its_action() -> None:
    decision = "The bear argued to SELL into strength, but FINAL TRANSACTION PROPOSAL: **BUY**"
    client = client_for(summary_webhook=SUMMARY_URL)
    summary = {"ticker": "NVDA", "date": DAY, "decision": decision, "action": "BUY"}
    with respx.mock() as router:
        route = router.post(SUMMARY_URL).respond(204)
        assert client.send_trading_summary(SUMMARY_URL, summary) is True
        [embed] = json.loads(route.calls.last.request.content)["embeds"]
        assert embed["title"] == "Trading Summary - NVDA"
        assert embed["description"] == decision
        assert embed["color"] == 0x2ECC71  # green: BUY
        fields = {field["name"]: field["value"] for field in embed["fields"]}
        assert (fields["Date"], fields["Action"]) == (DAY, "BUY")

        route.respond(400, json={"message": "Invalid Form Body"})
        assert client.send_trading_summary(SUMMARY_URL, summary) is False
        route.mock(side_effect=httpx.ConnectError("refused"))
        assert client.send_trading_summary(SUMMARY_URL, summary) is False


@pytest.mark.parametrize(("action", "colour"), [("SELL", 0xE74C3C), ("HOLD", 0xF1C40F), ("Buy", 0x2ECC71)])
def test_the_action_decides_the_colour_over_words_in_the_decision(action: str, colour: int) -> None:
    summary = {"ticker": "NVDA", "decision": "argued to BUY, then to SELL, finally HOLD", "action": action}
    with respx.mock() as router:
        route = router.post(SUMMARY_URL).respond(204)
        assert client_for().send_trading_summary(SUMMARY_URL, summary)
    assert json.loads(route.calls.last.request.content)["embeds"][0]["color"] == colour
