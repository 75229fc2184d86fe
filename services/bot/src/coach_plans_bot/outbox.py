"""The durable outbox of SPEC 4.3: every accepted write is stored locally, then delivered.

Entries are delivered in the order they were accepted, with exponential backoff while the API
is unavailable, and survive restarts. The idempotency key (the Discord message id, plus the kind
of event for message edits/deletes) makes a repeated submit a no-op, and the API makes a
re-sent write (after a crash between delivery and bookkeeping) a no-op as well.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coach_plans_bot.api import ApiError, ApiRejected, ApiUnavailable, PlansApi
from coach_plans_bot.backoff import Backoff, Sleep

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    channel_id INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    error_status INTEGER,
    result TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, id);
CREATE TABLE IF NOT EXISTS channel_cursor (
    channel_id INTEGER PRIMARY KEY,
    last_message_id INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""


class Operation(enum.StrEnum):
    """What an outbox entry asks the API to do."""

    PUT_PLAN = "put_plan"
    PATCH_PLAN = "patch_plan"
    DELETE_PLAN = "delete_plan"
    CLEAR_DATE = "clear_date"
    EDIT_BY_MESSAGE = "edit_by_message"
    DELETE_BY_MESSAGE = "delete_by_message"


class Status(enum.StrEnum):
    """Where an entry is: waiting, delivered, or refused by the API for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OutboxEntry:
    """One stored write."""

    id: int
    key: str
    operation: Operation
    payload: dict[str, Any]
    channel_id: int | None
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    error_status: int | None
    result: dict[str, Any] | None


class OutboxStore:
    """The SQLite file behind the outbox. Blocking: call it through `asyncio.to_thread`."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def add(
        self, *, key: str, operation: Operation, payload: dict[str, Any], channel_id: int | None
    ) -> OutboxEntry:
        """Store a write; a key seen before returns the existing entry unchanged."""
        now = self._clock()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (key, operation, payload, channel_id, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key, operation.value, json.dumps(payload), channel_id, now, now),
            )
            row = self._db.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
        return self._entry(row)

    def get(self, entry_id: int) -> OutboxEntry:
        """One entry by id."""
        with self._lock:
            row = self._db.execute("SELECT * FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(entry_id)
        return self._entry(row)

    def pending(self) -> list[OutboxEntry]:
        """Undelivered entries, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE status = ? ORDER BY id", (Status.PENDING.value,)
            ).fetchall()
        return [self._entry(row) for row in rows]

    def mark_delivered(self, entry_id: int, result: dict[str, Any]) -> None:
        """Record a successful delivery."""
        self._update(entry_id, status=Status.DELIVERED.value, result=json.dumps(result))

    def mark_rejected(self, entry_id: int, *, error: str, status: int) -> None:
        """Record that the API refused the write for good."""
        self._update(entry_id, status=Status.REJECTED.value, last_error=error, error_status=status)

    def record_failure(self, entry_id: int, *, error: str, next_attempt_at: float) -> None:
        """Count a failed attempt and schedule the next one."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
                " updated_at = ? WHERE id = ?",
                (error, next_attempt_at, self._clock(), entry_id),
            )

    def prune(self, *, older_than_seconds: float) -> int:
        """Forget settled entries older than the given age; return how many."""
        cutoff = self._clock() - older_than_seconds
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE status != ? AND updated_at < ?",
                (Status.PENDING.value, cutoff),
            )
        return cursor.rowcount

    # --- where catch-up resumes (SPEC 8): the last processed Discord message per channel ------
    def cursors(self) -> dict[int, int]:
        """The last processed message id of every channel seen so far."""
        with self._lock:
            rows = self._db.execute("SELECT channel_id, last_message_id FROM channel_cursor").fetchall()
        return {row["channel_id"]: row["last_message_id"] for row in rows}

    def advance_cursor(self, channel_id: int, message_id: int) -> None:
        """Record that a channel's messages up to `message_id` are processed; never moves back."""
        with self._lock:
            self._db.execute(
                "INSERT INTO channel_cursor (channel_id, last_message_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (channel_id) DO UPDATE SET"
                " last_message_id = MAX(last_message_id, excluded.last_message_id),"
                " updated_at = excluded.updated_at",
                (channel_id, message_id, self._clock()),
            )

    def _update(self, entry_id: int, **values: Any) -> None:
        values["updated_at"] = self._clock()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            self._db.execute(
                f"UPDATE outbox SET {columns} WHERE id = ?",  # noqa: S608 - fixed column names
                (*values.values(), entry_id),
            )

    @staticmethod
    def _entry(row: sqlite3.Row) -> OutboxEntry:
        return OutboxEntry(
            id=row["id"],
            key=row["key"],
            operation=Operation(row["operation"]),
            payload=json.loads(row["payload"]),
            channel_id=row["channel_id"],
            status=Status(row["status"]),
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            error_status=row["error_status"],
            result=json.loads(row["result"]) if row["result"] else None,
        )


DEFAULT_BACKOFF = Backoff(base=1.0, factor=2.0, maximum=300.0)

Notify = Callable[[OutboxEntry], Awaitable[None]]


class Outbox:
    """Delivers stored writes to the API: in order, with backoff, exactly once."""

    def __init__(
        self,
        store: OutboxStore,
        api: PlansApi,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
        on_settled: Notify | None = None,
    ) -> None:
        self.store = store
        self._api = api
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._lock = asyncio.Lock()
        self._waiting: set[int] = set()
        self.on_settled = on_settled

    async def submit(
        self,
        *,
        key: str,
        operation: Operation,
        payload: dict[str, Any],
        channel_id: int | None = None,
    ) -> OutboxEntry:
        """Store a write first, then try to deliver everything pending, this write included.

        Returns the entry as it stands: delivered, rejected, or still pending (queued).
        """
        entry = await asyncio.to_thread(
            self.store.add, key=key, operation=operation, payload=payload, channel_id=channel_id
        )
        if entry.status is not Status.PENDING:
            log.info("outbox: %s already %s, not sent again", key, entry.status.value)
            return entry
        self._waiting.add(entry.id)
        try:
            await self.flush(force=True)
        finally:
            self._waiting.discard(entry.id)
        return await asyncio.to_thread(self.store.get, entry.id)

    async def pending_count(self) -> int:
        """How many writes wait for the API."""
        return len(await asyncio.to_thread(self.store.pending))

    async def flush(self, *, force: bool = False) -> int:
        """Deliver pending entries in order until the API is unavailable; return how many settled.

        Without `force`, stop at the first entry whose backoff has not expired.
        """
        settled = 0
        async with self._lock:
            for entry in await asyncio.to_thread(self.store.pending):
                if not force and entry.next_attempt_at > self._clock():
                    break
                try:
                    result = await self._deliver(entry)
                except ApiUnavailable as exc:
                    delay = self._backoff.delay(entry.attempts + 1)
                    log.warning(
                        "outbox: %s #%d not delivered (attempt %d), retry in %.1fs: %s",
                        entry.operation.value,
                        entry.id,
                        entry.attempts + 1,
                        delay,
                        exc,
                    )
                    await asyncio.to_thread(
                        self.store.record_failure,
                        entry.id,
                        error=str(exc),
                        next_attempt_at=self._clock() + delay,
                    )
                    break
                except ApiRejected as exc:
                    log.warning("outbox: %s #%d rejected: %s", entry.operation.value, entry.id, exc)
                    await asyncio.to_thread(
                        self.store.mark_rejected, entry.id, error=exc.detail, status=exc.status
                    )
                except ApiError as exc:
                    # The API answered outside its contract: retrying the same write would loop.
                    log.error("outbox: %s #%d failed: %s", entry.operation.value, entry.id, exc)
                    await asyncio.to_thread(self.store.mark_rejected, entry.id, error=str(exc), status=0)
                else:
                    log.info("outbox: %s #%d delivered", entry.operation.value, entry.id)
                    await asyncio.to_thread(self.store.mark_delivered, entry.id, result)
                settled += 1
                if entry.id not in self._waiting and self.on_settled is not None:
                    await self.on_settled(await asyncio.to_thread(self.store.get, entry.id))
        return settled

    async def run(self) -> None:
        """Deliver in the background until cancelled; at start (a restart) try everything now."""
        force = True
        while True:
            await self.flush(force=force)
            force = False
            pending = await asyncio.to_thread(self.store.pending)
            delay = self._poll_seconds
            if pending:
                delay = min(delay, max(0.0, pending[0].next_attempt_at - self._clock()))
            await self._sleep(delay)

    async def _deliver(self, entry: OutboxEntry) -> dict[str, Any]:
        payload = entry.payload
        match entry.operation:
            case Operation.PUT_PLAN:
                return await self._api.put_plan(
                    coach=payload["coach"], date=payload["date"], body=payload["body"]
                )
            case Operation.PATCH_PLAN:
                return await self._api.patch_plan(payload["plan_id"], payload["body"])
            case Operation.DELETE_PLAN:
                return await self._api.delete_plan(payload["plan_id"], payload["body"])
            case Operation.CLEAR_DATE:
                return await self._api.clear_date(payload["body"])
            case Operation.EDIT_BY_MESSAGE:
                return await self._edit_by_message(payload)
            case Operation.DELETE_BY_MESSAGE:
                return await self._delete_by_message(payload)
        raise AssertionError(f"unknown operation {entry.operation}")  # pragma: no cover

    async def _edit_by_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        plans = await self._api.list_plans(message_id=int(payload["source_message_id"]), limit=1)
        if not plans:
            # The original post never became a plan (or was deleted): store the edited text.
            return await self._api.put_plan(
                coach=payload["coach"], date=payload["date"], body=payload["body"]
            )
        body = {key: payload["body"][key] for key in ("plan_text", "charts", "actor", "message_id")}
        return await self._api.patch_plan(plans[0].id, body)

    async def _delete_by_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        plans = await self._api.list_plans(message_id=int(payload["source_message_id"]), limit=1)
        if not plans:
            return {"deleted": False}
        plan = plans[0]
        body = dict(payload["body"])
        body.setdefault(
            "actor",
            {
                "user_id": plan.author_id,
                "display_name": plan.author or plan.author_id,
                "is_admin": False,
            },
        )
        return await self._api.delete_plan(plan.id, body)
