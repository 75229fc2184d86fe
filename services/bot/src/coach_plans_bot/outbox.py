"""The durable outbox: every accepted write is stored locally first, then delivered to the API.

Order is kept where it matters and only there: per *lane* (a coach and date, a source message,
a plan id); an entry waits for the earlier pending entries of its lanes, never for others, so
one write the API keeps failing holds back nothing but its own lane. An entry whose lanes are
unknown (`*`: an edit by id while the API could not say whose plan it is, a clear of a date)
waits for every earlier entry.

Failures: an outage (API unreachable, 502/503/504, 408, 429, 401) is retried with exponential
backoff until the API is back: it says nothing about the write. A 5xx the API answered about this
write (500 …) is retried with backoff at most `max_attempts` times, then the entry is DEAD: kept,
listed by `!outbox`, counted in the heartbeat, until an admin retries or drops it. Any other 4xx
is REJECTED at once (the poster is told why). The idempotency key (the Discord message id, plus
the kind of event for message edits/deletes) makes a repeated submit a no-op, and the API makes a
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
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coach_plans_bot.api import ApiError, ApiFailed, ApiRejected, ApiUnavailable, PlansApi
from coach_plans_bot.backoff import Backoff, Sleep

log = logging.getLogger(__name__)

EVERY_LANE = "*"

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
    updated_at REAL NOT NULL,
    lanes TEXT NOT NULL DEFAULT '*'
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
    """Where an entry is."""

    PENDING = "pending"  # waiting for (another) delivery attempt
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the API refused it for good (4xx); the poster was told why
    DEAD = "dead"  # the API kept failing on it: waits for an admin's `!outbox retry|drop`
    DROPPED = "dropped"  # an admin gave up on a dead or rejected entry


# Entries an admin may act on with `!outbox retry|drop`.
DEAD_LETTERS = (Status.DEAD, Status.REJECTED)


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
    lanes: frozenset[str] = frozenset({EVERY_LANE})


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
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "lanes" not in columns:  # a file written before lanes existed: keep its global order
            self._db.execute("ALTER TABLE outbox ADD COLUMN lanes TEXT NOT NULL DEFAULT '*'")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def add(
        self,
        *,
        key: str,
        operation: Operation,
        payload: dict[str, Any],
        channel_id: int | None,
        lanes: Iterable[str] = (EVERY_LANE,),
    ) -> OutboxEntry:
        """Store a write; a key seen before returns the existing entry unchanged."""
        now = self._clock()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (key, operation, payload, channel_id, created_at,"
                " updated_at, lanes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, operation.value, json.dumps(payload), channel_id, now, now, " ".join(sorted(lanes))),
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
        return self.with_status(Status.PENDING)

    def with_status(self, *statuses: Status) -> list[OutboxEntry]:
        """Entries in any of the given states, oldest first."""
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM outbox WHERE status IN ({marks}) ORDER BY id",  # noqa: S608 - only marks
                [status.value for status in statuses],
            ).fetchall()
        return [self._entry(row) for row in rows]

    def counts(self) -> dict[Status, int]:
        """How many entries are in each state."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetchall()
        found = {Status(row["status"]): int(row["n"]) for row in rows}
        return {status: found.get(status, 0) for status in Status}

    def mark_dead(self, entry_id: int, *, error: str, status: int) -> None:
        """Stop retrying: the API kept failing on this write."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, error_status = ?,"
                " updated_at = ? WHERE id = ?",
                (Status.DEAD.value, error, status, self._clock(), entry_id),
            )

    def requeue(self, entry_id: int) -> bool:
        """A dead or rejected entry is pending again, with a fresh count; False if not dead."""
        return self._settle_dead_letter(
            entry_id, "status = 'pending', attempts = 0, next_attempt_at = 0, error_status = NULL"
        )

    def drop(self, entry_id: int) -> bool:
        """Give up on a dead or rejected entry; False if not dead."""
        return self._settle_dead_letter(entry_id, "status = 'dropped'")

    def _settle_dead_letter(self, entry_id: int, assignments: str) -> bool:
        marks = ", ".join("?" for _ in DEAD_LETTERS)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE outbox SET {assignments}, updated_at = ? WHERE id = ? AND status IN ({marks})",  # noqa: S608
                (self._clock(), entry_id, *(status.value for status in DEAD_LETTERS)),
            )
        return cursor.rowcount == 1

    def mark_delivered(self, entry_id: int, result: dict[str, Any]) -> None:
        """Record a successful delivery."""
        self._update(entry_id, status=Status.DELIVERED.value, result=json.dumps(result))

    def mark_rejected(self, entry_id: int, *, error: str, status: int) -> None:
        """Record that the API refused the write for good."""
        self._update(entry_id, status=Status.REJECTED.value, last_error=error, error_status=status)

    def record_failure(
        self, entry_id: int, *, error: str, next_attempt_at: float, status: int | None = None
    ) -> None:
        """Count a failed attempt and schedule the next one (`status`: the 5xx, None for an outage)."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, error_status = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (error, status, next_attempt_at, self._clock(), entry_id),
            )

    def prune(self, *, older_than_seconds: float) -> int:
        """Forget settled entries older than the given age; return how many."""
        cutoff = self._clock() - older_than_seconds
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE status IN (?, ?, ?) AND updated_at < ?",
                (Status.DELIVERED.value, Status.REJECTED.value, Status.DROPPED.value, cutoff),
            )
        return cursor.rowcount

    # --- where catch-up resumes: the last processed Discord message per channel ------
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
            lanes=frozenset(row["lanes"].split()),
        )


DEFAULT_BACKOFF = Backoff(base=1.0, factor=2.0, maximum=300.0)
DEFAULT_MAX_ATTEMPTS = 5

Notify = Callable[[OutboxEntry], Awaitable[None]]


class _Lanes:
    """The lanes held by earlier entries still pending in one delivery pass."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def waits(self, entry: OutboxEntry) -> bool:
        """True when an earlier pending entry shares a lane with this one."""
        if EVERY_LANE in self._held or (EVERY_LANE in entry.lanes and self._held):
            return True
        return not self._held.isdisjoint(entry.lanes)

    def hold(self, entry: OutboxEntry) -> None:
        self._held |= entry.lanes


class Outbox:
    """Delivers stored writes to the API: in order per lane, with backoff, exactly once."""

    def __init__(
        self,
        store: OutboxStore,
        api: PlansApi,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
        on_settled: Notify | None = None,
    ) -> None:
        self.store = store
        self._api = api
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._lock = asyncio.Lock()
        self._waiting: set[int] = set()
        self.on_settled = on_settled
        # When the last pass left an entry waiting for its backoff: the soonest retry time.
        self.wake_at: float | None = None

    async def submit(
        self,
        *,
        key: str,
        operation: Operation,
        payload: dict[str, Any],
        channel_id: int | None = None,
        lanes: Iterable[str] = (EVERY_LANE,),
    ) -> OutboxEntry:
        """Store a write first, then try to deliver it (and whatever else is due).

        Returns the entry as it stands: delivered, rejected, or still pending (queued).
        """
        entry = await asyncio.to_thread(
            self.store.add,
            key=key,
            operation=operation,
            payload=payload,
            channel_id=channel_id,
            lanes=lanes,
        )
        if entry.status is not Status.PENDING:
            log.info("outbox: %s already %s, not sent again", key, entry.status.value)
            return entry
        self._waiting.add(entry.id)
        try:
            await self.flush(now_for={entry.id})
        finally:
            self._waiting.discard(entry.id)
        return await asyncio.to_thread(self.store.get, entry.id)

    async def pending_count(self) -> int:
        """How many writes wait for the API."""
        return len(await asyncio.to_thread(self.store.pending))

    async def flush(self, *, force: bool = False, now_for: Collection[int] = ()) -> int:
        """Deliver the pending entries that are due, in order per lane; return how many settled.

        An entry is due when its backoff has expired, or with `force` (start-up), or when it is in
        `now_for` (a write just submitted, never tried). An outage ends the pass: the other
        entries would meet the same outage.
        """
        settled = 0
        async with self._lock:
            lanes = _Lanes()
            self.wake_at = None
            for entry in await asyncio.to_thread(self.store.pending):
                if lanes.waits(entry):  # due again once the earlier entry of its lane settles
                    lanes.hold(entry)
                    continue
                if not (force or entry.id in now_for or self._due(entry, retry_outages=bool(now_for))):
                    lanes.hold(entry)
                    self._wake(entry.next_attempt_at)
                    continue
                try:
                    result = await self._deliver(entry)
                except ApiUnavailable as exc:
                    await self._retry_later(entry, exc, bounded=False)
                    break
                except ApiFailed as exc:
                    if entry.attempts + 1 >= self._max_attempts:
                        await self._give_up(entry, exc)
                    else:
                        await self._retry_later(entry, exc, bounded=True)
                        lanes.hold(entry)
                        continue
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

    async def _retry_later(self, entry: OutboxEntry, exc: ApiError, *, bounded: bool) -> None:
        attempt = entry.attempts + 1
        delay = self._backoff.delay(attempt)
        log.warning(
            "outbox: %s #%d not delivered (attempt %d%s), retry in %.2fs: %s",
            entry.operation.value,
            entry.id,
            attempt,
            f"/{self._max_attempts}" if bounded else "",
            delay,
            exc,
        )
        next_attempt_at = self._clock() + delay
        await asyncio.to_thread(
            self.store.record_failure,
            entry.id,
            error=str(exc),
            next_attempt_at=next_attempt_at,
            status=exc.status if isinstance(exc, ApiFailed) else None,
        )
        self._wake(next_attempt_at)

    def _due(self, entry: OutboxEntry, *, retry_outages: bool) -> bool:
        """Its backoff expired; or it failed on an outage and a new write is worth a try now.

        A new write retries the outage backlog first (it would wait behind it in its lane, and
        answering "queued" while the API is back would be wrong). An entry the API answered 5xx
        for keeps its backoff: the attempts of a failing write stay spaced out.
        """
        now = self._clock()
        # A retry time further off than the longest backoff means the wall clock was set back
        # since (the times are stored, so they are wall-clock times): due now, not after the step.
        if entry.next_attempt_at <= now or entry.next_attempt_at - now > self._backoff.maximum:
            return True
        return retry_outages and entry.error_status is None

    def _wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    async def _give_up(self, entry: OutboxEntry, exc: ApiFailed) -> None:
        log.error(
            "outbox: %s #%d is DEAD after %d attempts (last: %s); `!outbox retry %d` or `!outbox drop %d`",
            entry.operation.value,
            entry.id,
            entry.attempts + 1,
            exc,
            entry.id,
            entry.id,
        )
        await asyncio.to_thread(self.store.mark_dead, entry.id, error=str(exc), status=exc.status)

    async def retry(self, entry_id: int) -> OutboxEntry | None:
        """An admin retries a dead or rejected entry now; None when there is no such entry."""
        if not await asyncio.to_thread(self.store.requeue, entry_id):
            return None
        log.info("outbox: #%d requeued by an admin", entry_id)
        self._waiting.add(entry_id)
        try:
            await self.flush(now_for={entry_id})
        finally:
            self._waiting.discard(entry_id)
        return await asyncio.to_thread(self.store.get, entry_id)

    async def drop(self, entry_id: int) -> bool:
        """An admin gives up on a dead or rejected entry."""
        dropped = await asyncio.to_thread(self.store.drop, entry_id)
        if dropped:
            log.warning("outbox: #%d dropped by an admin", entry_id)
        return dropped

    async def run(self) -> None:
        """Deliver in the background until cancelled; at start (a restart) try everything now."""
        force = True
        while True:
            await self.flush(force=force)
            force = False
            delay = self._poll_seconds
            if self.wake_at is not None:
                delay = min(delay, max(0.0, self.wake_at - self._clock()))
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
        fields = ("plan_text", "charts", "actor", "message_id", "message_edited_at")
        body = {key: payload["body"][key] for key in fields if key in payload["body"]}
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
