"""The rules: coach and date parsing, validation, ownership, idempotency and revisions.

Reads map rows straight to the JSON the routes send (`*_json`), with no ORM objects and no
validation of data we wrote ourselves; the model-returning methods are for the dashboard and the
CLI. Writes run as one job each inside a write transaction (grouped with concurrent writes on
SQLite, see `db.GroupCommit`).

A write carries the Discord message id it came from. A write whose message id and payload equal
those of any revision written for that message (of that plan, or of that coach and day for a PUT)
is a retry, however late: it changes nothing and answers what that write answered, even when newer
writes came since, from other messages or from edits of the same one. The same message with
another payload is the message edited in Discord: a new write. An edit carries the message's edit
time (`message_edited_at`), so an edit back to an earlier text is a new write too, not a retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic_core import to_json
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coach_plans_api import repository as repo
from coach_plans_api.charts import not_allowed
from coach_plans_api.config import Settings
from coach_plans_api.db import Database
from coach_plans_api.errors import (
    Forbidden,
    InvalidCursor,
    InvalidDate,
    NotFound,
    StorageUnavailable,
    UnknownCoach,
    first_line,
    translate_database_error,
)
from coach_plans_api.levels import extract_levels, levels_to_json
from coach_plans_api.models import ArchiveStatus, RevisionAction
from coach_plans_api.repository import ChartRow, Conn, EventRow, PlanRow, RevisionRow
from coach_plans_api.schemas import (
    MAX_ID,
    Actor,
    ChartIn,
    ChartOut,
    ClearIn,
    ClearOut,
    CoachOut,
    HeartbeatIn,
    LegacyPlanOut,
    PlanDelete,
    PlanEvent,
    PlanOut,
    PlanPage,
    PlanPatch,
    PlanPut,
    RevisionOut,
    SearchPage,
    TickerLevelsOut,
)
from coach_plans_api.storage import StorageMonitor, StorageStatus
from coach_plans_api.tickers import extract_tickers

# Plans up to this long have their levels read on the event loop (about 1-3 ms at most).
INLINE_LEVELS_CHARS = 1_000
log = logging.getLogger("coach_plans_api.plans")
EVENT_TYPES: dict[RevisionAction, Literal["plan.created", "plan.updated", "plan.deleted"]] = {
    RevisionAction.create: "plan.created",
    RevisionAction.edit: "plan.updated",
    RevisionAction.delete: "plan.deleted",
}
_COACH = re.compile(r"^(?:coach[_ -]?)?([a-z0-9]+)$")
Json = dict[str, Any]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event_of(revision: EventRow) -> PlanEvent:
    """The event announcing a revision, live or replayed (its id orders events and resumes
    subscriptions); built from data we wrote ourselves, so not validated again."""
    return PlanEvent.model_construct(
        type=EVENT_TYPES[revision.action],
        id=revision.revision_id,
        plan_id=revision.plan_id,
        coach=revision.coach,
        date=revision.date,
        at=revision.at,
    )


class DayPlan(NamedTuple):
    """A coach's plan of a day as the dashboard shows it."""

    plan: LegacyPlanOut
    revisions: list[RevisionOut]
    levels: list[TickerLevelsOut]


@dataclass(frozen=True, slots=True)
class WriteResult:
    plan: PlanOut
    created: bool


@dataclass(frozen=True, slots=True)
class _Written:
    """What a write job hands back from the writer: the answer and what to announce."""

    plan: Json
    created: bool
    events: list[PlanEvent]


class PlanService:
    """Reads and writes plans; every method opens its own transaction."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        on_change: Callable[[list[PlanEvent]], None] = lambda _events: None,
        on_pending_charts: Callable[[], None] = lambda: None,
        on_unknown_outcome: Callable[[], None] = lambda: None,
        now: Callable[[], dt.datetime] = utc_now,
        storage: StorageMonitor | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.storage = storage or StorageMonitor(db, bot_stale_seconds=settings.bot_stale_seconds, now=now)
        self._on_change = on_change
        self._on_pending_charts = on_pending_charts
        self._on_unknown_outcome = on_unknown_outcome
        self._now = now
        self._base_url = settings.chart_base_url

    # --- parsing --------------------------------------------------------------------------
    def coach(self, raw: str) -> str:
        """`coach_d`, `d`, `D`, `Coach D` -> `coach_d`; an unknown coach is a 400."""
        match = _COACH.match(raw.strip().lower())
        if not match or match.group(1) not in self.settings.roster:
            known = ", ".join(f"coach_{k}" for k in self.settings.roster)
            raise UnknownCoach(f"unknown coach {raw!r}; known coaches: {known}")
        return f"coach_{match.group(1)}"

    def today(self) -> dt.date:
        return self._now().astimezone(self.settings.zone).date()

    def day(self, raw: str | None) -> dt.date:
        """An ISO date, or today in the plan time zone when absent (a read's `?date=`)."""
        return self.today() if raw is None or raw == "" else self.given_day(raw)

    @staticmethod
    def given_day(raw: str) -> dt.date:
        """An ISO date that must be there: a write never takes "" for today (a retry of it after
        midnight would mean another day)."""
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise InvalidDate(f"invalid date {raw!r}; expected YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidDate(f"invalid date {raw!r}: no such day") from None

    def levels(self, text: str) -> list[Json]:
        """The levels read from a plan's text (docs/levels.md): pure CPU, so writes call it before
        they queue for the writer, never inside the transaction."""
        return levels_to_json(extract_levels(text, self.settings.watchlist))

    async def _levels_off_the_loop(self, text: str) -> list[Json]:
        """`levels` for the routes. A typical plan (a few hundred characters) takes a fraction of a
        millisecond and is read right here; a long one takes up to tens (10,000 characters: 25-40 ms),
        which would hold up every other request on the event loop, so it is read on a worker thread."""
        if len(text) <= INLINE_LEVELS_CHARS:
            return self.levels(text)
        return await asyncio.to_thread(self.levels, text)

    def coaches(self) -> list[CoachOut]:
        return [CoachOut(coach=f"coach_{k}", key=k, name=n) for k, n in self.settings.roster.items()]

    # --- reads: JSON for the routes -------------------------------------------------------
    def legacy_plan_json(self, *, coach: str, date: dt.date) -> bytes:
        return to_json(self._legacy_plan(coach=coach, date=date))

    def legacy_all_json(self, date: dt.date) -> bytes:
        return to_json(self._legacy_all(date))

    def plan_json(self, plan_id: int) -> bytes:
        return to_json(self._plan(plan_id))

    def revisions_json(self, plan_id: int) -> bytes:
        return to_json({"plan_id": plan_id, "revisions": self._revisions(plan_id)})

    def find_json(self, **filters: Any) -> bytes:
        return to_json(self._find(**filters))

    def search_json(self, **filters: Any) -> bytes:
        return to_json(self._search(**filters))

    def history_json(self, *, coach: str, days: int) -> bytes:
        return to_json({"coach": coach, "days": days, "plans": self._history(coach=coach, days=days)})

    # --- reads: models for the dashboard and the CLI --------------------------------------
    def find(self, **filters: Any) -> PlanPage:
        """Live plans matching every filter given, newest first, a page at a time."""
        return PlanPage.model_validate(self._find(**filters))

    def search(self, **filters: Any) -> SearchPage:
        """Live plans whose text matches the query, best first, a page at a time."""
        return SearchPage.model_validate(self._search(**filters))

    def plans_with_history(self, date: dt.date) -> dict[str, DayPlan]:
        """Each coach's live plan of the day with its revisions and levels, read on one connection."""
        with self._read() as conn:
            shown = repo.shown_live_plans_on(conn, date)
            revisions = repo.revisions_of_plans(conn, [s.plan.id for s in shown])
        return {
            s.plan.coach_name: DayPlan(
                LegacyPlanOut.model_validate(self._legacy_dict(s)),
                [RevisionOut.model_validate(revision_dict(r)) for r in revisions[s.plan.id]],
                [TickerLevelsOut.model_validate(t) for t in self._levels_of(s.plan._asdict())],
            )
            for s in shown
        }

    def events_after(self, revision_id: int, *, limit: int = 500) -> list[PlanEvent]:
        """The changes after revision `revision_id`, oldest first: what a subscriber missed."""
        with self._read() as conn:
            return [event_of(revision) for revision in repo.revisions_after(conn, revision_id, limit=limit)]

    def newest_event_id(self) -> int | None:
        with self._read() as conn:
            return repo.newest_revision_id(conn)

    def health(self) -> StorageStatus:
        """The storage probe's last verdict (no database round trip on the request path)."""
        return self.storage.status

    def plans_count(self) -> int:
        status = self.storage.status
        if not status.ok:
            raise StorageUnavailable(f"the plan database is unavailable: {status.reason}")
        return status.plans or 0

    # --- reads: the rows ------------------------------------------------------------------
    def _legacy_plan(self, *, coach: str, date: dt.date) -> Json:
        with self._read() as conn:
            shown = repo.shown_live_plan(conn, coach=coach, date=date)
        if shown is None:
            raise NotFound(
                f"no plan for {coach} on {date}",
                extra={"plan": f"No plan available for {coach} on {date}", "charts": []},
            )
        return self._legacy_dict(shown)

    def _legacy_all(self, date: dt.date) -> Json:
        with self._read() as conn:
            shown = repo.shown_live_plans_on(conn, date)
        return {s.plan.coach_name: self._legacy_dict(s) for s in shown}

    def _plan(self, plan_id: int) -> Json:
        with self._read() as conn:
            shown = repo.shown_plan(conn, plan_id)
        if shown is None or shown.plan.deleted_at is not None:
            raise NotFound(f"no plan with id {plan_id}")
        return self._shown_dict(shown)

    def _revisions(self, plan_id: int) -> list[Json]:
        with self._read() as conn:
            if repo.plan_by_id(conn, plan_id) is None:
                raise NotFound(f"no plan with id {plan_id}")
            return [revision_dict(r) for r in repo.revisions_of(conn, plan_id)]

    def _find(
        self,
        *,
        coach: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        author: str | None = None,
        author_id: str | None = None,
        message_id: str | None = None,
        ticker: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Json:
        after = decode_cursor(cursor) if cursor else None
        with self._read() as conn:
            rows = repo.find_plans(
                conn,
                coach=coach,
                date_from=date_from,
                date_to=date_to,
                author=author,
                author_id=author_id,
                message_id=message_id,
                ticker=ticker,
                after=after,
                limit=limit + 1,
            )
        items = [self._shown_dict(shown) for shown in rows[:limit]]
        last = rows[limit - 1].plan if len(rows) > limit else None
        next_cursor = encode_cursor(last.date, last.id) if last is not None else None
        return {"items": items, "next_cursor": next_cursor}

    def _search(
        self,
        *,
        query: str,
        coach: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> Json:
        after = decode_search_cursor(cursor) if cursor else None
        with self._read() as conn:
            hits = repo.search_plans(
                conn,
                query=query,
                coach=coach,
                date_from=date_from,
                date_to=date_to,
                after=after,
                limit=limit + 1,
            )
        items = [
            {
                "plan": self._shown_dict(hit.shown),
                "snippet": hit.snippet,
                "highlights": hit.highlights,
                "score": hit.score,
            }
            for hit in hits[:limit]
        ]
        last = hits[limit - 1] if len(hits) > limit else None
        return {
            "items": items,
            "next_cursor": None if last is None else encode_search_cursor(last.score, last.plan.id),
        }

    def _history(self, *, coach: str, days: int) -> list[Json]:
        today = self.today()
        page = self._find(
            coach=coach, date_from=today - dt.timedelta(days=days - 1), date_to=today, limit=days
        )
        items: list[Json] = page["items"]
        for item in items:  # the legacy URLs keep their fields
            del item["levels"]
        return items

    def _legacy_dict(self, shown: repo.Shown) -> Json:
        plan = shown.plan
        return {
            "plan": plan.plan_text,
            "charts": [chart_url(c, self._base_url) for c in shown.charts],
            "author": plan.author,
            "timestamp": plan.created_at,
            "id": plan.id,
            "coach": plan.coach_name,
            "date": plan.date,
            "edited": plan.edited_at is not None,
            "edited_at": plan.edited_at,
            "channel": plan.channel,
            "tickers": shown.tickers,
        }

    def _shown_dict(self, shown: repo.Shown) -> Json:
        return self._plan_dict(
            shown.plan._asdict(),
            charts=[chart_dict(c, self._base_url) for c in shown.charts],
            tickers=shown.tickers,
        )

    def _levels_of(self, plan: Json) -> list[Json]:
        """The stored levels; a plan written before they were stored (NULL) is read now, not saved."""
        stored: list[Json] | None = plan.get("plan_levels")
        return self.levels(plan["plan_text"]) if stored is None else stored

    def _plan_dict(self, plan: Json, *, charts: list[Json], tickers: list[str]) -> Json:
        coach: str = plan["coach_name"]
        return {
            "id": plan["id"],
            "coach": coach,
            "coach_display_name": self.settings.roster.get(coach.removeprefix("coach_"), coach),
            "date": plan["date"],
            "plan": plan["plan_text"],
            "charts": charts,
            "author": plan["author"],
            "author_id": plan["author_id"],
            "channel": plan["channel"],
            "channel_id": plan["channel_id"],
            "source_message_id": plan["source_message_id"],
            "created_at": plan["created_at"],
            "edited_at": plan["edited_at"],
            "edited": plan["edited_at"] is not None,
            "deleted_at": plan["deleted_at"],
            "tickers": tickers,
            "levels": self._levels_of(plan),
        }

    # --- writes ---------------------------------------------------------------------------
    def put_plan(self, *, coach: str, date: dt.date, body: PlanPut) -> WriteResult:
        """Create or replace the live plan of (coach, date); replacing is an edit."""
        levels = self.levels(body.plan_text)
        done = self._write(self._put_job(coach=coach, date=date, body=body, levels=levels))
        return WriteResult(plan_model(done.plan), created=done.created)

    async def put_json(self, *, coach: str, date: dt.date, body: PlanPut) -> tuple[bytes, bool]:
        """`put_plan` for the routes: the answer as JSON, and whether the plan was created."""
        levels = await self._levels_off_the_loop(body.plan_text)
        done = await self._write_async(self._put_job(coach=coach, date=date, body=body, levels=levels))
        return to_json(done.plan), done.created

    def _put_job(
        self, *, coach: str, date: dt.date, body: PlanPut, levels: list[Json]
    ) -> Callable[[Conn], _Written]:
        digest = payload_hash(
            "put", text=body.plan_text, charts=body.charts, edited_at=body.message_edited_at
        )
        return lambda conn: self._put(conn, coach=coach, date=date, body=body, digest=digest, levels=levels)

    def _put(
        self, conn: Conn, *, coach: str, date: dt.date, body: PlanPut, digest: str, levels: list[Json]
    ) -> _Written:
        repo.lock_coach_date(conn, coach=coach, date=date)
        prior = repo.revision_of_message(
            conn, message_id=body.message_id, payload_hash=digest, coach=coach, date=date
        )
        if prior is not None:
            return _Written(self._answer_of(conn, prior), prior.action == RevisionAction.create, [])
        now = self._now()
        live = repo.live_plan(conn, coach=coach, date=date)
        if live is not None:
            ensure_may_change(live, body.actor)
            values: Json = {
                "plan_text": body.plan_text,
                "plan_levels": levels,
                "edited_at": now,
                "source_message_id": body.message_id,
                "channel": body.channel or live.channel,
                "channel_id": body.channel_id or live.channel_id,
            }
            repo.update_plan(conn, live.id, values=values)
            plan = {**live._asdict(), **values}
            action = RevisionAction.edit
        else:
            values = {
                "coach_name": coach,
                "date": date,
                "plan_text": body.plan_text,
                "plan_levels": levels,
                "author": body.actor.display_name,
                "author_id": body.actor.user_id,
                "channel": body.channel,
                "channel_id": body.channel_id,
                "source_message_id": body.message_id,
                "created_at": now,
                "edited_at": None,
                "deleted_at": None,
            }
            plan = {"id": repo.insert_plan(conn, values), **values}
            action = RevisionAction.create
        charts = self._set_charts(conn, plan["id"], body.charts, new=action == RevisionAction.create)
        return self._revised(
            conn,
            plan,
            charts,
            action=action,
            actor=body.actor,
            message_id=body.message_id,
            digest=digest,
            now=now,
        )

    async def patch_json(self, plan_id: int, body: PlanPatch) -> bytes:
        digest = payload_hash(
            "patch", text=body.plan_text, charts=body.charts, edited_at=body.message_edited_at
        )
        levels = None if body.plan_text is None else await self._levels_off_the_loop(body.plan_text)

        def job(conn: Conn) -> _Written:
            return self._patch(conn, plan_id, body=body, digest=digest, levels=levels)

        return to_json((await self._write_async(job)).plan)

    def _patch(
        self, conn: Conn, plan_id: int, *, body: PlanPatch, digest: str, levels: list[Json] | None
    ) -> _Written:
        self._lock_plan(conn, plan_id)
        prior = repo.revision_of_message(
            conn, message_id=body.message_id, payload_hash=digest, plan_id=plan_id
        )
        if prior is not None:
            return _Written(self._answer_of(conn, prior), False, [])
        live = self._live_by_id(conn, plan_id)
        ensure_may_change(live, body.actor)
        now = self._now()
        values: Json = {"edited_at": now}
        if body.plan_text is not None:
            values["plan_text"], values["plan_levels"] = body.plan_text, levels
        repo.update_plan(conn, plan_id, values=values)
        plan = {**live._asdict(), **values}
        if body.charts is not None:
            charts = self._set_charts(conn, plan_id, body.charts, new=False)
        else:
            charts = [chart_dict(c, self._base_url) for c in repo.charts_of(conn, [plan_id]).get(plan_id, ())]
        return self._revised(
            conn,
            plan,
            charts,
            action=RevisionAction.edit,
            actor=body.actor,
            message_id=body.message_id,
            digest=digest,
            now=now,
        )

    async def delete_json(self, plan_id: int, body: PlanDelete) -> bytes:
        return to_json(
            (await self._write_async(lambda conn: self._delete_one(conn, plan_id, body=body))).plan
        )

    def _delete_one(self, conn: Conn, plan_id: int, *, body: PlanDelete) -> _Written:
        self._lock_plan(conn, plan_id)
        prior = repo.revision_of_message(
            conn, message_id=body.message_id, payload_hash=DELETE_DIGEST, plan_id=plan_id
        )
        if prior is not None:
            return _Written(self._answer_of(conn, prior), False, [])
        live = self._live_by_id(conn, plan_id)
        ensure_may_change(live, body.actor)
        return self._delete(conn, live, actor=body.actor, message_id=body.message_id)

    def clear(self, body: ClearIn) -> ClearOut:
        """Admin only: delete every live plan of a day (a retry reports the same plans)."""
        date = self.given_day(body.date)
        if not body.actor.is_admin:
            raise Forbidden("only an admin may clear a day's plans")

        def clear_day(conn: Conn) -> tuple[set[int], list[PlanEvent]]:
            done = {p.id for p in repo.plans_deleted_by_message(conn, body.message_id) if p.date == date}
            if done:  # a retry: what the clear deleted then, and nothing posted since
                return done, []
            events: list[PlanEvent] = []
            rows = repo.live_plans_on(conn, date)
            # Every coach's lock before the first revision takes the revision-order lock
            # (`repo.insert_revision`): taken in the other order, a concurrent write deadlocks.
            for row in rows:
                repo.lock_coach_date(conn, coach=row.coach_name, date=row.date)
            for row in rows:
                events += self._delete(conn, row, actor=body.actor, message_id=body.message_id).events
                done.add(row.id)
            return done, events

        with self._writing():
            done, events = self.db.run_write(clear_day)
        if events:
            self._announce(events)
        log.info("plans cleared date=%s count=%d by=%s", date, len(done), body.actor.user_id)
        return ClearOut(date=date, deleted=len(done), plan_ids=sorted(done))

    def heartbeat(self, body: HeartbeatIn) -> None:
        at = self._now()
        with storage_errors():
            self.db.run_write(
                lambda conn: repo.record_heartbeat(
                    conn, bot_id=body.bot_id, connected=body.connected, mock_mode=body.mock_mode, at=at
                )
            )
        self.storage.probe()  # /health shows the bot's state at once (a heartbeat comes every 30 s)

    # --- write helpers --------------------------------------------------------------------
    def _write(self, job: Callable[[Conn], _Written]) -> _Written:
        with self._writing():
            done = self.db.run_write(job)
        if done.events:
            self._stored(done.plan, done.events)
        return done

    async def _write_async(self, job: Callable[[Conn], _Written]) -> _Written:
        """The same, awaited on the event loop: no worker thread waits for the writer."""
        with self._writing():
            done = await self.db.run_write_async(job)
        if done.events:
            self._stored(done.plan, done.events)
        return done

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write whose storage failed may still have committed (the connection broke during
        COMMIT): its answer is a 503, but the database may have changed. The caches are cleared
        and the events catch up from the database, or nobody would hear of that write (its
        retry finds it done and announces nothing either)."""
        try:
            with storage_errors():
                yield
        except StorageUnavailable as exc:
            # Only a failed COMMIT can hide one. Any earlier failure stored nothing, and clearing
            # the caches then would take away the answers they give while the database is down.
            if isinstance(exc.__cause__, DBAPIError) and exc.__cause__.statement == "COMMIT":
                self._on_unknown_outcome()
            raise

    def _lock_plan(self, conn: Conn, plan_id: int) -> None:
        row = repo.plan_by_id(conn, plan_id)
        if row is None:
            raise NotFound(f"no plan with id {plan_id}")
        repo.lock_coach_date(conn, coach=row.coach_name, date=row.date)

    def _live_by_id(self, conn: Conn, plan_id: int) -> PlanRow:
        row = repo.plan_by_id(conn, plan_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no plan with id {plan_id}")
        return row

    def _set_charts(self, conn: Conn, plan_id: int, given: Sequence[ChartIn], *, new: bool) -> list[Json]:
        """Store the given charts; charts equal to those stored keep their rows (and archive)."""
        if not new:
            stored = repo.charts_of(conn, [plan_id]).get(plan_id, [])
            if [(c.chart_url, c.filename, c.content_type, c.size_bytes) for c in stored] == [
                (c.url, c.filename, c.content_type, c.size_bytes) for c in given
            ]:
                return [chart_dict(c, self._base_url) for c in stored]
            repo.delete_charts(conn, plan_id)
        rows = chart_rows(given, self.settings.chart_hosts)
        repo.insert_charts(conn, plan_id, rows=rows)
        return [
            {
                "url": row["chart_url"],
                "order": row["chart_order"],
                "filename": row["filename"],
                "content_type": row["content_type"],
                "size_bytes": row["size_bytes"],
                "original_url": row["chart_url"],
                "sha256": None,
                "archive_status": row["archive_status"],
            }
            for row in rows
        ]

    def _delete(self, conn: Conn, live: PlanRow, *, actor: Actor, message_id: str) -> _Written:
        now = self._now()
        repo.update_plan(conn, live.id, values={"deleted_at": now})
        plan = {**live._asdict(), "deleted_at": now}
        charts = [chart_dict(c, self._base_url) for c in repo.charts_of(conn, [live.id]).get(live.id, ())]
        return self._revised(
            conn,
            plan,
            charts,
            action=RevisionAction.delete,
            actor=actor,
            message_id=message_id,
            digest=DELETE_DIGEST,
            now=now,
        )

    def _revised(
        self,
        conn: Conn,
        plan: Json,
        charts: list[Json],
        *,
        action: RevisionAction,
        actor: Actor,
        message_id: str,
        digest: str,
        now: dt.datetime,
    ) -> _Written:
        """Record the write in history (a create or edit also re-tags tickers); the answer and event."""
        symbols: list[str] = []
        if action != RevisionAction.delete:
            symbols = extract_tickers(plan["plan_text"], self.settings.watchlist)
            repo.set_tickers(conn, plan["id"], symbols=symbols, new=action == RevisionAction.create)
        else:
            symbols = repo.tickers_of(conn, [plan["id"]]).get(plan["id"], [])
        revision_id = repo.insert_revision(
            conn,
            {
                "plan_id": plan["id"],
                "action": action,
                "plan_text": plan["plan_text"],
                "charts_json": json.dumps(charts),
                "editor": actor.display_name,
                "editor_id": actor.user_id,
                "message_id": message_id,
                "payload_hash": digest,
                "created_at": now,
            },
        )
        event = event_of(EventRow(revision_id, action, plan["id"], plan["coach_name"], plan["date"], now))
        created = action == RevisionAction.create
        return _Written(self._plan_dict(plan, charts=charts, tickers=symbols), created, [event])

    def _answer_of(self, conn: Conn, revision: RevisionRow) -> Json:
        """What the write that left `revision` answered: the plan as that write left it."""
        row = repo.plan_by_id(conn, revision.plan_id)
        if row is None:  # pragma: no cover - revisions are deleted only with their plan
            raise NotFound(f"no plan with id {revision.plan_id}")
        if repo.latest_revision_id(conn, row.id) == revision.id:
            shown = repo.shown_plan(conn, row.id)
            assert shown is not None
            return self._shown_dict(shown)
        charts = [chart_of_revision(c) for c in json.loads(revision.charts_json)]
        edited_at = revision.created_at if revision.action == RevisionAction.edit else None
        history = [r for r in repo.revisions_of(conn, row.id) if r.id <= revision.id]
        as_then = {
            **row._asdict(),
            "plan_text": revision.plan_text,
            "plan_levels": None,  # read from that text: a retry of an older write is rare
            "edited_at": edited_at,
            "deleted_at": None,
            "source_message_id": next((r.message_id for r in reversed(history) if posted(r)), None),
        }
        return self._plan_dict(
            as_then, charts=charts, tickers=extract_tickers(revision.plan_text, self.settings.watchlist)
        )

    def _announce(self, events: list[PlanEvent]) -> None:
        """After commit: the plan count moves; caches, subscribers and the archiver hear of it."""
        delta = sum({"plan.created": 1, "plan.deleted": -1}.get(e.type, 0) for e in events)
        if delta:
            self.storage.plans_changed(delta)
        self._on_change(events)

    def _stored(self, plan: Json, events: list[PlanEvent]) -> None:
        """After commit: announce the change, log one line."""
        self._announce(events)
        # Only charts waiting for a download wake the archiver: each wake costs it a query.
        if any(chart["archive_status"] == ArchiveStatus.pending for chart in plan["charts"]):
            self._on_pending_charts()
        log.info(
            "plan %s id=%d coach=%s date=%s length=%d charts=%d author_id=%s",
            {"plan.created": "stored", "plan.updated": "edited", "plan.deleted": "deleted"}[events[0].type],
            plan["id"],
            plan["coach"],
            plan["date"],
            len(plan["plan"]),
            len(plan["charts"]),
            plan["author_id"],
        )

    @contextmanager
    def _read(self) -> Iterator[Conn]:
        with storage_errors(), self.db.reading() as conn:
            yield conn


@contextmanager
def storage_errors() -> Iterator[None]:
    """A database that cannot be reached is a 503 (never an empty answer), a conflict a 409;
    any other database error propagates as the bug it is (a logged 500)."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as exc:
        error = translate_database_error(exc)
        if error is None:
            raise
        log.error("database error (%s): %s", error.code, first_line(exc))
        raise error from exc


def plan_model(plan: Json) -> PlanOut:
    """A PlanOut of data we built ourselves: no validation."""
    return PlanOut.model_construct(
        **{
            **plan,
            "charts": [ChartOut.model_construct(**c) for c in plan["charts"]],
            "levels": [TickerLevelsOut.model_validate(t) for t in plan["levels"]],
        }
    )


def ensure_may_change(plan: PlanRow, actor: Actor) -> None:
    if actor.user_id != plan.author_id and not actor.is_admin:
        raise Forbidden(f"plan {plan.id} belongs to {plan.author}; only its author or an admin may change it")


def chart_rows(charts: Sequence[ChartIn], allowed_hosts: frozenset[str]) -> list[Json]:
    """The rows of new charts; one on a host the archiver may not fetch is marked skipped here,
    so the archiver never wakes, queries and records a transaction for it."""
    rows = []
    for i, c in enumerate(charts):
        reason = not_allowed(c.url, allowed_hosts)
        rows.append(
            {
                "chart_url": c.url,
                "chart_order": i,
                "filename": c.filename,
                "content_type": c.content_type,
                "size_bytes": c.size_bytes,
                "archive_status": ArchiveStatus.pending if reason is None else ArchiveStatus.skipped,
                "archive_error": reason,
            }
        )
    return rows


def chart_dict(chart: ChartRow, base_url: str) -> Json:
    """A stored chart (row) as the API shows it."""
    return {
        "url": chart_url(chart, base_url),
        "order": chart.chart_order,
        "filename": chart.filename,
        "content_type": chart.content_type,
        "size_bytes": chart.size_bytes,
        "original_url": chart.chart_url,
        "sha256": chart.sha256,
        "archive_status": chart.archive_status,
    }


EXTENSION_BY_TYPE = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def chart_url(chart: Any, base_url: str) -> str:
    """The archived copy's stable URL once there is one, else the original."""
    if chart.archive_status != ArchiveStatus.archived or chart.sha256 is None:
        return str(chart.chart_url)
    return f"{base_url}/charts/{chart.sha256}.{EXTENSION_BY_TYPE.get(chart.content_type or '', 'bin')}"


def revision_dict(revision: RevisionRow) -> Json:
    charts: list[Json] = json.loads(revision.charts_json)
    return {
        "id": revision.id,
        "plan_id": revision.plan_id,
        "action": revision.action,
        "plan_text": revision.plan_text,
        "charts": [chart_of_revision(c) for c in charts],
        "editor": revision.editor,
        "editor_id": revision.editor_id,
        "message_id": revision.message_id,
        "created_at": revision.created_at,
    }


def chart_of_revision(chart: Json) -> Json:
    """A chart as a revision recorded it (revisions older than chart archival lack the last three)."""
    return {
        "url": chart["url"],
        "order": chart["order"],
        "filename": chart.get("filename"),
        "content_type": chart.get("content_type"),
        "size_bytes": chart.get("size_bytes"),
        "original_url": chart.get("original_url"),
        "sha256": chart.get("sha256"),
        "archive_status": chart.get("archive_status", ArchiveStatus.pending),
    }


def payload_hash(
    action: str, *, text: str | None, charts: Sequence[ChartIn] | None, edited_at: dt.datetime | None = None
) -> str:
    payload: dict[str, Any] = {
        "action": action,
        "text": text,
        "charts": None if charts is None else [c.model_dump() for c in charts],
    }
    if edited_at is not None:  # absent from writes that are not edits: their stored hashes stay valid
        payload["edited_at"] = edited_at.isoformat()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


DELETE_DIGEST = payload_hash("delete", text=None, charts=None)


def posted(revision: RevisionRow) -> bool:
    """Whether the revision came from a post (PUT), which sets the plan's source message."""
    if revision.action == RevisionAction.create:
        return True
    charts = [
        ChartIn.model_construct(
            url=c.get("original_url") or c["url"],
            filename=c.get("filename"),
            content_type=c.get("content_type"),
            size_bytes=c.get("size_bytes"),
        )
        for c in json.loads(revision.charts_json)
    ]
    return (
        revision.action == RevisionAction.edit
        and payload_hash("put", text=revision.plan_text, charts=charts) == revision.payload_hash
    )


def encode_cursor(date: dt.date, plan_id: int) -> str:
    return f"{date.isoformat()}_{plan_id}"


# Only what the encoders write: fromisoformat, int and float also take other spellings (week
# dates, "1_0", other scripts' digits), which no page ever handed out.
_CURSOR = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{1,19})", re.ASCII)
_SEARCH_CURSOR = re.compile(r"(-?\d+(?:\.\d+)?(?:e[-+]\d+)?)_(\d{1,19})", re.ASCII)


def decode_cursor(cursor: str) -> tuple[dt.date, int]:
    match = _CURSOR.fullmatch(cursor)
    try:
        after = (dt.date.fromisoformat(match[1]), int(match[2])) if match else None
    except ValueError:
        after = None
    if after is None or not 1 <= after[1] <= MAX_ID:  # an unbounded id would overflow the database
        raise InvalidCursor(f"invalid cursor {cursor!r}; pass next_cursor from a previous page")
    return after


def encode_search_cursor(score: float, plan_id: int) -> str:
    return f"{score!r}_{plan_id}"  # repr gives the float back exactly


def decode_search_cursor(cursor: str) -> tuple[float, int]:
    match = _SEARCH_CURSOR.fullmatch(cursor)
    after = (float(match[1]), int(match[2])) if match else None
    if after is None or not math.isfinite(after[0]) or not 1 <= after[1] <= MAX_ID:
        raise InvalidCursor(f"invalid cursor {cursor!r}; pass next_cursor from a previous page")
    return after
