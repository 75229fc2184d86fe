"""Chart archival against a local HTTP server standing in for Discord's CDN."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import http.server
import logging
import sqlite3
import struct
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from coach_plans_api.app import create_app
from coach_plans_api.charts import ChartArchiver
from tests.conftest import INTERNAL_TOKEN, ServiceProcess, make_settings, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class CDN:
    """Serves fixed bodies by path; `/expiring.png` fails `fail_first` times before it works."""

    def __init__(self) -> None:
        self.files = {
            "/a.png": png(),
            "/same-bytes.png": png(),
            "/big.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000,
            "/renamed.png": b"#!/bin/sh\necho this is a script, not an image\n",
            "/expiring.png": png(3, 3),
        }
        self.fail_first = 2
        self.requests: list[str] = []
        self.accept_encoding: list[str | None] = []
        # Paths answered by a function of the request handler instead of a fixed body.
        self.special: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        cdn = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cdn.requests.append(self.path)
                cdn.accept_encoding.append(self.headers.get("Accept-Encoding"))
                if self.path in cdn.special:
                    cdn.special[self.path](self)
                    return
                if self.path == "/expiring.png" and cdn.fail_first > 0:
                    cdn.fail_first -= 1
                    self.send_error(403, "signature expired")
                    return
                body = cdn.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"  # an allow-list entry: host and port
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def cdn() -> Iterator[CDN]:
    server = CDN()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def client(database_url: str, tmp_path: Path, cdn: CDN) -> Iterator[TestClient]:
    settings = make_settings(
        database_url,
        chart_store_dir=tmp_path / "charts",
        chart_max_bytes=4096,
        chart_allowed_hosts=cdn.host,
        chart_max_attempts=4,
        public_base_url="http://plans.example",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class Archiver:
    """An archiver on the test app's event loop, with the test's clock."""

    def __init__(self, client: TestClient, clock: Clock) -> None:
        state = client.app.state.core  # type: ignore[attr-defined]
        self.client = client
        self.archiver = ChartArchiver(
            db=state.service.db,
            store=state.charts,
            settings=state.settings,
            http=httpx.AsyncClient(),  # replaced by one per run, closed after it
            on_archived=state.cache.invalidate,
            now=clock,
        )

    def run_once(self) -> int:
        async def once() -> int:
            async with httpx.AsyncClient() as http:
                self.archiver.http = http
                return await self.archiver.run_once()

        assert self.client.portal is not None
        return self.client.portal.call(once)


def archiver_of(client: TestClient, clock: Clock) -> Archiver:
    return Archiver(client, clock)


def stored_archive(client: TestClient) -> list[tuple[str, str | None]]:
    """(archive_status, archive_error) of every stored chart, as the database has them."""
    state = client.app.state.core  # type: ignore[attr-defined]
    with state.service.db.reading() as conn:
        rows = conn.all("SELECT archive_status, archive_error FROM plan_charts ORDER BY id")
    return [(status, error) for status, error in rows]


def charts_of(client: TestClient, date: str = "2026-11-25") -> list[dict[str, object]]:
    plan = client.get("/api/v1/plans", params={"date": date}).json()["items"][0]
    return list(plan["charts"])


def test_archival_dedupe_limits_and_stable_urls(client: TestClient, cdn: CDN, tmp_path: Path) -> None:
    urls = [f"{cdn.url}/{name}" for name in ("a.png", "same-bytes.png", "big.png", "renamed.png")]
    client.put("/internal/plans/d/2026-11-25", json=plan_body(charts=urls), headers=AUTH)
    before = charts_of(client)
    assert [c["url"] for c in before] == urls  # the plan is stored and served before any download
    assert {c["archive_status"] for c in before} == {"pending"}

    archiver = archiver_of(client, Clock())
    assert archiver.run_once() == 4
    charts = charts_of(client)
    assert [c["archive_status"] for c in charts] == ["archived", "archived", "failed", "failed"]
    a, same, big, _renamed = charts
    assert a["sha256"] == same["sha256"]
    assert a["url"] == same["url"] == f"http://plans.example/charts/{a['sha256']}.png"
    assert a["original_url"] == urls[0]
    assert (a["content_type"], a["size_bytes"]) == ("image/png", len(png()))
    assert len(list((tmp_path / "charts").rglob("*"))) == 2  # one directory, one file: stored once
    assert big["url"] == urls[2]
    legacy = client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()["charts"]
    assert legacy == [a["url"], same["url"], urls[2], urls[3]]

    served = client.get(f"/charts/{a['sha256']}.png")
    assert served.status_code == 200
    assert served.content == png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = client.get(f"/charts/{a['sha256']}.png", headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304
    assert client.get(f"/charts/{'0' * 64}.png").status_code == 404
    assert client.get("/charts/../../etc/passwd").status_code == 404
    assert client.get("/charts/not-a-hash.png").status_code == 422


def test_rejection_reasons_are_reported(client: TestClient, cdn: CDN) -> None:
    client.put(
        "/internal/plans/d/2026-11-25",
        headers=AUTH,
        json=plan_body(charts=[f"{cdn.url}/big.png", f"{cdn.url}/renamed.png"]),
    )
    archiver_of(client, Clock()).run_once()
    big, renamed = (error for _status, error in stored_archive(client))
    assert big is not None
    assert "limit" in big
    assert renamed is not None
    assert "not a PNG, JPEG, GIF or WEBP image" in renamed


def test_expired_link_is_retried_with_backoff(client: TestClient, cdn: CDN) -> None:
    client.put(
        "/internal/plans/d/2026-11-25", json=plan_body(charts=[f"{cdn.url}/expiring.png"]), headers=AUTH
    )
    clock = Clock()
    archiver = archiver_of(client, clock)
    assert archiver.run_once() == 1
    assert charts_of(client)[0]["archive_status"] == "pending"
    assert archiver.run_once() == 0  # not due yet
    clock.now += dt.timedelta(seconds=31)
    assert archiver.run_once() == 1  # second failure: next try in 60 s
    clock.now += dt.timedelta(seconds=31)
    assert archiver.run_once() == 0
    clock.now += dt.timedelta(seconds=30)
    assert archiver.run_once() == 1
    assert charts_of(client)[0]["archive_status"] == "archived"
    assert cdn.requests == ["/expiring.png"] * 3


def test_link_that_never_comes_back_fails_after_max_attempts(client: TestClient, cdn: CDN) -> None:
    cdn.fail_first = 100
    client.put(
        "/internal/plans/d/2026-11-25", json=plan_body(charts=[f"{cdn.url}/expiring.png"]), headers=AUTH
    )
    clock = Clock()
    archiver = archiver_of(client, clock)
    for _ in range(4):
        archiver.run_once()
        clock.now += dt.timedelta(hours=1)
    assert charts_of(client)[0]["archive_status"] == "failed"
    assert archiver.run_once() == 0
    assert len(cdn.requests) == 4


def test_hosts_outside_the_allowlist_are_not_fetched(client: TestClient, cdn: CDN) -> None:
    response = client.put(
        "/internal/plans/d/2026-11-25", json=plan_body(charts=["http://10.0.0.1/secret.png"]), headers=AUTH
    )
    # Decided when the plan is written: the answer says so and the archiver has nothing to do.
    assert response.json()["charts"][0]["archive_status"] == "skipped"
    assert stored_archive(client) == [("skipped", "10.0.0.1 is not in CHART_ALLOWED_HOSTS")]
    assert archiver_of(client, Clock()).run_once() == 0
    chart = charts_of(client)[0]
    assert (chart["archive_status"], chart["url"]) == ("skipped", "http://10.0.0.1/secret.png")
    assert cdn.requests == []


def test_the_running_service_archives_by_itself(
    start_api: Callable[..., ServiceProcess], cdn: CDN, tmp_path: Path
) -> None:
    api = start_api(CHART_ALLOWED_HOSTS=cdn.host, CHART_STORE_DIR=str(tmp_path / "store"))
    response = httpx.put(
        f"{api.url}/internal/plans/d/2026-11-25", json=plan_body(charts=[f"{cdn.url}/a.png"]), headers=AUTH
    )
    assert response.status_code == 201
    for _ in range(100):
        chart = httpx.get(f"{api.url}/api/v1/plans/{response.json()['id']}").json()["charts"][0]
        if chart["archive_status"] != "pending":
            break
        threading.Event().wait(0.05)
    assert chart["archive_status"] == "archived"
    assert chart["url"] == f"http://127.0.0.1:{api.port}/charts/{chart['sha256']}.png"
    assert httpx.get(chart["url"]).content == png()


# --- hardening: redirects, compression, slow origins, ports ------------------------------------
def send(handler: http.server.BaseHTTPRequestHandler, body: bytes, **headers: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


BAD_LABEL = "Malformed A-label, no Punycode eligible content found"  # idna's words for "xn--"


def redirect(location: str, status: int = 302) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.fixture
def elsewhere() -> Iterator[CDN]:
    """A second server: same address, another port, so not on the allow list."""
    server = CDN()
    yield server
    server.server.shutdown()
    server.server.server_close()


def archive_status(client: TestClient, urls: list[str]) -> list[tuple[str, str | None]]:
    client.put("/internal/plans/d/2026-11-25", json=plan_body(charts=urls), headers=AUTH)
    Archiver(client, Clock()).run_once()
    return stored_archive(client)


def test_redirects_are_followed_only_on_the_allow_list(client: TestClient, cdn: CDN, elsewhere: CDN) -> None:
    cdn.special["/moved.png"] = redirect("/a.png", 307)
    cdn.special["/out.png"] = redirect(f"{elsewhere.url}/a.png")
    cdn.special["/hop.png"] = redirect(f"{cdn.url}/out.png", 301)  # out after an allowed hop
    cdn.special["/loop.png"] = redirect("/loop.png")
    cdn.special["/broken.png"] = redirect("http://xn--/a.png")  # no host name at all
    statuses = archive_status(
        client, [f"{cdn.url}/{n}" for n in ("moved.png", "out.png", "hop.png", "loop.png", "broken.png")]
    )
    assert statuses[0] == ("archived", None)
    assert statuses[1][0] == statuses[2][0] == "failed"
    assert f"redirected to {elsewhere.host}, which is not in CHART_ALLOWED_HOSTS" in (statuses[1][1] or "")
    assert "more than 5 redirects" in (statuses[3][1] or "")
    assert statuses[4] == ("failed", f"redirected to an invalid URL: {BAD_LABEL}")
    assert elsewhere.requests == []  # no request ever left the allow list
    assert cdn.requests.count("/loop.png") == 6


def test_compressed_bodies_are_counted_as_they_are_decoded(client: TestClient, cdn: CDN) -> None:
    bomb = gzip.compress(b"\x00" * 64 * 1024 * 1024)  # 64 MiB of zeros in about 64 KB
    cdn.special["/bomb.png"] = lambda h: send(h, bomb, Content_Encoding="gzip")
    cdn.special["/stacked.png"] = lambda h: send(h, gzip.compress(bomb), Content_Encoding="gzip, gzip")
    cdn.special["/zipped.png"] = lambda h: send(h, gzip.compress(png()), Content_Encoding="gzip")
    cdn.special["/brotli.png"] = lambda h: send(h, png(), Content_Encoding="br")
    names = ("bomb.png", "stacked.png", "zipped.png", "brotli.png")
    tracemalloc.start()
    try:
        statuses = archive_status(client, [f"{cdn.url}/{n}" for n in names])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses[0] == ("failed", "chart is over the 4096-byte limit")
    assert statuses[1] == ("failed", "stacked content encodings (gzip, gzip) are refused")
    assert statuses[2] == ("archived", None)
    assert statuses[3] == ("failed", "unsupported content encoding 'br'")
    print(f"peak traced memory while archiving: {peak} bytes")  # noqa: T201 - the measured figure, shown with -s
    assert peak < 4 * 1024 * 1024, f"the archiver held {peak} bytes at its peak"
    assert set(cdn.accept_encoding) == {"identity"}  # compression is never asked for
    assert charts_of(client)[2]["size_bytes"] == len(png())


def test_a_bare_host_allows_its_default_port_only(database_url: str, tmp_path: Path, cdn: CDN) -> None:
    settings = make_settings(database_url, chart_store_dir=tmp_path / "c", chart_allowed_hosts="127.0.0.1")
    with TestClient(create_app(settings)) as client:
        statuses = archive_status(client, [f"{cdn.url}/a.png"])
    assert statuses == [("skipped", f"{cdn.host} is not in CHART_ALLOWED_HOSTS")]
    assert cdn.requests == []


def _chart_rows(api: ServiceProcess) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(api.env["DATABASE_URL"].removeprefix("sqlite:///")) as conn:
        return conn.execute(
            "SELECT chart_url, archive_status, archive_error FROM plan_charts ORDER BY id"
        ).fetchall()


def _wait_for(condition: Callable[[], bool], rounds: int = 300) -> None:
    for _ in range(rounds):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError("condition not reached")


def test_a_slow_origin_stalls_no_other_chart_and_is_cut_at_the_timeout(
    start_api: Callable[..., ServiceProcess], cdn: CDN, tmp_path: Path
) -> None:
    fast_served = threading.Event()
    order: list[str] = []
    release = threading.Event()

    def fast(handler: http.server.BaseHTTPRequestHandler) -> None:
        send(handler, png())
        fast_served.set()

    def waits_for_fast(handler: http.server.BaseHTTPRequestHandler) -> None:
        order.append("fast first" if fast_served.wait(10) else "fast not yet")
        send(handler, png(4, 4))

    def trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = png(5, 5)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:  # one byte at a time: every read is quick, the whole is not
            if release.wait(0.05):
                return
            with contextlib.suppress(OSError):
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()

    cdn.special.update({"/slow.png": waits_for_fast, "/fast.png": fast, "/trickle.png": trickle})
    api = start_api(
        CHART_ALLOWED_HOSTS=cdn.host, CHART_STORE_DIR=str(tmp_path / "store"), CHART_FETCH_TIMEOUT="1"
    )
    urls = [f"{cdn.url}/{name}" for name in ("trickle.png", "slow.png", "fast.png")]
    response = httpx.put(f"{api.url}/internal/plans/d/2026-11-25", json=plan_body(charts=urls), headers=AUTH)
    assert response.status_code == 201
    try:
        _wait_for(lambda: all(status != "pending" for _, status, _ in _chart_rows(api)[1:]))
        _wait_for(lambda: _chart_rows(api)[0][2] is not None)
    finally:
        release.set()
    trickled, slow, fast_chart = _chart_rows(api)
    assert order == ["fast first"]  # the fast chart did not wait behind the slow one
    assert slow[1] == fast_chart[1] == "archived"
    assert trickled[1] == "pending"  # retried later
    assert trickled[2] == f"{urls[0]}: not downloaded within 1 s"


def test_host_star_allows_any_port_of_that_host_only(database_url: str, tmp_path: Path, cdn: CDN) -> None:
    settings = make_settings(
        database_url, chart_store_dir=tmp_path / "c", chart_allowed_hosts="localhost:*,127.0.0.1:*"
    )
    elsewhere = f"http://127.0.0.2:{cdn.url.rsplit(':', 1)[1]}/b.png"
    with TestClient(create_app(settings)) as client:
        statuses = archive_status(client, [f"{cdn.url}/a.png", elsewhere])
    assert statuses[0] == ("archived", None)
    assert statuses[1] == ("skipped", f"{elsewhere.split('/')[2]} is not in CHART_ALLOWED_HOSTS")


def test_running_archiver_outlives_a_database_outage(
    database_url: str, tmp_path: Path, cdn: CDN, caplog: pytest.LogCaptureFixture
) -> None:
    """The storage probe refuses the archiver's reads while the file is away; it carries on after."""
    path = Path(database_url.removeprefix("sqlite:///"))
    settings = make_settings(
        database_url,
        chart_store_dir=tmp_path / "charts",
        chart_allowed_hosts=cdn.host,
        chart_archiver=True,
    )
    with (
        caplog.at_level(logging.WARNING, logger="coach_plans_api.charts"),
        TestClient(create_app(settings)) as client,
    ):
        path.rename(tmp_path / "aside.db")
        client.app.state.core.archiver.wake()  # type: ignore[attr-defined]
        _wait_for(lambda: "chart archiver: database unavailable" in caplog.text)
        (tmp_path / "aside.db").replace(path)
        _wait_for(lambda: client.get("/health").status_code == 200)
        client.put("/internal/plans/d/2026-11-25", json=plan_body(charts=[f"{cdn.url}/a.png"]), headers=AUTH)
        _wait_for(lambda: charts_of(client)[0]["archive_status"] == "archived")
