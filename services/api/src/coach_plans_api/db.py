"""Engine, connections and group commit.

SQLite is tuned for many readers and one writer: the writes of concurrent requests are queued to
one writer thread that commits them together in one transaction (group commit), so eight writers
pay for one `fsync` rather than eight, with `synchronous=FULL` kept. PostgreSQL commits each write
in its own transaction (the server groups commits itself).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import anyio
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from coach_plans_api.repository import Conn, read_json

# How long a statement waits for a lock another connection holds (SQLite's busy timeout,
# PostgreSQL's lock_timeout) before it fails as "storage unavailable" instead of hanging.
LOCK_WAIT_MS = 30_000
MAX_BATCH = 64
CHECKPOINT_SECONDS = 0.5
T = TypeVar("T")


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN itself, so writers can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN: two writers queue on busy_timeout instead of
    # failing with "database is locked" when a read lock would have to be upgraded.
    mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _no_autocheckpoint(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory databases)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def connect_existing(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file at `path` that never creates it when it is missing."""
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False, isolation_level=None
    )


def make_engine(url: URL, *, must_exist: bool = False) -> Engine:
    """An engine for `url`; with `must_exist`, a missing SQLite file is an error, not a new database.

    No pre-ping: it costs a round trip per checkout. A connection that went bad fails its request
    (503) and the pool is emptied (see `Database.raw`); the storage monitor also empties it when
    the database is back.
    """
    path = sqlite_path(url)
    if url.get_backend_name() == "sqlite":
        if path is not None and not must_exist:
            path.parent.mkdir(parents=True, exist_ok=True)
        creator = (lambda: connect_existing(path)) if must_exist and path is not None else None
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            **({"creator": creator} if creator else {}),
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 5, "options": f"-c lock_timeout={LOCK_WAIT_MS}"},
    )


class GroupCommit:
    """One writer thread: runs each queued write in a savepoint, commits the batch once.

    A write that raises rolls back its own savepoint only; its caller gets the exception. Callers
    get their results only after the commit that made them durable.
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._jobs: queue.SimpleQueue[tuple[Callable[[Conn], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._checkpointed = time.monotonic()

    def _checkpoint(self, conn: Conn) -> None:
        """Copy the WAL into the database file while no write waits (PASSIVE: blocks nobody)."""
        with self._db.checkpoint_lock, suppress(DBAPIError), conn.errors("PRAGMA wal_checkpoint"):
            conn.raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._checkpointed = time.monotonic()

    def submit(self, job: Callable[[Conn], T]) -> Future[T]:
        """Queue `job` for the next batch; its future resolves once the batch is committed."""
        self._ensure_started()
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(item)
            # A caller that gave up before its write ran (its task cancelled) gets nothing written;
            # a running future cannot be cancelled any more, so every result below can be set.
            batch = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Callable[[Conn], Any], Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._db.raw() as conn:
                raw = conn.raw
                try:
                    with conn.errors("BEGIN IMMEDIATE"):
                        raw.execute("BEGIN IMMEDIATE")
                    for job, _future in batch:
                        with conn.errors("SAVEPOINT"):
                            raw.execute("SAVEPOINT write")
                        try:
                            result = job(conn)
                        # Not swallowed: the job's own caller gets it from its future.
                        except BaseException as exc:  # noqa: BLE001
                            with conn.errors("ROLLBACK TO"):
                                raw.execute("ROLLBACK TO write")
                                raw.execute("RELEASE write")
                            outcomes.append((False, exc))
                        else:
                            with conn.errors("RELEASE"):
                                raw.execute("RELEASE write")
                            outcomes.append((True, result))
                    self._db.before_commit(conn)
                    with conn.errors("COMMIT"):
                        raw.execute("COMMIT")
                    self._db.after_commit()
                    since = time.monotonic() - self._checkpointed
                    # Between batches when it can, but never letting the WAL grow for long.
                    if since > CHECKPOINT_SECONDS and (self._jobs.empty() or since > 10 * CHECKPOINT_SECONDS):
                        self._checkpoint(conn)
                except BaseException:
                    if raw.in_transaction:
                        with suppress(self._db.driver_error):
                            raw.execute("ROLLBACK")
                    raise
        # The writer thread must not die; every caller in the batch gets the failure instead.
        except BaseException as exc:  # noqa: BLE001
            for _job, future in batch:
                future.set_exception(exc)
            return
        for (ok, value), (_job, future) in zip(outcomes, batch, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class Database:
    """Owns the engine: driver connections for reads and writes (grouped on SQLite)."""

    def __init__(self, url: URL, *, must_exist: bool = True) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.engine = make_engine(url, must_exist=must_exist)
        self.driver_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        # PostgreSQL server processes of our own pool: their change notifications are not news.
        self.backend_pids: set[int] = set()
        if not self.is_sqlite:
            event.listen(self.engine, "connect", self._connected)
            event.listen(self.engine, "close", self._closed)
        self.before_read: Callable[[], None] = lambda: None
        self.before_commit: Callable[[Conn], None] = lambda _conn: None
        self.after_commit: Callable[[], None] = lambda: None
        self.checkpoint_lock = threading.Lock()
        self._group = GroupCommit(self) if self.is_sqlite else None
        if self.is_sqlite:
            # Checkpoints (copying the WAL into the database file, with an fsync) would otherwise
            # run inside whichever commit crossed the WAL's size limit and stall that batch; the
            # writer runs them between batches instead (GroupCommit).
            event.listen(self.engine, "connect", _no_autocheckpoint)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def _connected(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        self.backend_pids.add(dbapi_connection.info.backend_pid)
        # The JSON columns (charts, tickers, levels) parsed as SQLite's are: pydantic-core's parser
        # takes a quarter of the time of `json.loads`, psycopg's default.
        set_json_loads(read_json, dbapi_connection)

    def _closed(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        self.backend_pids.discard(dbapi_connection.info.backend_pid)

    def guard(
        self,
        *,
        before_read: Callable[[], None],
        before_commit: Callable[[Conn], None],
        after_commit: Callable[[], None],
    ) -> None:
        """Checks run before every read and before every commit, and news after (the storage monitor's)."""
        self.before_read = before_read
        self.before_commit = before_commit
        self.after_commit = after_commit

    @contextmanager
    def raw(self) -> Iterator[Conn]:
        """A pooled driver connection; a lost connection is dropped from the pool."""
        try:
            fairy = self.engine.raw_connection()
        except self.driver_error as exc:
            raise DBAPIError.instance(None, None, exc, self.driver_error) from exc
        conn = Conn(fairy.driver_connection, postgres=not self.is_sqlite, error=self.driver_error)
        try:
            yield conn
        except DBAPIError as exc:
            if not self.is_sqlite and getattr(fairy.driver_connection, "closed", False):
                fairy.invalidate(exc.orig)
                # The server went away: the other pooled connections are most likely broken too.
                # New ones for the next requests, rather than one failed request per connection.
                self.engine.dispose()
            raise
        finally:
            fairy.close()

    @contextmanager
    def reading(self) -> Iterator[Conn]:
        """A connection for the few statements of a read.

        SQLite: one read transaction, so one snapshot. PostgreSQL: autocommit. Under its READ
        COMMITTED each statement takes its own snapshot inside a transaction too, so the
        transaction only cost two round trips (BEGIN before the first statement, ROLLBACK when the
        pool takes the connection back) for every read.
        """
        self.before_read()
        with self.raw() as conn:
            if self.is_sqlite:
                with conn.errors("BEGIN"):
                    conn.raw.execute("BEGIN")
                try:
                    yield conn
                finally:
                    with suppress(self.driver_error):
                        conn.raw.execute("ROLLBACK")
            else:
                conn.raw.autocommit = True
                try:
                    yield conn
                finally:
                    # Writes on this pooled connection commit their own transactions.
                    with suppress(self.driver_error):
                        conn.raw.autocommit = False

    def run_write(self, job: Callable[[Conn], T]) -> T:
        """Run `job` in a write transaction and commit it; grouped with concurrent writes on SQLite."""
        self.before_read()  # fail fast; the commit checks again
        if self._group is not None:
            return self._group.submit(job).result()
        return self._write_now(job)

    async def run_write_async(self, job: Callable[[Conn], T]) -> T:
        """`run_write` awaited on the event loop (PostgreSQL: in a worker thread).

        Nothing here may release the GIL (no file or database call): the writer thread would take
        it and the event loop wait for it. The commit checks the storage in the writer thread.
        """
        if self._group is not None:
            return await asyncio.wrap_future(self._group.submit(job))
        return await anyio.to_thread.run_sync(self.run_write, job)

    def _write_now(self, job: Callable[[Conn], T]) -> T:
        with self.raw() as conn:
            try:
                result = job(conn)
                self.before_commit(conn)
                with conn.errors("COMMIT"):
                    conn.raw.commit()
            except BaseException:
                with suppress(self.driver_error):
                    conn.raw.rollback()
                raise
            return result

    def dispose(self) -> None:
        if self._group is not None:
            self._group.stop()
        self.engine.dispose()
