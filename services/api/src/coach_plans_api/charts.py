"""Chart archival: copy each chart into a content-addressed store before its Discord URL expires.

Downloads are guarded: every hop of a redirect must be on `CHART_ALLOWED_HOSTS` (a bare host
allows its scheme's default port only, `host:port` that port), bodies are counted as they are
decoded (one gzip or deflate layer at most, and none is asked for), and `CHART_FETCH_TIMEOUT`
bounds the whole download. Several charts download at once, so one slow origin holds one slot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
from sqlalchemy.exc import DBAPIError

from coach_plans_api import repository as repo
from coach_plans_api.config import Settings
from coach_plans_api.db import Database
from coach_plans_api.errors import StorageUnavailable
from coach_plans_api.models import ArchiveStatus

log = logging.getLogger("coach_plans_api.charts")
SHA256_HEX = 64
RETRY_BASE_SECONDS = 30.0
MAX_REDIRECTS = 5
CONCURRENT_DOWNLOADS = 4
_AUTHORITY_END = re.compile(r"[/?#]")  # where httpx ends a URL's authority
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # httpx refuses these anywhere in a URL
MAX_PORT = 65535


class ChartRejected(Exception):
    """The bytes are not something we keep (too large, not an image); retrying will not help."""


class ChartUnavailable(Exception):
    """The download failed this time (expired link, network, too slow); worth retrying later."""


def image_type(head: bytes) -> str | None:
    """The image type from the file's first bytes, whatever its name says."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def host_allowed(url: httpx.URL, allowed: frozenset[str]) -> bool:
    """`host` allows the scheme's default port only; `host:port` that port; `host:*` any port of
    that host; `*` any URL."""
    if url.scheme not in ("http", "https"):
        return False
    if "*" in allowed:
        return True
    # httpx leaves the port out when it is the scheme's default.
    return origin(url).lower() in allowed or f"{origin(url.copy_with(port=None)).lower()}:*" in allowed


def url_error(url: str) -> str | None:
    """Why `url` is not a URL the archiver could fetch (httpx refuses it, it names no host, its
    port is out of range), or None."""
    if _CONTROL.search(url):
        return "it holds a control character"
    parsed = _authority(_head(url))
    return parsed if isinstance(parsed, str) else None


def not_allowed(url: str, allowed: frozenset[str]) -> str | None:
    """Why a chart at `url` is not archived (its host is off the allow-list, or it is no URL the
    archiver could fetch), or None to fetch it."""
    return _not_allowed(_head(url), allowed)


def _head(url: str) -> str:
    """The scheme and authority of `url`, all that the checks above look at: parsing a URL is the
    costly part of a chart's write and a few hosts serve them all, so verdicts are cached by it."""
    scheme, separator, rest = url.partition("://")
    return f"{scheme}://{_AUTHORITY_END.split(rest, maxsplit=1)[0]}" if separator else url


@functools.lru_cache(maxsize=256)
def _authority(head: str) -> httpx.URL | str:
    try:
        parsed = httpx.URL(head)
        host = parsed.host  # decoded from IDNA here
    except (httpx.InvalidURL, UnicodeError) as exc:  # a bad IDNA host raises a UnicodeError
        return str(exc)
    if not host:
        return "it names no host"
    if parsed.port is not None and parsed.port > MAX_PORT:
        return f"port {parsed.port} is out of range"
    return parsed


@functools.lru_cache(maxsize=256)
def _not_allowed(head: str, allowed: frozenset[str]) -> str | None:
    parsed = _authority(head)
    if isinstance(parsed, str):
        return f"not a URL to fetch: {parsed}"
    return None if host_allowed(parsed, allowed) else f"{origin(parsed)} is not in CHART_ALLOWED_HOSTS"


def origin(url: httpx.URL) -> str:
    """`host` or `host:port` as an allow-list entry would name it."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return host if url.port is None else f"{host}:{url.port}"


class ChartStore:
    """A local directory of files named by the SHA-256 of their bytes (so stored once each)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file, a crash leaves none.
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            Path(tmp.name).replace(target)
        return sha256

    def find(self, sha256: str) -> Path | None:
        if len(sha256) != SHA256_HEX or any(c not in "0123456789abcdef" for c in sha256):
            return None
        path = self.path(sha256)
        return path if path.is_file() else None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Body:
    """Collects a response body, counting the bytes as they are decoded against the limit."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        else:
            raise ChartRejected(f"unsupported content encoding {encoding!r}")

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ChartRejected(f"chart is over the {self.limit}-byte limit")
        self.chunks.append(data)

    def feed(self, raw: bytes) -> None:
        if self._decoder is None:
            self._keep(raw)
            return
        pending = raw
        try:
            while pending:
                # Never inflate more than one byte past the limit in one step.
                self._keep(self._decoder.decompress(pending, self.limit - self.size + 1))
                pending = self._decoder.unconsumed_tail
        except zlib.error as exc:
            raise ChartRejected(f"the compressed body is damaged: {exc}") from exc

    def data(self) -> bytes:
        if self._decoder is not None:
            self._keep(self._decoder.flush())
        return b"".join(self.chunks)


class ChartArchiver:
    """Downloads pending charts in the background; failures are recorded and retried."""

    def __init__(
        self,
        *,
        db: Database,
        store: ChartStore,
        settings: Settings,
        http: httpx.AsyncClient,
        on_archived: Callable[[], None] = lambda: None,
        now: Callable[[], dt.datetime] = utc_now,
        concurrency: int = CONCURRENT_DOWNLOADS,
    ) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.http = http
        self._on_archived = on_archived
        self._now = now
        self._concurrency = concurrency
        self._in_flight: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New charts were written (from any thread): look now rather than at the next poll."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, poll_seconds: float = 5.0) -> None:
        """Archive charts as they become due, a few at a time, until cancelled."""
        self._loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as tasks:
            while True:
                self._wake.clear()
                try:
                    for chart_id, url in await self._due(self._concurrency - len(self._in_flight)):
                        self._in_flight.add(chart_id)
                        tasks.start_soon(self._archive_in_background, chart_id, url)
                except (DBAPIError, StorageUnavailable) as exc:
                    _unavailable(exc)
                with anyio.move_on_after(poll_seconds):
                    await self._wake.wait()

    async def run_once(self, limit: int = 20) -> int:
        """Archive up to `limit` charts that are due, at once; returns how many were attempted."""
        due = await self._due(limit)
        async with anyio.create_task_group() as tasks:
            for chart_id, url in due:
                tasks.start_soon(self._archive, chart_id, url)
        if due:
            self._on_archived()
        return len(due)

    async def _due(self, limit: int) -> list[tuple[int, str]]:
        if limit <= 0:
            return []

        now, busy = self._now(), frozenset(self._in_flight)

        def query() -> list[tuple[int, str]]:
            with self.db.reading() as conn:
                return repo.charts_due(conn, now=now, limit=limit, exclude=busy)

        return await anyio.to_thread.run_sync(query)

    async def _archive_in_background(self, chart_id: int, url: str) -> None:
        try:
            await self._archive(chart_id, url)
            self._on_archived()
        except (DBAPIError, StorageUnavailable) as exc:
            _unavailable(exc)  # recorded on a later attempt: the chart is still pending
        finally:
            self._in_flight.discard(chart_id)
            self._wake.set()  # a slot is free

    async def _archive(self, chart_id: int, url: str) -> None:
        # Charts are marked skipped when written; this catches those stored before the
        # allow-list changed.
        reason = not_allowed(url, self.settings.chart_hosts)
        if reason is not None:
            await self._record(chart_id, status=ArchiveStatus.skipped, error=reason)
            return
        try:
            data, kind = await self._download(url)
        except ChartRejected as exc:
            await self._record(chart_id, status=ArchiveStatus.failed, error=str(exc))
            return
        except ChartUnavailable as exc:
            await self._record(chart_id, status=ArchiveStatus.pending, error=str(exc), retry=True)
            return
        sha256 = await anyio.to_thread.run_sync(self.store.put, data)
        await self._record(
            chart_id, status=ArchiveStatus.archived, sha256=sha256, content_type=kind, size=len(data)
        )

    async def _download(self, url: str) -> tuple[bytes, str]:
        timeout = self.settings.chart_fetch_timeout
        try:
            with anyio.fail_after(timeout):
                data = await self._fetch(httpx.URL(url))
        except TimeoutError:
            raise ChartUnavailable(f"{url}: not downloaded within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ChartUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        except (httpx.InvalidURL, UnicodeError) as exc:  # redirected to a host that is no name ("xn--")
            raise ChartRejected(f"redirected to an invalid URL: {exc}") from None
        kind = image_type(data[:16])
        if kind is None:
            raise ChartRejected("the file is not a PNG, JPEG, GIF or WEBP image (checked by its bytes)")
        return data, kind

    async def _fetch(self, url: httpx.URL) -> bytes:
        limit = self.settings.chart_max_bytes
        for _hop in range(MAX_REDIRECTS + 1):
            if not host_allowed(url, self.settings.chart_hosts):
                raise ChartRejected(f"redirected to {origin(url)}, which is not in CHART_ALLOWED_HOSTS")
            # Images are compressed already; asking for identity keeps decompression bombs away.
            async with self.http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
                if response.is_redirect and "location" in response.headers:
                    url = url.join(response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise ChartUnavailable(f"{url} answered HTTP {response.status_code}")
                encodings = [
                    e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")
                ]
                encodings = [e for e in encodings if e not in ("", "identity")]
                if len(encodings) > 1:
                    raise ChartRejected(f"stacked content encodings ({', '.join(encodings)}) are refused")
                declared = response.headers.get("content-length", "")
                if not encodings and declared.isdigit() and int(declared) > limit:
                    raise ChartRejected(f"chart is {int(declared)} bytes; the limit is {limit}")
                body = _Body(encodings[0] if encodings else "", limit)
                async for raw in response.aiter_raw():
                    body.feed(raw)
                return body.data()
        raise ChartRejected(f"more than {MAX_REDIRECTS} redirects")

    async def _record(
        self,
        chart_id: int,
        *,
        status: ArchiveStatus,
        error: str | None = None,
        retry: bool = False,
        sha256: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
    ) -> None:
        # Through the writer (group commit): a transaction of its own per chart would take
        # SQLite's write lock and pay an fsync each, stalling the plan writes queued behind it.
        now = self._now()
        final = await self.db.run_write_async(
            lambda conn: repo.record_archive(
                conn,
                chart_id,
                status=status,
                error=error,
                retry=retry,
                now=now,
                retry_base_seconds=RETRY_BASE_SECONDS,
                max_attempts=self.settings.chart_max_attempts,
                sha256=sha256,
                content_type=content_type,
                size=size,
            )
        )
        if final is not None:  # None: the plan's charts were replaced meanwhile
            level = logging.INFO if final == ArchiveStatus.archived else logging.WARNING
            log.log(level, "chart %d %s%s", chart_id, final, f": {error}" if error else "")


def _unavailable(exc: DBAPIError | StorageUnavailable) -> None:
    reason = exc.detail if isinstance(exc, StorageUnavailable) else exc.orig
    log.warning("chart archiver: database unavailable: %s", reason)
