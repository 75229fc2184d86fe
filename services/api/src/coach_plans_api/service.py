"""The rules: coach and date parsing, validation, ownership, idempotency and revisions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from coach_plans_api import repository as repo
from coach_plans_api.config import Settings
from coach_plans_api.db import Database
from coach_plans_api.errors import (
    Forbidden,
    InvalidCursor,
    InvalidDate,
    NotFound,
    UnknownCoach,
    first_line,
    translate_database_error,
)
from coach_plans_api.models import ArchiveStatus, Chart, Plan, Revision, RevisionAction
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
)
from coach_plans_api.tickers import extract_tickers

log = logging.getLogger("coach_plans_api.plans")
EVENT_TYPES: dict[RevisionAction, Literal["plan.created", "plan.updated", "plan.deleted"]] = {
    RevisionAction.create: "plan.created",
    RevisionAction.edit: "plan.updated",
    RevisionAction.delete: "plan.deleted",
}
_COACH = re.compile(r"^(?:coach[_ -]?)?([a-z0-9]+)$")
COUNT_TTL_SECONDS = 10.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event_of(revision: Revision, plan: Plan) -> PlanEvent:
    """The live event announcing a revision (its id orders events and resumes subscriptions)."""
    return PlanEvent(
        type=EVENT_TYPES[revision.action],
        id=revision.id,
        plan_id=plan.id,
        coach=plan.coach_name,
        date=plan.date,
        at=revision.created_at,
    )


@dataclass(frozen=True, slots=True)
class WriteResult:
    plan: PlanOut
    created: bool


class PlanService:
    """Reads and writes plans; every method opens its own transaction."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        on_change: Callable[[list[PlanEvent]], None] = lambda _events: None,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self.settings = settings
        self._on_change = on_change
        self._now = now
        self._count: tuple[float, int] | None = None

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
        """An ISO date, or today in the plan time zone when absent."""
        if raw is None or raw == "":
            return self.today()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise InvalidDate(f"invalid date {raw!r}; expected YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidDate(f"invalid date {raw!r}: no such day") from None

    def coaches(self) -> list[CoachOut]:
        return [CoachOut(coach=f"coach_{k}", key=k, name=n) for k, n in self.settings.roster.items()]

    # --- reads ----------------------------------------------------------------------------
    def legacy_plan(self, *, coach: str, date: dt.date) -> LegacyPlanOut:
        with self._read() as session:
            plan = repo.live_plan(session, coach=coach, date=date)
            if plan is None:
                raise NotFound(
                    f"no plan for {coach} on {date}",
                    extra={"plan": f"No plan available for {coach} on {date}", "charts": []},
                )
            return legacy_out(plan, self.settings.chart_base_url)

    def legacy_all(self, date: dt.date) -> dict[str, LegacyPlanOut]:
        with self._read() as session:
            return {
                p.coach_name: legacy_out(p, self.settings.chart_base_url)
                for p in repo.live_plans_on(session, date)
            }

    def events_after(self, revision_id: int, *, limit: int = 500) -> list[PlanEvent]:
        """The changes after revision `revision_id`, oldest first: what a subscriber missed."""
        with self._read() as session:
            return [
                event_of(revision, plan)
                for revision, plan in repo.revisions_after(session, revision_id, limit=limit)
            ]

    def plans_with_history(self, date: dt.date) -> dict[str, tuple[LegacyPlanOut, list[RevisionOut]]]:
        """Each coach's live plan of the day with its revisions, read in one session."""
        with self._read() as session:
            plans = repo.live_plans_on(session, date)
            revisions = repo.revisions_of_plans(session, [p.id for p in plans])
            return {
                p.coach_name: (
                    legacy_out(p, self.settings.chart_base_url),
                    [revision_out(r) for r in revisions[p.id]],
                )
                for p in plans
            }

    def plan(self, plan_id: int) -> PlanOut:
        with self._read() as session:
            plan = repo.plan_by_id(session, plan_id)
            if plan is None or plan.deleted_at is not None:
                raise NotFound(f"no plan with id {plan_id}")
            return self.plan_out(plan)

    def revisions(self, plan_id: int) -> list[RevisionOut]:
        with self._read() as session:
            if repo.plan_by_id(session, plan_id) is None:
                raise NotFound(f"no plan with id {plan_id}")
            return [revision_out(r) for r in repo.revisions_of(session, plan_id)]

    def find(
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
    ) -> PlanPage:
        """Live plans matching every filter given, newest first, a page at a time."""
        after = decode_cursor(cursor) if cursor else None
        with self._read() as session:
            plans = repo.find_plans(
                session,
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
            items = [self.plan_out(p) for p in plans[:limit]]
        next_cursor = encode_cursor(items[-1].date, items[-1].id) if len(plans) > limit else None
        return PlanPage(items=items, next_cursor=next_cursor)

    def history(self, *, coach: str, days: int) -> list[PlanOut]:
        today = self.today()
        return self.find(
            coach=coach, date_from=today - dt.timedelta(days=days - 1), date_to=today, limit=days
        ).items

    def health(self) -> tuple[bool, int | None, bool]:
        """(database reachable, live plans, bot heartbeat fresh); every call reads the database."""
        since = self._now() - dt.timedelta(seconds=self.settings.bot_stale_seconds)
        try:
            with self.db.read() as session:
                bot_ok = repo.bot_seen_since(session, since)
                return True, self._plans_count(session), bot_ok
        except DBAPIError as exc:
            log.warning("health check: database unreachable: %s", exc.orig)
            return False, None, False

    def plans_count(self) -> int:
        with self._read() as session:
            return self._plans_count(session)

    def _plans_count(self, session: Session) -> int:
        # Counting a million rows takes tens of milliseconds: health checks and metrics scrapes
        # reuse a count up to COUNT_TTL_SECONDS old.
        now = time.monotonic()
        if self._count is None or now - self._count[0] > COUNT_TTL_SECONDS:
            self._count = (now, repo.count_live_plans(session))
        return self._count[1]

    # --- writes ---------------------------------------------------------------------------
    def put_plan(self, *, coach: str, date: dt.date, body: PlanPut) -> WriteResult:
        """Create or replace the live plan of (coach, date); replacing is an edit."""
        digest = payload_hash("put", body.plan_text, body.charts)
        with self._write() as session:
            repo.lock_coach_date(session, coach=coach, date=date)
            plan = repo.live_plan(session, coach=coach, date=date)
            if plan is not None:
                retried = retry_of(session, plan, body.message_id, digest)
                if retried is not None:
                    return WriteResult(self.plan_out(plan), created=retried.action == RevisionAction.create)
                ensure_may_change(plan, body.actor)
                self._edit(plan, text=body.plan_text, charts=body.charts)
                plan.source_message_id = body.message_id
                plan.channel = body.channel or plan.channel
                plan.channel_id = body.channel_id or plan.channel_id
                action = RevisionAction.edit
            else:
                plan = repo.add_plan(
                    session,
                    Plan(
                        coach_name=coach,
                        date=date,
                        plan_text=body.plan_text,
                        author=body.actor.display_name,
                        author_id=body.actor.user_id,
                        channel=body.channel,
                        channel_id=body.channel_id,
                        source_message_id=body.message_id,
                        created_at=self._now(),
                        charts=chart_rows(body.charts),
                    ),
                )
                action = RevisionAction.create
            event = self._revise(
                session,
                plan,
                action=action,
                actor=body.actor,
                message_id=body.message_id,
                digest=digest,
            )
            result = WriteResult(self.plan_out(plan), created=action == RevisionAction.create)
        self._stored(result.plan, [event])
        return result

    def patch_plan(self, plan_id: int, body: PlanPatch) -> PlanOut:
        digest = payload_hash("patch", body.plan_text, body.charts)
        with self._write() as session:
            plan = self._live_by_id(session, plan_id)
            if retry_of(session, plan, body.message_id, digest) is not None:
                return self.plan_out(plan)
            ensure_may_change(plan, body.actor)
            self._edit(plan, text=body.plan_text, charts=body.charts)
            event = self._revise(
                session,
                plan,
                action=RevisionAction.edit,
                actor=body.actor,
                message_id=body.message_id,
                digest=digest,
            )
            out = self.plan_out(plan)
        self._stored(out, [event])
        return out

    def delete_plan(self, plan_id: int, body: PlanDelete) -> PlanOut:
        with self._write() as session:
            plan = repo.plan_by_id(session, plan_id)
            if (
                plan is not None
                and plan.deleted_at is not None
                and retry_of(session, plan, body.message_id, DELETE_DIGEST) is not None
            ):
                return self.plan_out(plan)
            plan = self._live_by_id(session, plan_id)
            ensure_may_change(plan, body.actor)
            event = self._delete(session, plan, actor=body.actor, message_id=body.message_id)
            out = self.plan_out(plan)
        self._stored(out, [event])
        return out

    def clear(self, body: ClearIn) -> ClearOut:
        """Admin only: delete every live plan of a day (a retry reports the same plans)."""
        date = self.day(body.date)
        if not body.actor.is_admin:
            raise Forbidden("only an admin may clear a day's plans")
        events: list[PlanEvent] = []
        with self._write() as session:
            done = {p.id for p in repo.plans_deleted_by_message(session, body.message_id) if p.date == date}
            for plan in repo.live_plans_on(session, date):
                events.append(self._delete(session, plan, actor=body.actor, message_id=body.message_id))
                done.add(plan.id)
        if events:
            self._announce(events)
        log.info("plans cleared date=%s count=%d by=%s", date, len(done), body.actor.user_id)
        return ClearOut(date=date, deleted=len(done), plan_ids=sorted(done))

    def heartbeat(self, body: HeartbeatIn) -> None:
        with self._write() as session:
            repo.record_heartbeat(
                session,
                bot_id=body.bot_id,
                connected=body.connected,
                mock_mode=body.mock_mode,
                at=self._now(),
            )

    # --- helpers --------------------------------------------------------------------------
    def plan_out(self, plan: Plan) -> PlanOut:
        key = plan.coach_name.removeprefix("coach_")
        return PlanOut(
            id=plan.id,
            coach=plan.coach_name,
            coach_display_name=self.settings.roster.get(key, plan.coach_name),
            date=plan.date,
            plan=plan.plan_text,
            charts=[chart_out(c, self.settings.chart_base_url) for c in plan.charts],
            author=plan.author,
            author_id=plan.author_id,
            channel=plan.channel,
            channel_id=plan.channel_id,
            source_message_id=plan.source_message_id,
            created_at=plan.created_at,
            edited_at=plan.edited_at,
            edited=plan.edited_at is not None,
            deleted_at=plan.deleted_at,
            tickers=[t.ticker for t in plan.tickers],
        )

    def _live_by_id(self, session: Session, plan_id: int) -> Plan:
        plan = repo.plan_by_id(session, plan_id)
        if plan is None or plan.deleted_at is not None:
            raise NotFound(f"no plan with id {plan_id}")
        return plan

    def _edit(self, plan: Plan, *, text: str | None, charts: Sequence[ChartIn] | None) -> None:
        if text is not None:
            plan.plan_text = text
        if charts is not None:
            repo.replace_charts(plan, chart_rows(charts))
        plan.edited_at = self._now()

    def _delete(self, session: Session, plan: Plan, *, actor: Actor, message_id: str) -> PlanEvent:
        plan.deleted_at = self._now()
        return self._revise(
            session,
            plan,
            action=RevisionAction.delete,
            actor=actor,
            message_id=message_id,
            digest=DELETE_DIGEST,
        )

    def _revise(
        self,
        session: Session,
        plan: Plan,
        *,
        action: RevisionAction,
        actor: Actor,
        message_id: str,
        digest: str,
    ) -> PlanEvent:
        """Record the write in history (a create or edit also re-tags tickers); its event."""
        session.flush()
        if action != RevisionAction.delete:
            repo.replace_tickers(session, plan, extract_tickers(plan.plan_text, self.settings.watchlist))
        revision = Revision(
            plan_id=plan.id,
            action=action,
            plan_text=plan.plan_text,
            charts_json=json.dumps(
                [chart_out(c, self.settings.chart_base_url).model_dump() for c in plan.charts]
            ),
            editor=actor.display_name,
            editor_id=actor.user_id,
            message_id=message_id,
            payload_hash=digest,
            created_at=self._now(),
        )
        repo.add_revision(session, revision)
        return event_of(revision, plan)

    def _announce(self, events: list[PlanEvent]) -> None:
        """After commit: the plan count is stale; caches, subscribers and the archiver hear of it."""
        self._count = None
        self._on_change(events)

    def _stored(self, plan: PlanOut, events: list[PlanEvent]) -> None:
        """After commit: announce the change, log one line."""
        self._announce(events)
        log.info(
            "plan %s id=%d coach=%s date=%s length=%d charts=%d author_id=%s",
            {"plan.created": "stored", "plan.updated": "edited", "plan.deleted": "deleted"}[events[0].type],
            plan.id,
            plan.coach,
            plan.date,
            len(plan.plan),
            len(plan.charts),
            plan.author_id,
        )

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with storage_errors(), self.db.read() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with storage_errors(), self.db.write() as session:
            yield session


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


def retry_of(session: Session, plan: Plan, message_id: str, digest: str) -> Revision | None:
    """The plan's last revision if it came from this very write (same message, same payload)."""
    last = repo.latest_revision(session, plan.id)
    if last is not None and last.message_id == message_id and last.payload_hash == digest:
        return last
    return None


def ensure_may_change(plan: Plan, actor: Actor) -> None:
    if actor.user_id != plan.author_id and not actor.is_admin:
        raise Forbidden(f"plan {plan.id} belongs to {plan.author}; only its author or an admin may change it")


def chart_rows(charts: Sequence[ChartIn]) -> list[Chart]:
    return [
        Chart(
            chart_url=c.url,
            chart_order=i,
            filename=c.filename,
            content_type=c.content_type,
            size_bytes=c.size_bytes,
        )
        for i, c in enumerate(charts)
    ]


def chart_out(chart: Chart, base_url: str) -> ChartOut:
    return ChartOut(
        url=chart_url(chart, base_url),
        order=chart.chart_order,
        filename=chart.filename,
        content_type=chart.content_type,
        size_bytes=chart.size_bytes,
        original_url=chart.chart_url,
        sha256=chart.sha256,
        archive_status=chart.archive_status,
    )


EXTENSION_BY_TYPE = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def chart_url(chart: Chart, base_url: str) -> str:
    """The archived copy's stable URL once there is one, else the original."""
    if chart.archive_status != ArchiveStatus.archived or chart.sha256 is None:
        return chart.chart_url
    return f"{base_url}/charts/{chart.sha256}.{EXTENSION_BY_TYPE.get(chart.content_type or '', 'bin')}"


def legacy_out(plan: Plan, base_url: str) -> LegacyPlanOut:
    return LegacyPlanOut(
        plan=plan.plan_text,
        charts=[chart_url(c, base_url) for c in plan.charts],
        author=plan.author,
        timestamp=plan.created_at,
        id=plan.id,
        coach=plan.coach_name,
        date=plan.date,
        edited=plan.edited_at is not None,
        edited_at=plan.edited_at,
        channel=plan.channel,
        tickers=[t.ticker for t in plan.tickers],
    )


def revision_out(revision: Revision) -> RevisionOut:
    charts: list[dict[str, Any]] = json.loads(revision.charts_json)
    return RevisionOut(
        id=revision.id,
        plan_id=revision.plan_id,
        action=revision.action,
        plan_text=revision.plan_text,
        charts=[ChartOut(**c) for c in charts],
        editor=revision.editor,
        editor_id=revision.editor_id,
        message_id=revision.message_id,
        created_at=revision.created_at,
    )


def payload_hash(action: str, text: str | None, charts: Sequence[ChartIn] | None) -> str:
    payload = {
        "action": action,
        "text": text,
        "charts": None if charts is None else [c.model_dump() for c in charts],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


DELETE_DIGEST = payload_hash("delete", None, None)


def encode_cursor(date: dt.date, plan_id: int) -> str:
    return f"{date.isoformat()}_{plan_id}"


def decode_cursor(cursor: str) -> tuple[dt.date, int]:
    day, _, plan_id = cursor.partition("_")
    try:
        after = dt.date.fromisoformat(day), int(plan_id)
    except ValueError:
        after = None
    if after is None or not 1 <= after[1] <= MAX_ID:  # an unbounded id would overflow the database
        raise InvalidCursor(f"invalid cursor {cursor!r}; pass next_cursor from a previous page")
    return after
