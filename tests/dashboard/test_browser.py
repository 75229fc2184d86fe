"""The dashboard in headless Chromium against the real API process: plans and charts visible."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

pytestmark = pytest.mark.slow

DAY = "2026-11-25"
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
CHART_BG = (19, 23, 34)
WINDOW = (420, 1200)
# DASHBOARD_SCREENSHOT=docs/dashboard.png refreshes the picture in the docs from this test's page.
DOCS_SHOT = os.environ.get("DASHBOARD_SCREENSHOT")


def find_chromium() -> str:
    """Skip (outside CI) or fail (in CI) when Debian's `chromium` is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "chromium not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser test")
        pytest.skip(reason)
    return path


# --- a chart server -------------------------------------------------------------------------
def png(width: int, height: int, pixels: list[bytearray]) -> bytes:
    """An RGB PNG from rows of pixels, written with zlib and struct only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def candle_chart(seed: int, width: int = 640, height: int = 360) -> bytes:
    """A dark candlestick chart, so the screenshot looks like what coaches post."""
    rng = random.Random(seed)
    rows = [bytearray(CHART_BG * width) for _ in range(height)]

    def paint(x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        for y in range(max(0, min(y0, y1)), min(height, max(y0, y1) + 1)):
            rows[y][3 * max(0, x0) : 3 * min(width, x1 + 1)] = bytes(rgb) * (min(width, x1 + 1) - max(0, x0))

    for y in range(30, height, 60):
        paint(0, y, width - 1, y, (42, 46, 57))
    price = height / 2
    for x in range(12, width - 12, 16):
        close = min(height - 40.0, max(40.0, price + rng.gauss(0, 14)))
        high, low = min(price, close) - rng.uniform(3, 18), max(price, close) + rng.uniform(3, 18)
        color = (38, 166, 154) if close < price else (239, 83, 80)
        paint(x + 4, int(high), x + 5, int(low), color)
        paint(x, int(min(price, close)), x + 9, int(max(price, close)) + 1, color)
        price = close
    return png(width, height, rows)


class ChartServer:
    """Serves PNG charts on 127.0.0.1 and records which paths were fetched."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.fetched: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetched.append(self.path)
                body = server.images.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, name: str, image: bytes) -> str:
        self.images[f"/{name}"] = image
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"


@pytest.fixture
def chart_server() -> Iterator[ChartServer]:
    server = ChartServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


# --- reading a screenshot -------------------------------------------------------------------
def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of RGB pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(v for i, v in enumerate(line) if i % bpp < 3))
        prev = line
    return width, height, rows


def count_color(rows: list[bytes], rgb: tuple[int, int, int], tolerance: int = 4) -> int:
    return sum(
        all(abs(row[i + k] - rgb[k]) <= tolerance for k in range(3))
        for row in rows
        for i in range(0, len(row), 3)
    )


# --- the test -------------------------------------------------------------------------------
def chromium(binary: str, profile: Path, *args: str, window: tuple[int, int] = WINDOW) -> str:
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            "--virtual-time-budget=3000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


PLANS = [
    (
        "coach_d",
        "1001",
        "Dan",
        "NVDA: long over 950 on a reclaim of VWAP, add over 962.\nStop 941. Targets 975 / 990.",
    ),
    ("coach_i", "1002", "Ivy", "QQQ gap fill to 498 in play.\nWatching TSLA 240 support; no trade under it."),
    ("coach_s", "1003", "Sam", "SPY: fade 602 if it rejects twice, cover 596.\nAAPL earnings drift: flat."),
    ("coach_n", "1004", "Nat", "AMD breakout over 172 with volume.\nSMCI too extended, waiting for a base."),
]


def test_dashboard_in_chromium(
    start_api: Callable[..., ServiceProcess], chart_server: ChartServer, tmp_path: Path
) -> None:
    browser = find_chromium()
    api = start_api()
    expected: dict[str, list[str]] = {}
    for n, (coach, user_id, name, text) in enumerate(PLANS):
        charts = [chart_server.add(f"{coach}-{i}.png", candle_chart(10 * n + i)) for i in range(2 - n % 2)]
        expected[coach] = charts
        body = plan_body(text=text, charts=charts, user_id=user_id, name=name, message_id=str(100 + n))
        response = httpx.put(f"{api.url}/internal/plans/{coach}/{DAY}", json=body, headers=AUTH)
        assert response.status_code == 201, response.text
    other = chart_server.add("other-day.png", candle_chart(99))
    body = plan_body(text="the next day's plan", charts=[other], message_id="200")
    assert httpx.put(f"{api.url}/internal/plans/coach_d/2026-11-26", json=body, headers=AUTH).is_success
    edit = plan_body(
        text=PLANS[1][3] + "\nUpdate: gap filled, out.", user_id="1002", name="Ivy", message_id="300"
    )
    edit["charts"] = [{"url": u} for u in expected["coach_i"]]
    assert httpx.put(f"{api.url}/internal/plans/coach_i/{DAY}", json=edit, headers=AUTH).is_success

    url = f"{api.url}/?date={DAY}"
    dom = chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    for coach, _, name, text in PLANS:
        assert f'data-coach="{coach}"' in dom
        assert f"By {name}" in dom
        assert text.splitlines()[0].replace("&", "&amp;") in dom
        for chart in expected[coach]:
            assert f'src="{chart}"' in dom
    assert "Update: gap filled" in dom
    assert "the next day's plan" not in dom
    assert 'class="edited"' in dom
    # Chromium itself fetched every chart of the day, and nothing of the other day.
    wanted = {
        c.removeprefix(f"http://127.0.0.1:{chart_server.httpd.server_port}")
        for cs in expected.values()
        for c in cs
    }
    assert wanted <= set(chart_server.fetched), chart_server.fetched
    assert "/other-day.png" not in chart_server.fetched

    shot = tmp_path / "shot.png"
    chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", url)
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == WINDOW
    # The first card's chart is on the first screen: its dark background is painted, not a broken icon.
    assert count_color(rows, CHART_BG) > 10_000
    if DOCS_SHOT:
        chromium(
            browser,
            tmp_path / "profile-docs",
            f"--screenshot={Path(DOCS_SHOT).resolve()}",
            url,
            window=(412, 1900),
        )
