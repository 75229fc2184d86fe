"""What the API knows about its database right now, without asking it on every request.

A background probe (every `PROBE_INTERVAL` seconds) checks that the database is there and is the
one the API started on: for SQLite the file (its identity, header and size), for both backends the
schema revision and the `database_identity` row. `/health` answers from the last verdict; every
read checks it, and every commit checks it again together with the file and the identity row, so
a write is never acknowledged into a database that the next process would not open. When the good
database is back, the probe says so and the API recovers without a restart.

It also keeps the data version that the read caches compare with, so a write by any process (the
CLI, another replica) is never hidden behind a cached answer: SQLite's `PRAGMA data_version`
(changes whenever another connection commits) and, on PostgreSQL, a counter bumped by the NOTIFY
of the plan tables' triggers (migration 0004).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from coach_plans_api import migrate
from coach_plans_api import repository as repo
from coach_plans_api.db import LOCK_WAIT_MS, Database, connect_existing
from coach_plans_api.errors import StorageUnavailable
from coach_plans_api.repository import Conn

log = logging.getLogger("coach_plans_api.storage")
PROBE_INTERVAL = 0.5
# SQLite: how often the data version is read (a few microseconds each): a commit by another
# process reaches the caches within this.
VERSION_POLL = 0.005
# A verdict older than this is not trusted (the probe itself is stuck, e.g. on a dead network).
STALE_AFTER = 5.0
# The live plan count (a scan: 0.2 s at 1,000,000 plans) is refreshed at most this often, and only
# after a change; this process adjusts it for its own writes meanwhile.
COUNT_INTERVAL = 30.0
CHANGE_CHANNEL = "coach_plans_changed"
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100


@dataclass(frozen=True, slots=True)
class StorageStatus:
    ok: bool
    reason: str | None = None
    plans: int | None = None
    bot_connected: bool = False
    checked_at: float = 0.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def schema_head(database: Database) -> str | None:
    """The newest migration this code knows, or None when the migrations are not installed."""
    try:
        return ScriptDirectory.from_config(migrate.alembic_config(database.url)).get_current_head()
    except CommandError as exc:  # no migrations directory, or several heads in it
        log.warning("schema revision not checked: %s", exc)
        return None


class FileWatch:
    """Reads the SQLite file's header through descriptors that are never closed while in use.

    Closing any descriptor of a file drops every POSIX lock this process holds on that file,
    SQLite's locks included: opening and closing the database file to look at it would let another
    process write in the middle of our transaction. So each file is opened once, read with pread.
    """

    def __init__(self, path: Path, *, checkpoints: threading.Lock) -> None:
        self.path = path
        # Held while a checkpoint copies the WAL into the file: meanwhile its header may promise
        # pages not written yet, which would look like a truncated file.
        self._checkpoints = checkpoints
        self._descriptors: dict[tuple[int, int], int] = {}
        self._spare: list[int] = []  # duplicates from a race, kept open like the others
        self._lock = threading.Lock()

    def problem(self) -> tuple[str | None, tuple[int, int] | None]:
        """What is wrong with the file now (None if nothing), and its (device, inode)."""
        path = self.path
        try:
            fd = self._descriptor()
            with self._checkpoints:
                stat = os.fstat(fd)
                header = os.pread(fd, HEADER_BYTES, 0)
        except FileNotFoundError:
            return f"database file {path} is missing", None
        except OSError as exc:
            return f"database file {path} cannot be read: {exc}", None
        identity = (stat.st_dev, stat.st_ino)
        if len(header) < HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
            return f"database file {path} is not a SQLite database (overwritten or truncated)", identity
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The page count is valid when its "valid-for" number matches the change counter.
        if header[92:96] == header[24:28] and stat.st_size < pages * page_size:
            return (
                f"database file {path} is truncated ({stat.st_size} bytes; its header says"
                f" {pages * page_size})",
                identity,
            )
        return None, identity

    def _descriptor(self) -> int:
        stat = os.stat(self.path)
        identity = (stat.st_dev, stat.st_ino)
        with self._lock:
            fd = self._descriptors.get(identity)
            if fd is None:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                opened = os.fstat(fd)
                # If the path changed meanwhile this fd is another file's: keep it under that one.
                identity = (opened.st_dev, opened.st_ino)
                if identity in self._descriptors:
                    self._spare.append(fd)
                    fd = self._descriptors[identity]
                else:
                    self._descriptors[identity] = fd
            return fd

    def close(self) -> None:
        """Only once every connection to the file is closed."""
        with self._lock:
            for fd in [*self._descriptors.values(), *self._spare]:
                os.close(fd)
            self._descriptors.clear()
            self._spare.clear()


class StorageMonitor:
    """The probe's last verdict, the checks before reads and commits, and the data version."""

    def __init__(
        self,
        db: Database,
        *,
        bot_stale_seconds: float,
        interval: float = PROBE_INTERVAL,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self.interval = interval
        self._bot_stale = dt.timedelta(seconds=bot_stale_seconds)
        self._now = now
        self._head = schema_head(db)
        self._status = StorageStatus(ok=False, reason="not checked yet")
        self._identity: str | None = None  # database_identity.id of the database we serve
        self._file: tuple[int, int] | None = None  # (device, inode) the connections have open
        self._probe_file: tuple[int, int] | None = None  # what the probe's connection has open
        self._watch = FileWatch(db.path, checkpoints=db.checkpoint_lock) if db.path is not None else None
        self._probe_engine = self._make_probe_engine()
        self._probe_lock = threading.Lock()
        self._probe_lost = False  # the probe's last connection was lost while in use
        self._status_lock = threading.Lock()
        self._version = 0
        self._version_lock = threading.Lock()
        self._version_conn: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._counted: tuple[float, int, int] | None = None  # (when, data version, plans)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        db.guard(
            before_read=self.check_readable,
            before_commit=self.check_writable,
            after_commit=self.committed_here,
        )

    # --- verdict --------------------------------------------------------------------------
    @property
    def status(self) -> StorageStatus:
        """The last verdict; probed now when there is no fresh one (no probe thread running)."""
        status = self._status
        age = time.monotonic() - status.checked_at
        if not self._threads:
            return status if age < self.interval else self.probe()
        if age > STALE_AFTER:
            return StorageStatus(ok=False, reason=f"the storage probe has not answered for {age:.0f} s")
        return status

    def check_readable(self) -> None:
        """Raise StorageUnavailable unless the last verdict is good and the file is still the same."""
        status = self.status
        if not status.ok:
            raise StorageUnavailable(f"the plan database is unavailable: {status.reason}")
        if self.db.path is not None:
            try:
                stat = os.stat(self.db.path)
            except OSError:
                raise StorageUnavailable(
                    f"the plan database is unavailable: {self.db.path} is missing"
                ) from None
            if (stat.st_dev, stat.st_ino) != self._file:
                raise StorageUnavailable(f"the plan database is unavailable: {self.db.path} was replaced")

    def check_writable(self, conn: Conn) -> None:
        """Before a commit: the verdict, the file, and that this is still the database we serve."""
        self.check_readable()
        if self._watch is None:
            return
        problem, file = self._watch.problem()
        if problem is None and file != self._file:
            problem = f"{self.db.path} was replaced"
        if problem is None and repo.database_identity(conn) != self._identity:
            problem = "the database is not the one this service started on"
        if problem is not None:
            raise StorageUnavailable(f"the plan database is unavailable: {problem}; nothing was stored")

    def plans_changed(self, delta: int) -> None:
        """This process committed `delta` more live plans: the count is right without a recount."""
        # Not the probe's lock: a probe may take a while, and this runs on the event loop.
        with self._status_lock:
            if self._counted is not None:
                when, version, plans = self._counted
                self._counted = (when, version, plans + delta)
            status = self._status
            if status.plans is not None:
                self._status = dataclasses.replace(status, plans=status.plans + delta)

    # --- probe ----------------------------------------------------------------------------
    def probe(self) -> StorageStatus:
        """Check the database now and keep the verdict."""
        with self._probe_lock:
            previous = self._status
            status = self._probe_twice()
            status = StorageStatus(
                status.ok, status.reason, status.plans, status.bot_connected, time.monotonic()
            )
            changed = status.ok != previous.ok or status.reason != previous.reason
            if changed and status.ok:
                # Pooled connections may point at a dead server or at a file we no longer serve.
                # Dropped before the verdict says the database is back: a request let through by
                # that verdict would otherwise take a dead connection and fail (a 503).
                self.db.engine.dispose()
                self._reset_version_connection()
            with self._status_lock:
                self._status = status
        if changed:
            if not status.ok:
                log.error("database unavailable: %s", status.reason)
            elif previous.reason != "not checked yet":
                log.warning("database available again")
        return status

    def _probe_twice(self) -> StorageStatus:
        """The probe's verdict. Its connection lost (an outage that is over may have broken it):
        once more on a new connection, so a database that is back is not reported down."""
        for last in (False, True):
            self._probe_lost = False
            try:
                return self._probe()
            except (SQLAlchemyError, self.db.driver_error, sqlite3.Error, OSError) as exc:
                self._probe_engine.dispose()
                if last or not self._probe_lost:
                    return StorageStatus(ok=False, reason=f"cannot read the database: {_one_line(exc)}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _probe(self) -> StorageStatus:
        if self._watch is not None:
            problem, file = self._watch.problem()
            if problem is not None:
                return StorageStatus(ok=False, reason=problem)
            if self._file is not None and file != self._file:
                # Another file at the path: look at it without touching it (no WAL, no locks,
                # no checkpoint that could write our WAL's pages into it) before serving it.
                with self._immutable_connection() as conn:
                    problem = self._not_ours(conn)
                if problem is not None:
                    return StorageStatus(ok=False, reason=problem)
                self._adopt(file)
            if file != self._probe_file:
                self._probe_engine.dispose()  # its connection has another file open
                self._probe_file = file
        with self._probe_connection() as conn:
            problem = self._not_ours(conn)
            if problem is not None:
                return StorageStatus(ok=False, reason=problem)
            if self._identity is None:
                self._identity = repo.database_identity(conn)
            repo.newest_plan_id(conn)
            bot = repo.bot_seen_since(conn, self._now() - self._bot_stale)
            plans = self._plans_count(conn)
        if self._watch is not None and self._file is None:
            self._file = self._probe_file
        return StorageStatus(ok=True, plans=plans, bot_connected=bot)

    def _not_ours(self, conn: Conn) -> str | None:
        """Why this is not the database this service serves (None when it is)."""
        try:
            revision = repo.schema_revision(conn)
        except DBAPIError as exc:
            if "alembic_version" not in str(exc.orig):
                raise
            return "not a Coach Plans database (it has no schema revision)"
        if self._head is not None and revision != self._head:
            return f"schema revision {revision}, this service needs {self._head} (`coach-plans-api migrate`)"
        identity = repo.database_identity(conn)
        if identity is None:
            return "the database has no identity row"
        if self._identity is not None and identity != self._identity:
            return (
                f"the database was replaced by another one (identity {identity},"
                f" this service started on {self._identity})"
            )
        return None

    @contextmanager
    def _immutable_connection(self) -> Iterator[Conn]:
        assert self.db.path is not None
        uri = f"{self.db.path.resolve().as_uri()}?mode=ro&immutable=1"
        raw = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            yield Conn(raw, postgres=False, error=sqlite3.Error)
        finally:
            raw.close()

    def _adopt(self, file: tuple[int, int] | None) -> None:
        """Serve the file now at the path (the same database, e.g. moved back into place)."""
        if self._file is not None:
            log.warning("database file %s changed; it is the same database: reconnecting", self.db.path)
            self.db.engine.dispose()
        self._file = file
        self._reset_version_connection()

    def _reset_version_connection(self) -> None:
        """Reopen the data-version connection on the file served now; the data may differ."""
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
            self._version_conn = None
            self._version += 1

    def _plans_count(self, conn: Conn) -> int:
        version = self.data_version()
        now = time.monotonic()
        counted = self._counted
        if counted is None or (counted[1] != version and now - counted[0] >= COUNT_INTERVAL):
            counted = (now, version, repo.count_live_plans(conn))
            self._counted = counted
        return counted[2]

    @contextmanager
    def _probe_connection(self) -> Iterator[Conn]:
        fairy = self._probe_engine.raw_connection()
        raw: Any = fairy.driver_connection
        try:
            yield Conn(raw, postgres=self.db.path is None, error=self.db.driver_error)
        except BaseException:
            self._probe_lost = bool(getattr(raw, "closed", False))  # psycopg: the server is gone
            raise
        finally:
            with suppress(self.db.driver_error):
                raw.rollback()
            fairy.close()

    def _make_probe_engine(self) -> Engine:
        path = self.db.path
        if path is not None:

            def connect() -> sqlite3.Connection:
                # No journal-mode pragma here: the file may be someone else's database.
                conn = connect_existing(path)
                conn.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS // 10}")
                return conn

            return create_engine(self.db.url, creator=connect, poolclass=StaticPool)
        return create_engine(
            self.db.url,
            poolclass=StaticPool,
            connect_args={"connect_timeout": 2, "options": "-c statement_timeout=2000"},
        )

    # --- data version ---------------------------------------------------------------------
    def data_version(self) -> int:
        """A number that changes after any commit to the database, by any process.

        With the monitor running this reads a number kept up to date by its threads: a call into
        SQLite on the event loop would hand the GIL to the database threads and cost the request
        a hundred times the call itself.
        """
        if self._threads or self.db.path is None:
            return self._version
        return self._poll_version()

    def committed_here(self) -> None:
        """This process just committed (its caches are cleared after): the new version is not news."""
        if self.db.path is not None:
            self._poll_version()

    def _poll_version(self) -> int:
        if self.db.path is None or not self._status.ok:
            return self._version
        with self._version_lock:
            try:
                if self._version_conn is None:
                    self._version_conn = connect_existing(self.db.path)
                value = int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return self._version
            if value != self._data_version:
                self._data_version = value
                self._version += 1
            return self._version

    def _bump(self) -> None:
        with self._version_lock:
            self._version += 1

    def _listen(self) -> None:
        """PostgreSQL: bump the version on every change notification."""
        conninfo = self.db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    self._bump()  # changes made while nobody listened
                    while not self._stop.is_set():
                        for notification in conn.notifies(timeout=0.25):
                            # Our own writes cleared the caches already, before they answered.
                            if notification.pid not in self.db.backend_pids:
                                self._bump()
            except psycopg.Error as exc:
                log.warning("change notifications lost (%s); retrying in 1 s", _one_line(exc))
                self._bump()
                self._stop.wait(1.0)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Probe now, then in the background; on PostgreSQL also listen for changes."""
        self.probe()
        self._stop.clear()

        def probe_loop() -> None:
            while not self._stop.wait(self.interval):
                self.probe()

        def version_loop() -> None:
            while not self._stop.wait(VERSION_POLL):
                self._poll_version()

        watch = version_loop if self.db.path is not None else self._listen
        self._threads = [
            threading.Thread(target=probe_loop, name="storage-probe", daemon=True),
            threading.Thread(target=watch, name="storage-changes", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._probe_engine.dispose()
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None

    def close(self) -> None:
        """After the database's own connections are closed (it may release their file locks)."""
        self.stop()
        if self._watch is not None:
            self._watch.close()


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return " ".join(str(exc).split())[:300]
