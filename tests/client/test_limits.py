"""What one answer may cost: its decoded size (max_response_bytes) and its time (timeout)."""

from __future__ import annotations

import gzip
import socketserver
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import respx

from coach_plans_client import (
    AsyncCoachPlansClient,
    CoachPlansClient,
    DiscordWebhookClient,
    InvalidResponseError,
    TimeoutError,
)

from .conftest import API, DATE

PLAN_PATH = "/api/coach-plans/"
# 1 MiB of JSON that gzip packs into about 1 KiB: a small decompression bomb.
BOMB = gzip.compress(b"[" + b" " * (1024 * 1024) + b"]")


def bomb() -> httpx.Response:
    # A stream, so that the client decodes it as it reads, as it would from the network.
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(BOMB))


def test_the_cap_is_32_mib_by_default() -> None:
    assert CoachPlansClient(API).max_response_bytes == 32 * 1024 * 1024
    with pytest.raises(ValueError, match="max_response_bytes"):
        CoachPlansClient(API, max_response_bytes=0)


def test_an_answer_decoding_past_the_cap_is_an_invalid_response(api: respx.MockRouter) -> None:
    route = api.get(PLAN_PATH).mock(side_effect=[bomb()])
    client = CoachPlansClient(API, max_response_bytes=64 * 1024)
    with pytest.raises(InvalidResponseError, match="max_response_bytes") as info:
        client.get_plan("d", DATE)
    assert info.value.status_code == 200
    assert route.call_count == 1  # not retried


def test_an_error_answer_is_capped_too(api: respx.MockRouter) -> None:
    api.get(PLAN_PATH).respond(500, content=b"x" * 5000)
    client = CoachPlansClient(API, max_retries=0, max_response_bytes=1000)
    with pytest.raises(InvalidResponseError, match="max_response_bytes"):
        client.get_plan("d", DATE)


async def test_the_async_client_caps_the_answer(api: respx.MockRouter) -> None:
    api.get(PLAN_PATH).mock(side_effect=[bomb()])
    async with AsyncCoachPlansClient(API, max_response_bytes=64 * 1024) as client:
        with pytest.raises(InvalidResponseError, match="max_response_bytes"):
            await client.get_plan("d", DATE)


def test_the_legacy_client_falls_back_past_the_cap(api: respx.MockRouter) -> None:
    api.get(PLAN_PATH).mock(side_effect=[bomb()])
    client = DiscordWebhookClient({"coach_d": API}, max_response_bytes=64 * 1024)
    plan = client.fetch_coach_plan("coach_d", DATE)
    assert (plan["plan"], plan["error"]) == (
        f"No plan available for coach_d on {DATE}",
        "InvalidResponseError",
    )


class Trickle(socketserver.StreamRequestHandler):
    """Answers with headers at once, then a byte every 50 ms: each read well within a timeout."""

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the request
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
        try:
            for _ in range(200):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up


@pytest.fixture
def trickling() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_timeout_bounds_the_whole_attempt_of_the_sync_client(trickling: str) -> None:
    """Before, a server trickling a byte at a time held the call for as long as it liked."""
    started = time.monotonic()
    with CoachPlansClient(trickling, timeout=0.3) as client, pytest.raises(TimeoutError):
        client.get_plan("d", DATE)
    assert time.monotonic() - started < 2 * 0.3 + 0.5  # at most about twice the timeout


async def test_the_timeout_bounds_the_whole_attempt_of_the_async_client(trickling: str) -> None:
    started = time.monotonic()
    async with AsyncCoachPlansClient(trickling, timeout=0.3) as client:
        with pytest.raises(TimeoutError, match=r"no complete answer within 0\.3 s"):
            await client.get_plan("d", DATE)
    assert time.monotonic() - started < 0.3 + 0.5
