"""Chart archival: copy each chart into a content-addressed store before its Discord URL expires."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError

from coach_plans_api import repository as repo
from coach_plans_api.config import Settings
from coach_plans_api.db import Database
from coach_plans_api.errors import StorageUnavailable
from coach_plans_api.models import Chart

log = logging.getLogger("coach_plans_api.charts")
SHA256_HEX = 64
RETRY_BASE_SECONDS = 30.0


class ChartRejected(Exception):
    """The bytes are not something we keep (too large, not an image); retrying will not help."""


class ChartUnavailable(Exception):
    """The download failed this time (expired link, network); worth retrying later."""


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


class ChartArchiver:
    """Downloads pending charts in the background; failures are recorded and retried."""

    def __init__(
        self,
        *,
        db: Database,
        store: ChartStore,
        settings: Settings,
        http: httpx.Client,
        on_archived: Callable[[], None] = lambda: None,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.http = http
        self._on_archived = on_archived
        self._now = now
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """New charts were written: look now rather than at the next poll."""
        self._wake.set()

    def start(self, poll_seconds: float = 5.0) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    busy = self.run_once() > 0
                except DBAPIError as exc:
                    log.warning("chart archiver: database unavailable: %s", exc.orig)
                    busy = False
                except StorageUnavailable as exc:
                    log.warning("chart archiver: %s", exc.detail)
                    busy = False
                if not busy:
                    self._wake.wait(poll_seconds)
                    self._wake.clear()

        self._thread = threading.Thread(target=loop, name="chart-archiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.chart_fetch_timeout + 5)

    def run_once(self, limit: int = 20) -> int:
        """Archive up to `limit` charts that are due; returns how many were attempted."""
        now = self._now()
        with self.db.read() as session:
            due = session.execute(
                select(Chart.id, Chart.chart_url)
                .where(
                    Chart.archive_status == "pending",
                    or_(Chart.archive_next_at.is_(None), Chart.archive_next_at <= now),
                )
                .order_by(Chart.id)
                .limit(limit)
            ).all()
        for chart_id, url in due:
            self._archive(chart_id, url)
        if due:
            self._on_archived()
        return len(due)

    def _archive(self, chart_id: int, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if "*" not in self.settings.chart_hosts and host not in self.settings.chart_hosts:
            self._record(chart_id, status="skipped", error=f"host {host!r} is not in CHART_ALLOWED_HOSTS")
            return
        try:
            data, kind = self._download(url)
        except ChartRejected as exc:
            self._record(chart_id, status="failed", error=str(exc))
            return
        except ChartUnavailable as exc:
            self._record(chart_id, status="pending", error=str(exc), retry=True)
            return
        sha256 = self.store.put(data)
        self._record(chart_id, status="archived", sha256=sha256, content_type=kind, size=len(data))

    def _download(self, url: str) -> tuple[bytes, str]:
        limit = self.settings.chart_max_bytes
        try:
            with self.http.stream("GET", url, timeout=self.settings.chart_fetch_timeout) as response:
                if response.status_code != 200:
                    raise ChartUnavailable(f"{url} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise ChartRejected(f"chart is {int(declared)} bytes; the limit is {limit}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ChartRejected(f"chart is over the {limit}-byte limit")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ChartUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        data = b"".join(chunks)
        kind = image_type(data[:16])
        if kind is None:
            raise ChartRejected("the file is not a PNG, JPEG, GIF or WEBP image (checked by its bytes)")
        return data, kind

    def _record(
        self,
        chart_id: int,
        *,
        status: str,
        error: str | None = None,
        retry: bool = False,
        sha256: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
    ) -> None:
        # Through the writer (group commit): a transaction of its own per chart would take
        # SQLite's write lock and pay an fsync each, stalling the plan writes queued behind it.
        now = self._now()
        stored = self.db.run_write(
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
        if stored is None:
            return
        status = stored
        level = logging.INFO if status == "archived" else logging.WARNING
        log.log(level, "chart %d %s%s", chart_id, status, f": {error}" if error else "")
