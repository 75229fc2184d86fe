"""All SQL of the service: plain functions over a session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from coach_plans_api.models import (
    ArchiveStatus,
    BotHeartbeat,
    Chart,
    Plan,
    PlanTicker,
    Revision,
    RevisionAction,
)
from coach_plans_api.search import MARK_END, MARK_START, SearchHit, fts5_query, parse_snippet, postgres_query


def lock_coach_date(session: Session, *, coach: str, date: dt.date) -> None:
    """Serialise writers of one coach and day (SQLite already holds its write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{coach}/{date}"})


def live_plan(session: Session, *, coach: str, date: dt.date) -> Plan | None:
    return session.scalars(
        select(Plan).where(Plan.coach_name == coach, Plan.date == date, Plan.deleted_at.is_(None))
    ).one_or_none()


def plan_by_id(session: Session, plan_id: int) -> Plan | None:
    return session.get(Plan, plan_id)


def live_plans_on(session: Session, date: dt.date) -> Sequence[Plan]:
    return session.scalars(
        select(Plan).where(Plan.date == date, Plan.deleted_at.is_(None)).order_by(Plan.coach_name)
    ).all()


def find_plans(
    session: Session,
    *,
    coach: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    author: str | None = None,
    author_id: str | None = None,
    message_id: str | None = None,
    ticker: str | None = None,
    after: tuple[dt.date, int] | None = None,
    limit: int = 50,
) -> Sequence[Plan]:
    """Live plans matching every given filter, newest date first, then newest id."""
    query = select(Plan).where(Plan.deleted_at.is_(None))
    if coach is not None:
        query = query.where(Plan.coach_name == coach)
    if date_from is not None:
        query = query.where(Plan.date >= date_from)
    if date_to is not None:
        query = query.where(Plan.date <= date_to)
    if author is not None:
        query = query.where(func.lower(Plan.author) == author.lower())
    if author_id is not None:
        query = query.where(Plan.author_id == author_id)
    if message_id is not None:
        query = query.where(Plan.source_message_id == message_id)
    if ticker is not None:
        query = query.join(PlanTicker, PlanTicker.plan_id == Plan.id).where(PlanTicker.ticker == ticker)
    if after is not None:
        last_date, last_id = after
        query = query.where(or_(Plan.date < last_date, and_(Plan.date == last_date, Plan.id < last_id)))
    return session.scalars(query.order_by(Plan.date.desc(), Plan.id.desc()).limit(limit)).all()


def count_live_plans(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Plan).where(Plan.deleted_at.is_(None))) or 0


def revisions_of(session: Session, plan_id: int) -> Sequence[Revision]:
    return session.scalars(select(Revision).where(Revision.plan_id == plan_id).order_by(Revision.id)).all()


def revisions_after(session: Session, revision_id: int, *, limit: int) -> Sequence[tuple[Revision, Plan]]:
    """Up to `limit` revisions with an id above `revision_id`, oldest first, with their plans."""
    return (
        session.execute(
            select(Revision, Plan)
            .join(Plan, Plan.id == Revision.plan_id)
            .where(Revision.id > revision_id)
            .order_by(Revision.id)
            .limit(limit)
        )
        .tuples()
        .all()
    )


def latest_revision(session: Session, plan_id: int) -> Revision | None:
    return session.scalars(
        select(Revision).where(Revision.plan_id == plan_id).order_by(Revision.id.desc()).limit(1)
    ).first()


def plans_deleted_by_message(session: Session, message_id: str) -> Sequence[Plan]:
    return session.scalars(
        select(Plan)
        .join(Revision, Revision.plan_id == Plan.id)
        .where(Revision.message_id == message_id, Revision.action == RevisionAction.delete)
        .order_by(Plan.id)
    ).all()


def add_plan(session: Session, plan: Plan) -> Plan:
    session.add(plan)
    session.flush()
    return plan


def replace_charts(plan: Plan, charts: list[Chart]) -> None:
    plan.charts.clear()
    plan.charts.extend(charts)


def replace_tickers(session: Session, plan: Plan, tickers: list[str]) -> None:
    if [t.ticker for t in plan.tickers] == tickers:
        return
    plan.tickers.clear()
    session.flush()  # the old rows go before new ones with the same key arrive
    plan.tickers.extend(PlanTicker(ticker=t, position=i) for i, t in enumerate(tickers))


def add_revision(session: Session, revision: Revision) -> None:
    session.add(revision)
    session.flush()


def record_heartbeat(
    session: Session, *, bot_id: str, connected: bool, mock_mode: bool, at: dt.datetime
) -> None:
    beat = session.get(BotHeartbeat, bot_id)
    if beat is None:
        session.add(BotHeartbeat(bot_id=bot_id, connected=connected, mock_mode=mock_mode, last_seen_at=at))
    else:
        beat.connected, beat.mock_mode, beat.last_seen_at = connected, mock_mode, at


def bot_seen_since(session: Session, since: dt.datetime) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(BotHeartbeat)
            .where(BotHeartbeat.connected.is_(True), BotHeartbeat.last_seen_at >= since)
        )
        or 0
    ) > 0


def search_plans(
    session: Session,
    *,
    query: str,
    coach: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int,
    after: tuple[float, int] | None = None,
) -> list[SearchHit]:
    """Live plans whose text matches `query`, best first (then newest id), each with a highlighted
    snippet; `after` is the (score, plan id) of the last hit of the previous page."""
    postgres = session.get_bind().dialect.name == "postgresql"
    match = postgres_query(query) if postgres else fts5_query(query)
    if not match.strip():
        return []
    params: dict[str, object] = {"match": match, "limit": limit}
    filters = ["p.deleted_at IS NULL"]
    for condition, name, value in (
        ("p.coach_name = :coach", "coach", coach),
        ("p.date >= :date_from", "date_from", date_from),
        ("p.date <= :date_to", "date_to", date_to),
    ):
        if value is not None:
            filters.append(condition)
            params[name] = value
    page = ""
    if after is not None:
        page = "WHERE score < :after_score OR (score = :after_score AND id < :after_id)"
        params["after_score"], params["after_id"] = after
    where = " AND ".join(filters)
    # Only the page's rows get a snippet: the ranked ids are chosen first, highlighted after.
    if postgres:
        params["headline"] = (
            f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=24, MinWords=8, '
            'MaxFragments=2, FragmentDelimiter=" … "'
        )
        sql = f"""
            SELECT hit.id, hit.score, ts_headline('english', hit.plan_text, hit.q, :headline)
            FROM (
                SELECT * FROM (
                    SELECT p.id, p.plan_text, q, ts_rank(p.plan_search, q)::float8 AS score
                    FROM coach_plans AS p, websearch_to_tsquery('english', :match) AS q
                    WHERE p.plan_search @@ q AND {where}
                ) AS ranked {page}
                ORDER BY score DESC, id DESC LIMIT :limit
            ) AS hit
            ORDER BY hit.score DESC, hit.id DESC
        """  # noqa: S608 - only fixed SQL fragments are joined; every value is a bound parameter
    else:
        params["mark_start"], params["mark_end"] = MARK_START, MARK_END
        sql = f"""
            WITH hit AS MATERIALIZED (
                SELECT * FROM (
                    SELECT p.id, -bm25(coach_plans_fts) AS score
                    FROM coach_plans_fts JOIN coach_plans AS p ON p.id = coach_plans_fts.rowid
                    WHERE coach_plans_fts MATCH :match AND {where}
                ) {page}
                ORDER BY score DESC, id DESC LIMIT :limit
            )
            SELECT hit.id, hit.score,
                   snippet(coach_plans_fts, 0, :mark_start, :mark_end, '…', 24)
            FROM hit JOIN coach_plans_fts ON coach_plans_fts.rowid = hit.id
            WHERE coach_plans_fts MATCH :match
            ORDER BY hit.score DESC, hit.id DESC
        """  # noqa: S608 - only fixed SQL fragments are joined; every value is a bound parameter
    rows = session.execute(text(sql), params).all()
    plans = {plan.id: plan for plan in session.scalars(select(Plan).where(Plan.id.in_([r[0] for r in rows])))}
    hits = []
    for plan_id, score, marked in rows:
        snippet, highlights = parse_snippet(marked)
        hits.append(SearchHit(plans[plan_id], snippet, highlights, float(score)))
    return hits


def charts_due(
    session: Session, *, now: dt.datetime, limit: int, exclude: Collection[int] = ()
) -> list[tuple[int, str]]:
    """(id, url) of charts waiting to be archived whose next attempt is due, oldest first."""
    query = select(Chart.id, Chart.chart_url).where(
        Chart.archive_status == ArchiveStatus.pending,
        or_(Chart.archive_next_at.is_(None), Chart.archive_next_at <= now),
    )
    if exclude:
        query = query.where(Chart.id.not_in(list(exclude)))
    return [(row.id, row.chart_url) for row in session.execute(query.order_by(Chart.id).limit(limit))]


def chart_by_id(session: Session, chart_id: int) -> Chart | None:
    return session.get(Chart, chart_id)


def revisions_of_plans(session: Session, plan_ids: Collection[int]) -> dict[int, list[Revision]]:
    """Every revision of each plan, oldest first, in one query."""
    by_plan: dict[int, list[Revision]] = {plan_id: [] for plan_id in plan_ids}
    if plan_ids:
        query = select(Revision).where(Revision.plan_id.in_(list(plan_ids))).order_by(Revision.id)
        for revision in session.scalars(query):
            by_plan[revision.plan_id].append(revision)
    return by_plan
