"""The edges of the contract, tried against real API processes: forged log lines, numbers of any
size, HEAD, repeated parameters, and database errors mapped to the status that tells the truth."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body
from tests.tcp_proxy import TcpProxy

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
TEXT_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
# A percent-encoded line break followed by what looks like a log record of its own, and the
# other characters some log readers take for the end of a line.
FORGED = "2026-11-30 12:00:00,000 INFO coach_plans_api.access: GET /admin/grant 200 0.1ms id=forged"
FORGERIES = [
    f"/api/v1/plans%0A{FORGED}",
    f"/api/v1/plans%0D%0A{FORGED}",
    f"/nope%E2%80%A8{FORGED}",
    f"/nope%C2%85{FORGED}",
    "/nope%1B%5B2K%1B%5B1Gcleared",
    f"/api/coach-plans/?coach=d%0A{FORGED}",
]


def _request_forgeries(api: ServiceProcess) -> None:
    with httpx.Client(base_url=api.url) as client:
        for path in FORGERIES:
            assert client.get(path).status_code < 500
        # A request id with anything but plain characters is replaced, not echoed or logged.
        response = client.get("/health", headers={b"X-Request-ID": b"id\xc2\x85with NEL"})
        assert response.headers["x-request-id"].isascii()
        assert " " not in response.headers["x-request-id"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_cannot_be_forged(
    start_api: Callable[..., ServiceProcess], tmp_path: Path, log_format: str
) -> None:
    log_file = tmp_path / f"api-{log_format}.log"
    api = start_api(LOG_FORMAT=log_format, LOG_FILE=str(log_file))
    _request_forgeries(api)
    api.stop()
    text = log_file.read_text(encoding="utf-8")
    lines = text.splitlines()  # splits on \n, \r, \x85, \u2028, \x1c-\x1e ... as readers may
    assert lines == text.split("\n")[:-1], "only real record ends break lines"
    assert not any(ch in text for ch in "\r\x1b\x85\u2028\u2029")
    access = []
    for line in lines:
        if log_format == "json":
            entry = json.loads(line)
            message = entry["message"]
        else:
            assert TEXT_LINE.match(line), line
            message = line.split(": ", 1)[1]
        if "access" in line and "GET /" in message:
            access.append(message)
    assert not any(m.startswith("GET /admin/grant") for m in access)
    assert any(m.startswith("GET /api/v1/plans\\x0a2026-11-30") for m in access), access
    assert any(m.startswith("GET /nope\\u2028") for m in access), access
    assert any("\\x1b[2K" in m for m in access), access


def test_redaction_masks_only_a_real_token(start_api: Callable[..., ServiceProcess]) -> None:
    """A one-character token (mock mode only) must not blank out that letter in every line."""
    api = start_api(MOCK_MODE="true", INTERNAL_API_TOKEN="o")
    assert httpx.post(
        f"{api.url}/internal/bot/heartbeat", json={}, headers={"Authorization": "Bearer o"}
    ).is_success
    api.stop()
    assert "Coach Plans API" in api.logs()
    assert "***" not in api.logs()


# --- numbers of any size and sign ----------------------------------------------------------
HUGE = "9" * 40
NUMBERS: list[tuple[str, str, dict[str, object] | None, int]] = [
    ("GET", f"/api/v1/plans?cursor=2026-11-25_{HUGE}", None, 400),
    ("GET", "/api/v1/plans?cursor=2026-11-25_-5", None, 400),
    ("GET", "/api/v1/plans?cursor=2026-11-25_0", None, 400),
    ("GET", f"/api/v1/plans?limit={HUGE}", None, 422),
    ("GET", "/api/v1/plans?limit=-1", None, 422),
    ("GET", f"/api/coach-plans/history?coach=d&days={HUGE}", None, 422),
    ("GET", "/api/coach-plans/history?coach=d&days=366", None, 422),
    ("GET", "/api/coach-plans/history?coach=d&days=0", None, 422),
    ("GET", f"/api/v1/plans/{HUGE}", None, 422),
    ("GET", f"/api/v1/plans/-{HUGE}/revisions", None, 422),
    (
        "PATCH",
        f"/internal/plans/{HUGE}",
        {"actor": {"user_id": "1", "display_name": "a"}, "message_id": "1"},
        422,
    ),
    (
        "PUT",
        "/internal/plans/d/2026-11-25",
        plan_body(charts=[]) | {"charts": [{"url": "https://c.example/a.png", "size_bytes": 10**30}]},
        422,
    ),
    (
        "PUT",
        "/internal/plans/d/2026-11-25",
        plan_body(charts=[]) | {"charts": [{"url": "https://c.example/a.png", "size_bytes": -1}]},
        422,
    ),
    ("PUT", "/internal/plans/d/2026-11-25", plan_body(message_id=HUGE), 422),
]


def test_no_number_of_any_size_reaches_the_database(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    with httpx.Client(base_url=api.url, headers=AUTH) as client:
        client.put("/internal/plans/d/2026-11-25", json=plan_body())
        for method, path, body, status in NUMBERS:
            response = client.request(method, path, json=body)
            assert (response.status_code, response.json()["error"]) != (500, "internal_error"), path
            assert response.status_code == status, (method, path, response.text)
        assert client.get("/api/coach-plans/history?coach=d&days=365").status_code == 200
    assert "Traceback" not in api.logs()


# --- HTTP details ---------------------------------------------------------------------------
def test_head_answers_every_get_route(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=10) as client:
        plan = client.put("/internal/plans/d/2026-11-25", json=plan_body()).json()
        paths = [
            "/",
            "/health",
            "/metrics",
            "/docs",
            "/redoc",
            "/openapi.json",
            "/static/docs/swagger-ui.css",
            "/api/coach-plans/?coach=d&date=2026-11-25",
            "/api/coach-plans?coach=d&date=2026-11-25",
            "/api/coach-plans/all?date=2026-11-25",
            "/api/coach-plans/history?coach=d",
            "/api/v1/plans",
            f"/api/v1/plans/{plan['id']}",
            f"/api/v1/plans/{plan['id']}/revisions",
            "/api/v1/coaches",
            f"/charts/{'0' * 64}.png",
        ]
        for path in paths:
            get, head = client.get(path), client.head(path)
            assert head.status_code == get.status_code, path
            assert head.content == b"", path
            assert head.headers["content-type"] == get.headers["content-type"], path
        events = client.head("/api/v1/events")  # an endless stream: the headers, then done
        assert (events.status_code, events.content) == (200, b"")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert client.head("/internal/plans/clear").status_code == 405
        assert client.get("/health").status_code == 200  # the server is still well


def test_repeated_query_parameter_is_400(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    response = httpx.get(f"{api.url}/api/coach-plans/?coach=coach_d&coach=coach_i")
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_request",
        "detail": "query parameter 'coach' is repeated; give each parameter once",
    }


# --- database errors ------------------------------------------------------------------------
def _sqlite(api: ServiceProcess) -> sqlite3.Connection:
    return sqlite3.connect(api.env["DATABASE_URL"].removeprefix("sqlite:///"))


def test_database_errors_are_mapped_by_kind(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    url = f"{api.url}/internal/plans/d/2026-11-25"
    with _sqlite(api) as conn:  # a rule in the database refuses every new revision
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON plan_revisions BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    conflict = httpx.put(url, json=plan_body(), headers=AUTH)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "conflict"
    with _sqlite(api) as conn:  # a schema that no longer matches the code: a bug, not an outage
        conn.execute("DROP TRIGGER refuse")
        conn.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON plan_revisions BEGIN SELECT no_such_function(); END"
        )
    bug = httpx.put(url, json=plan_body(), headers={**AUTH, "X-Request-ID": "req-broken-1"})
    assert bug.status_code == 500
    assert bug.json() == {
        "error": "internal_error",
        "detail": "internal error; quote request id req-broken-1",
    }
    with _sqlite(api) as conn:
        conn.execute("DROP TRIGGER broken")
    assert httpx.put(url, json=plan_body(), headers=AUTH).status_code == 201
    api.stop()
    logs = api.logs()
    assert "unhandled error on PUT /internal/plans/d/2026-11-25 [req-broken-1]" in logs
    assert "no such function: no_such_function" in logs
    assert "storage_unavailable" not in logs


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = TcpProxy(("127.0.0.1", 5432))
    yield server
    server.close()


@pytest.mark.postgres
def test_postgres_errors_by_kind(
    start_api: Callable[..., ServiceProcess], postgres_url: str, proxy: TcpProxy
) -> None:
    from sqlalchemy.engine import make_url

    proxied = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    api = start_api(proxied)
    url = f"{api.url}/internal/plans/d/2026-11-25"
    assert httpx.put(url, json=plan_body(message_id="1"), headers=AUTH).status_code == 201

    import psycopg

    with psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False)) as conn:
        conn.execute(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'boom'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON plan_revisions FOR EACH ROW EXECUTE FUNCTION boom()"
        )
    bug = httpx.put(url, json=plan_body(text="two", message_id="2"), headers=AUTH)
    assert (bug.status_code, bug.json()["error"]) == (500, "internal_error")
    with psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False)) as conn:
        conn.execute("DROP TRIGGER boom ON plan_revisions")

    proxy.cut()  # the connection is lost, and new ones are refused
    for _ in range(2):
        lost = httpx.put(url, json=plan_body(text="three", message_id="3"), headers=AUTH)
        assert (lost.status_code, lost.json()["error"]) == (503, "storage_unavailable")
    proxy.restore()
    # Writes are checked against the storage probe's verdict (at most 0.5 s old): the API is
    # back, by itself, once the probe has seen the database again.
    for _ in range(300):
        if httpx.get(f"{api.url}/health").status_code == 200:
            break
        threading.Event().wait(0.05)
    # The pooled connections the cut broke fail at most one request (503; no pre-ping, see
    # db.make_engine), which empties the pool: the retry of the write is stored.
    first = httpx.put(url, json=plan_body(text="four", message_id="4"), headers=AUTH)
    back = (
        first
        if first.status_code != 503
        else httpx.put(url, json=plan_body(text="four", message_id="4"), headers=AUTH)
    )
    assert back.status_code == 200, back.text

    # An outage over before anyone noticed it: every connection is broken, the database is up.
    # The storage probe retries on a new connection (it does not report the database down), and
    # the pooled connections cost at most one failed request.
    proxy.cut()
    proxy.restore()
    threading.Event().wait(0.6)  # the storage verdict is out of date: the next request probes
    assert [httpx.get(f"{api.url}/health").status_code for _ in range(3)] == [200, 200, 200]
    statuses = [
        httpx.put(url, json=plan_body(text=f"five {n}", message_id=f"5{n}"), headers=AUTH).status_code
        for n in range(3)
    ]
    assert statuses in ([200, 200, 200], [503, 200, 200]), statuses
