"""All SQL of the service: plain functions over a connection, in SQLAlchemy Core.

Rows come back as tuples, not ORM objects: a read is a few indexed lookups, and building an
object graph per request cost more than the lookups themselves (see docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from sqlalchemy import Row, Table, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from coach_plans_api.models import Base

# A result row of any shape: the columns are named, read them by attribute.
Record: TypeAlias = Row[*tuple[Any, ...]]
plans: Table = Base.metadata.tables["coach_plans"]
charts: Table = Base.metadata.tables["plan_charts"]
tickers: Table = Base.metadata.tables["plan_tickers"]
revisions: Table = Base.metadata.tables["plan_revisions"]
heartbeats: Table = Base.metadata.tables["bot_heartbeats"]

PLAN_COLUMNS = (
    plans.c.id,
    plans.c.coach_name,
    plans.c.date,
    plans.c.plan_text,
    plans.c.author,
    plans.c.author_id,
    plans.c.channel,
    plans.c.channel_id,
    plans.c.source_message_id,
    plans.c.created_at,
    plans.c.edited_at,
    plans.c.deleted_at,
)
CHART_COLUMNS = (
    charts.c.plan_id,
    charts.c.chart_url,
    charts.c.chart_order,
    charts.c.filename,
    charts.c.content_type,
    charts.c.size_bytes,
    charts.c.sha256,
    charts.c.archive_status,
)
REVISION_COLUMNS = (
    revisions.c.id,
    revisions.c.plan_id,
    revisions.c.action,
    revisions.c.plan_text,
    revisions.c.charts_json,
    revisions.c.editor,
    revisions.c.editor_id,
    revisions.c.message_id,
    revisions.c.payload_hash,
    revisions.c.created_at,
)
_LIVE = plans.c.deleted_at.is_(None)
_LIVE_PLAN = select(*PLAN_COLUMNS).where(
    plans.c.coach_name == bindparam("coach"), plans.c.date == bindparam("date"), _LIVE
)
_PLAN_BY_ID = select(*PLAN_COLUMNS).where(plans.c.id == bindparam("plan_id"))
_CHARTS_OF_ONE = (
    select(*CHART_COLUMNS).where(charts.c.plan_id == bindparam("plan_id")).order_by(charts.c.chart_order)
)
_CHARTS_OF_MANY = (
    select(*CHART_COLUMNS)
    .where(charts.c.plan_id.in_(bindparam("plan_ids", expanding=True)))
    .order_by(charts.c.plan_id, charts.c.chart_order)
)
_TICKERS_OF_ONE = (
    select(tickers.c.plan_id, tickers.c.ticker)
    .where(tickers.c.plan_id == bindparam("plan_id"))
    .order_by(tickers.c.position)
)
_TICKERS_OF_MANY = (
    select(tickers.c.plan_id, tickers.c.ticker)
    .where(tickers.c.plan_id.in_(bindparam("plan_ids", expanding=True)))
    .order_by(tickers.c.plan_id, tickers.c.position)
)


# --- reads ------------------------------------------------------------------------------------
def live_plan(conn: Connection, *, coach: str, date: dt.date) -> Record | None:
    return conn.execute(_LIVE_PLAN, {"coach": coach, "date": date}).first()


def plan_by_id(conn: Connection, plan_id: int) -> Record | None:
    return conn.execute(_PLAN_BY_ID, {"plan_id": plan_id}).first()


def live_plans_on(conn: Connection, date: dt.date) -> Sequence[Record]:
    query = select(*PLAN_COLUMNS).where(plans.c.date == date, _LIVE).order_by(plans.c.coach_name)
    return conn.execute(query).all()


def find_plans(
    conn: Connection,
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
) -> Sequence[Record]:
    """Live plans matching every given filter, newest date first, then newest id."""
    query = select(*PLAN_COLUMNS).where(_LIVE)
    if coach is not None:
        query = query.where(plans.c.coach_name == coach)
    if date_from is not None:
        query = query.where(plans.c.date >= date_from)
    if date_to is not None:
        query = query.where(plans.c.date <= date_to)
    if author is not None:
        query = query.where(func.lower(plans.c.author) == author.lower())
    if author_id is not None:
        query = query.where(plans.c.author_id == author_id)
    if message_id is not None:
        query = query.where(plans.c.source_message_id == message_id)
    if ticker is not None:
        query = query.join(tickers, tickers.c.plan_id == plans.c.id).where(tickers.c.ticker == ticker)
    if after is not None:
        last_date, last_id = after
        query = query.where(
            or_(plans.c.date < last_date, and_(plans.c.date == last_date, plans.c.id < last_id))
        )
    return conn.execute(query.order_by(plans.c.date.desc(), plans.c.id.desc()).limit(limit)).all()


def charts_of(conn: Connection, plan_ids: Sequence[int]) -> dict[int, list[Record]]:
    """The charts of each plan, in the order they were attached."""
    found: dict[int, list[Record]] = defaultdict(list)
    if not plan_ids:
        return found
    if len(plan_ids) == 1:
        rows = conn.execute(_CHARTS_OF_ONE, {"plan_id": plan_ids[0]})
    else:
        rows = conn.execute(_CHARTS_OF_MANY, {"plan_ids": list(plan_ids)})
    for row in rows:
        found[row.plan_id].append(row)
    return found


def tickers_of(conn: Connection, plan_ids: Sequence[int]) -> dict[int, list[str]]:
    """The tickers of each plan, in the order they appear in its text."""
    found: dict[int, list[str]] = defaultdict(list)
    if not plan_ids:
        return found
    if len(plan_ids) == 1:
        rows = conn.execute(_TICKERS_OF_ONE, {"plan_id": plan_ids[0]})
    else:
        rows = conn.execute(_TICKERS_OF_MANY, {"plan_ids": list(plan_ids)})
    for plan_id, ticker in rows:
        found[plan_id].append(ticker)
    return found


def count_live_plans(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(plans).where(_LIVE)) or 0


def revisions_of(conn: Connection, plan_id: int) -> Sequence[Record]:
    query = select(*REVISION_COLUMNS).where(revisions.c.plan_id == plan_id).order_by(revisions.c.id)
    return conn.execute(query).all()


def latest_revision_id(conn: Connection, plan_id: int) -> int | None:
    latest: int | None = conn.scalar(select(func.max(revisions.c.id)).where(revisions.c.plan_id == plan_id))
    return latest


def last_revision_of_message(
    conn: Connection,
    *,
    message_id: str,
    plan_id: int | None = None,
    coach: str | None = None,
    date: dt.date | None = None,
) -> Record | None:
    """The newest revision written for this Discord message, of one plan or of (coach, date)."""
    query = select(*REVISION_COLUMNS).where(revisions.c.message_id == message_id)
    if plan_id is not None:
        query = query.where(revisions.c.plan_id == plan_id)
    else:
        query = query.join(plans, plans.c.id == revisions.c.plan_id).where(
            plans.c.coach_name == coach, plans.c.date == date
        )
    return conn.execute(query.order_by(revisions.c.id.desc()).limit(1)).first()


def plans_deleted_by_message(conn: Connection, message_id: str) -> Sequence[Record]:
    query = (
        select(*PLAN_COLUMNS)
        .join(revisions, revisions.c.plan_id == plans.c.id)
        .where(revisions.c.message_id == message_id, revisions.c.action == "delete")
        .order_by(plans.c.id)
    )
    return conn.execute(query).all()


def bot_seen_since(conn: Connection, since: dt.datetime) -> bool:
    query = (
        select(func.count())
        .select_from(heartbeats)
        .where(heartbeats.c.connected.is_(True), heartbeats.c.last_seen_at >= since)
    )
    return (conn.scalar(query) or 0) > 0


# --- writes -----------------------------------------------------------------------------------
def lock_coach_date(conn: Connection, *, coach: str, date: dt.date) -> None:
    """Serialise writers of one coach and day (SQLite already holds its write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{coach}/{date}"})


def insert_plan(conn: Connection, values: dict[str, Any]) -> int:
    key = conn.execute(insert(plans), values).inserted_primary_key
    assert key is not None
    return int(key[0])


def update_plan(conn: Connection, plan_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(plans).where(plans.c.id == plan_id), values)


def insert_charts(conn: Connection, plan_id: int, rows: Iterable[dict[str, Any]]) -> None:
    params = [{**row, "plan_id": plan_id} for row in rows]
    if params:
        conn.execute(insert(charts), params)


def delete_charts(conn: Connection, plan_id: int) -> None:
    conn.execute(delete(charts).where(charts.c.plan_id == plan_id))


def set_tickers(conn: Connection, plan_id: int, symbols: list[str], *, new: bool) -> None:
    """Tag the plan with `symbols` (in order); a new plan has none to compare with."""
    if not new:
        if list(tickers_of(conn, [plan_id]).get(plan_id, [])) == symbols:
            return
        conn.execute(delete(tickers).where(tickers.c.plan_id == plan_id))
    if symbols:
        conn.execute(
            insert(tickers),
            [{"plan_id": plan_id, "ticker": t, "position": i} for i, t in enumerate(symbols)],
        )


def insert_revision(conn: Connection, values: dict[str, Any]) -> int:
    key = conn.execute(insert(revisions), values).inserted_primary_key
    assert key is not None
    return int(key[0])


def record_heartbeat(
    conn: Connection, *, bot_id: str, connected: bool, mock_mode: bool, at: dt.datetime
) -> None:
    values = {"connected": connected, "mock_mode": mock_mode, "last_seen_at": at}
    if conn.execute(update(heartbeats).where(heartbeats.c.bot_id == bot_id), values).rowcount == 0:
        conn.execute(insert(heartbeats), {"bot_id": bot_id, **values})
