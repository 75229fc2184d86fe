"""All SQL of the service: plain functions over a driver connection (`Conn`).

The requests run on the database driver itself (sqlite3 or psycopg) with the SQL written here
once: a read is a few indexed lookups, and SQLAlchemy's execution layer cost three times the
lookups themselves (see docs/performance.md). The tables and their migrations stay with
SQLAlchemy and Alembic (`models.py`).
Driver errors come out as SQLAlchemy's `DBAPIError` family, like everywhere else.

Statements are assembled only from the fixed text here; values always travel as parameters.
"""

# ruff: noqa: S608 - every statement is built from this module's own constants

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import pydantic_core
from sqlalchemy.exc import DBAPIError

from coach_plans_api.models import ArchiveStatus, RevisionAction
from coach_plans_api.search import (
    MARK_END,
    MARK_START,
    SearchHit,
    fts5_query,
    fts5_words,
    parse_snippet,
    postgres_query,
)

Params = dict[str, Any]
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class Conn:
    """A driver connection and its dialect: named parameters, and dates and times both ways."""

    __slots__ = ("_error", "_sql", "postgres", "raw")

    def __init__(self, raw: Any, *, postgres: bool, error: type[Exception]) -> None:
        self.raw = raw
        self.postgres = postgres
        self._error = error
        self._sql: dict[str, str] = _PG_SQL if postgres else {}

    def _text(self, statement: str) -> str:
        if not self.postgres:
            return statement  # sqlite3 takes :name itself
        text = self._sql.get(statement)
        if text is None:
            text = self._sql[statement] = _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))
        return text

    @contextmanager
    def errors(self, statement: str | None = None) -> Iterator[None]:
        """Driver errors as SQLAlchemy's (IntegrityError, OperationalError, ...)."""
        try:
            yield
        except self._error as exc:
            raise DBAPIError.instance(statement, None, exc, self._error) from exc

    def all(self, statement: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        with self.errors(statement):
            rows: list[tuple[Any, ...]] = self.raw.execute(self._text(statement), params or {}).fetchall()
            return rows

    def first(self, statement: str, params: Params | None = None) -> tuple[Any, ...] | None:
        with self.errors(statement):
            row: tuple[Any, ...] | None = self.raw.execute(self._text(statement), params or {}).fetchone()
            return row

    def scalar(self, statement: str, params: Params | None = None) -> Any:
        row = self.first(statement, params)
        return None if row is None else row[0]

    def run(self, statement: str, params: Params | None = None) -> int:
        """Execute a write; the number of rows it changed."""
        with self.errors(statement):
            return int(self.raw.execute(self._text(statement), params or {}).rowcount)

    def run_many(self, statement: str, params: Sequence[Params]) -> None:
        if params:
            with self.errors(statement):
                cursor = self.raw.cursor()
                try:
                    cursor.executemany(self._text(statement), params)
                finally:
                    cursor.close()

    # SQLite keeps dates and times as text; psycopg converts them itself.
    def day(self, value: dt.date) -> Any:
        return value if self.postgres else value.isoformat()

    def time(self, value: dt.datetime | None) -> Any:
        if value is None or self.postgres:
            return value
        # isoformat, not strftime: glibc's %Y does not pad years before 1000 ("999-05-10 ..."),
        # which no reader could parse back.
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def day_out(self, value: Any) -> dt.date:
        return value if self.postgres else dt.date.fromisoformat(value)

    def json_out(self, value: Any) -> Any:
        """A JSON column's value: psycopg parses it, sqlite3 hands over the text."""
        return read_json(value) if isinstance(value, str) and not self.postgres else value

    def time_out(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if self.postgres:
            return value.astimezone(dt.UTC)  # type: ignore[no-any-return]
        try:
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        except ValueError:  # a year before 1000 as earlier versions wrote it: "999-05-10 08:00:00"
            year, _, rest = value.partition("-")
            return dt.datetime.fromisoformat(f"{year:0>4}-{rest}").replace(tzinfo=dt.UTC)


# JSON this service wrote itself, read back on every read: pydantic-core's parser gives the same
# values as `json.loads` in a quarter of the time (a plan's levels: 4.6 against 18 µs).
read_json = pydantic_core.from_json

_PG_SQL: dict[str, str] = {}  # statements translated to psycopg's %(name)s, shared


class PlanRow(NamedTuple):
    id: int
    coach_name: str
    date: dt.date
    plan_text: str
    author: str
    author_id: str
    channel: str | None
    channel_id: str | None
    source_message_id: str | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    deleted_at: dt.datetime | None
    plan_levels: list[dict[str, Any]] | None = None  # None: not read yet (docs/levels.md)


class ChartRow(NamedTuple):
    plan_id: int
    chart_url: str
    chart_order: int
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    archive_status: ArchiveStatus


class RevisionRow(NamedTuple):
    id: int
    plan_id: int
    action: RevisionAction
    plan_text: str
    charts_json: str
    editor: str
    editor_id: str
    message_id: str | None
    payload_hash: str
    created_at: dt.datetime


_COLUMNS = (
    "id, coach_name, date, plan_text, author, author_id, channel, channel_id,"
    " source_message_id, created_at, edited_at, deleted_at, plan_levels"
)
_PLAN = f"SELECT {_COLUMNS} FROM coach_plans"
# A plan with its charts and tickers in one statement (one round trip): each as a JSON array of
# rows, put in order here rather than trusting the aggregate's order.
_SHOWN = {
    False: f"SELECT {_COLUMNS},"
    " (SELECT json_group_array(json_array(chart_url, chart_order, filename, content_type, size_bytes,"
    " sha256, archive_status)) FROM plan_charts WHERE plan_id = p.id),"
    " (SELECT json_group_array(json_array(ticker, position)) FROM plan_tickers WHERE plan_id = p.id)"
    " FROM coach_plans p",
    True: f"SELECT {_COLUMNS},"
    " (SELECT json_agg(json_build_array(chart_url, chart_order, filename, content_type, size_bytes,"
    " sha256, archive_status)) FROM plan_charts WHERE plan_id = p.id),"
    " (SELECT json_agg(json_build_array(ticker, position)) FROM plan_tickers WHERE plan_id = p.id)"
    " FROM coach_plans p",
}


class Shown(NamedTuple):
    """A plan as the API shows it: the row, its charts in order, its tickers in order."""

    plan: PlanRow
    charts: list[ChartRow]
    tickers: list[str]


_CHART = (
    "SELECT plan_id, chart_url, chart_order, filename, content_type, size_bytes, sha256, archive_status"
    " FROM plan_charts"
)
_REVISION = (
    "SELECT id, plan_id, action, plan_text, charts_json, editor, editor_id, message_id, payload_hash,"
    " created_at FROM plan_revisions"
)


def _plan(conn: Conn, row: tuple[Any, ...]) -> PlanRow:
    created_at = conn.time_out(row[9])
    assert created_at is not None
    return PlanRow(
        row[0],
        row[1],
        conn.day_out(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        created_at,
        conn.time_out(row[10]),
        conn.time_out(row[11]),
        conn.json_out(row[12]),
    )


def _revision(conn: Conn, row: tuple[Any, ...]) -> RevisionRow:
    created_at = conn.time_out(row[9])
    assert created_at is not None
    return RevisionRow(
        row[0], row[1], RevisionAction(row[2]), row[3], row[4], row[5], row[6], row[7], row[8], created_at
    )


def _chart(plan_id: int, row: Sequence[Any]) -> ChartRow:
    """A chart from its columns after plan_id (as `_CHART` and `_SHOWN` list them)."""
    return ChartRow(plan_id, row[0], row[1], row[2], row[3], row[4], row[5], ArchiveStatus(row[6]))


def _shown(conn: Conn, row: tuple[Any, ...]) -> Shown:
    plan = _plan(conn, row)
    charts, tickers = row[13], row[14]
    if not conn.postgres:  # SQLite hands JSON over as text
        charts, tickers = read_json(charts), read_json(tickers)
    return Shown(
        plan,
        [_chart(plan.id, c) for c in sorted(charts or (), key=lambda c: c[1])],
        [t for t, _ in sorted(tickers or (), key=lambda t: t[1])],
    )


# --- reads ------------------------------------------------------------------------------------
def shown_live_plan(conn: Conn, *, coach: str, date: dt.date) -> Shown | None:
    row = conn.first(
        f"{_SHOWN[conn.postgres]} WHERE coach_name = :coach AND date = :date AND deleted_at IS NULL",
        {"coach": coach, "date": conn.day(date)},
    )
    return None if row is None else _shown(conn, row)


def shown_plan(conn: Conn, plan_id: int) -> Shown | None:
    row = conn.first(f"{_SHOWN[conn.postgres]} WHERE id = :id", {"id": plan_id})
    return None if row is None else _shown(conn, row)


def shown_live_plans_on(conn: Conn, date: dt.date) -> list[Shown]:
    statement = f"{_SHOWN[conn.postgres]} WHERE date = :date AND deleted_at IS NULL ORDER BY coach_name"
    return [_shown(conn, r) for r in conn.all(statement, {"date": conn.day(date)})]


def live_plan(conn: Conn, *, coach: str, date: dt.date) -> PlanRow | None:
    row = conn.first(
        f"{_PLAN} WHERE coach_name = :coach AND date = :date AND deleted_at IS NULL",
        {"coach": coach, "date": conn.day(date)},
    )
    return None if row is None else _plan(conn, row)


def plan_by_id(conn: Conn, plan_id: int) -> PlanRow | None:
    row = conn.first(f"{_PLAN} WHERE id = :id", {"id": plan_id})
    return None if row is None else _plan(conn, row)


def live_plans_on(conn: Conn, date: dt.date) -> list[PlanRow]:
    rows = conn.all(
        f"{_PLAN} WHERE date = :date AND deleted_at IS NULL ORDER BY coach_name", {"date": conn.day(date)}
    )
    return [_plan(conn, r) for r in rows]


def find_plans(
    conn: Conn,
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
) -> list[Shown]:
    """Live plans matching every given filter, newest date first, then newest id."""
    where = ["deleted_at IS NULL"]
    params: Params = {"limit": limit}
    if coach is not None:
        where.append("coach_name = :coach")
        params["coach"] = coach
    if date_from is not None:
        where.append("date >= :date_from")
        params["date_from"] = conn.day(date_from)
    if date_to is not None:
        where.append("date <= :date_to")
        params["date_to"] = conn.day(date_to)
    if author is not None:
        where.append("lower(author) = :author")
        params["author"] = author.lower()
    if author_id is not None:
        where.append("author_id = :author_id")
        params["author_id"] = author_id
    if message_id is not None:
        where.append("source_message_id = :message_id")
        params["message_id"] = message_id
    if ticker is not None:
        where.append("id IN (SELECT plan_id FROM plan_tickers WHERE ticker = :ticker)")
        params["ticker"] = ticker
    if after is not None:
        where.append("(date < :after_date OR (date = :after_date AND id < :after_id))")
        params["after_date"], params["after_id"] = conn.day(after[0]), after[1]
    statement = (
        f"{_SHOWN[conn.postgres]} WHERE {' AND '.join(where)} ORDER BY date DESC, id DESC LIMIT :limit"
    )
    return [_shown(conn, r) for r in conn.all(statement, params)]


def _in(ids: Sequence[int]) -> tuple[str, Params]:
    """`IN (:p0, :p1, ...)` and its parameters (ids are ints we read ourselves)."""
    names = [f"p{i}" for i in range(len(ids))]
    return "(" + ", ".join(f":{n}" for n in names) + ")", dict(zip(names, ids, strict=True))


def charts_of(conn: Conn, plan_ids: Sequence[int]) -> dict[int, list[ChartRow]]:
    """The charts of each plan, in the order they were attached."""
    found: dict[int, list[ChartRow]] = defaultdict(list)
    if not plan_ids:
        return found
    if len(plan_ids) == 1:
        rows = conn.all(f"{_CHART} WHERE plan_id = :id ORDER BY chart_order", {"id": plan_ids[0]})
    else:
        ids, params = _in(plan_ids)
        rows = conn.all(f"{_CHART} WHERE plan_id IN {ids} ORDER BY plan_id, chart_order", params)
    for row in rows:
        found[row[0]].append(_chart(row[0], row[1:]))
    return found


def tickers_of(conn: Conn, plan_ids: Sequence[int]) -> dict[int, list[str]]:
    """The tickers of each plan, in the order they appear in its text."""
    found: dict[int, list[str]] = defaultdict(list)
    if not plan_ids:
        return found
    if len(plan_ids) == 1:
        statement = "SELECT plan_id, ticker FROM plan_tickers WHERE plan_id = :id ORDER BY position"
        rows = conn.all(statement, {"id": plan_ids[0]})
    else:
        ids, params = _in(plan_ids)
        statement = (
            f"SELECT plan_id, ticker FROM plan_tickers WHERE plan_id IN {ids} ORDER BY plan_id, position"
        )
        rows = conn.all(statement, params)
    for plan_id, ticker in rows:
        found[plan_id].append(ticker)
    return found


def count_live_plans(conn: Conn) -> int:
    return int(conn.scalar("SELECT count(*) FROM coach_plans WHERE deleted_at IS NULL") or 0)


def revisions_of(conn: Conn, plan_id: int) -> list[RevisionRow]:
    rows = conn.all(f"{_REVISION} WHERE plan_id = :id ORDER BY id", {"id": plan_id})
    return [_revision(conn, r) for r in rows]


def revisions_of_plans(conn: Conn, plan_ids: Sequence[int]) -> dict[int, list[RevisionRow]]:
    """Every revision of each plan, oldest first, in one statement."""
    found: dict[int, list[RevisionRow]] = {plan_id: [] for plan_id in plan_ids}
    if plan_ids:
        ids, params = _in(plan_ids)
        for row in conn.all(f"{_REVISION} WHERE plan_id IN {ids} ORDER BY id", params):
            found[row[1]].append(_revision(conn, row))
    return found


class EventRow(NamedTuple):
    """A revision as its event announces it."""

    revision_id: int
    action: RevisionAction
    plan_id: int
    coach: str
    date: dt.date
    at: dt.datetime


def revisions_after(conn: Conn, revision_id: int, *, limit: int) -> list[EventRow]:
    """Up to `limit` revisions after `revision_id`, oldest first, with their plan's coach and day."""
    rows = conn.all(
        "SELECT r.id, r.action, r.plan_id, p.coach_name, p.date, r.created_at FROM plan_revisions r"
        " JOIN coach_plans p ON p.id = r.plan_id WHERE r.id > :after ORDER BY r.id LIMIT :limit",
        {"after": revision_id, "limit": limit},
    )
    events = []
    for row in rows:
        at = conn.time_out(row[5])
        assert at is not None
        events.append(EventRow(row[0], RevisionAction(row[1]), row[2], row[3], conn.day_out(row[4]), at))
    return events


def newest_revision_id(conn: Conn) -> int | None:
    newest = conn.scalar("SELECT max(id) FROM plan_revisions")
    return None if newest is None else int(newest)


def latest_revision_id(conn: Conn, plan_id: int) -> int | None:
    latest = conn.scalar("SELECT max(id) FROM plan_revisions WHERE plan_id = :id", {"id": plan_id})
    return None if latest is None else int(latest)


def revision_of_message(
    conn: Conn,
    *,
    message_id: str,
    payload_hash: str,
    plan_id: int | None = None,
    coach: str | None = None,
    date: dt.date | None = None,
) -> RevisionRow | None:
    """The newest revision written for this Discord message with this payload, of one plan or of
    (coach, date): the write it records, if any, is the one being retried."""
    params: Params
    if plan_id is not None:
        scope, params = "plan_id = :plan_id", {"plan_id": plan_id}
    else:
        scope = "plan_id IN (SELECT id FROM coach_plans WHERE coach_name = :coach AND date = :date)"
        params = {"coach": coach, "date": conn.day(date) if date else None}
    row = conn.first(
        f"{_REVISION} WHERE message_id = :message_id AND payload_hash = :payload_hash AND {scope}"
        " ORDER BY id DESC LIMIT 1",
        {"message_id": message_id, "payload_hash": payload_hash, **params},
    )
    return None if row is None else _revision(conn, row)


def plans_deleted_by_message(conn: Conn, message_id: str) -> list[PlanRow]:
    statement = (
        f"{_PLAN} WHERE id IN (SELECT plan_id FROM plan_revisions"
        " WHERE message_id = :message_id AND action = :delete) ORDER BY id"
    )
    params = {"message_id": message_id, "delete": RevisionAction.delete}
    return [_plan(conn, r) for r in conn.all(statement, params)]


def charts_due(
    conn: Conn, *, now: dt.datetime, limit: int, exclude: Collection[int] = ()
) -> list[tuple[int, str]]:
    """(id, url) of charts waiting to be archived whose next attempt is due, oldest first."""
    params: Params = {"pending": ArchiveStatus.pending, "now": conn.time(now), "limit": limit}
    skip = ""
    if exclude:
        ids, excluded = _in(sorted(exclude))
        skip = f" AND id NOT IN {ids}"
        params.update(excluded)
    rows = conn.all(
        "SELECT id, chart_url FROM plan_charts WHERE archive_status = :pending"
        f" AND (archive_next_at IS NULL OR archive_next_at <= :now){skip} ORDER BY id LIMIT :limit",
        params,
    )
    return [(int(chart_id), str(url)) for chart_id, url in rows]


# Full-text search. Ranking looks at the newest `SEARCH_WINDOW` matching plans only (after the
# filters), so a search costs the same at a million plans as at a thousand: finding the newest
# matches walks the index from its end and stops, where ranking every match would read every
# plan holding a common word (seconds at a million plans; docs/levels.md). The score needs no
# count over the whole index either (SQLite's bm25() needs one): on PostgreSQL `ts_rank`; on
# SQLite the matched words counted (`{words}`), saturated and normalised by length like BM25
# without its inverse document frequency (every word of the query is required anyway).
# Only the page's rows get a snippet. `{where}`, `{words}` and `{page}` are filled from fixed
# fragments.
SEARCH_WINDOW = 500
_SEARCH_POSTGRES = """
    SELECT hit.id, hit.score, ts_headline('english', hit.plan_text, hit.q, :headline)
    FROM (
        SELECT * FROM (
            SELECT p.id, p.plan_text, q, ts_rank(p.plan_search, q)::float8 AS score
            FROM (
                SELECT p.id, p.plan_text, p.plan_search FROM coach_plans AS p
                WHERE p.plan_search @@ websearch_to_tsquery('english', :match) AND {where}
                ORDER BY p.id DESC LIMIT :window
            ) AS p, websearch_to_tsquery('english', :match) AS q
        ) AS ranked {page}
        ORDER BY score DESC, id DESC LIMIT :limit
    ) AS hit
    ORDER BY hit.score DESC, hit.id DESC
"""
_SEARCH_SQLITE = """
    WITH recent AS MATERIALIZED (
        SELECT p.id, lower(p.plan_text) AS text
        FROM coach_plans_fts CROSS JOIN coach_plans AS p ON p.id = coach_plans_fts.rowid
        WHERE coach_plans_fts MATCH :match AND {where}
        ORDER BY coach_plans_fts.rowid DESC LIMIT :window
    ),
    counted AS MATERIALIZED (
        SELECT id, {words} AS words, length(text) AS size FROM recent
    ),
    hit AS MATERIALIZED (
        SELECT * FROM (
            SELECT id, words * 2.2 / (words + 1.2 * (0.25 + 0.75 * size / 400.0)) AS score FROM counted
        ) {page}
        ORDER BY score DESC, id DESC LIMIT :limit
    )
    SELECT hit.id, hit.score, snippet(coach_plans_fts, 0, :mark_start, :mark_end, '…', 24)
    FROM coach_plans_fts CROSS JOIN hit ON hit.id = coach_plans_fts.rowid
    WHERE coach_plans_fts MATCH :match
        AND coach_plans_fts.rowid BETWEEN (SELECT min(id) FROM hit) AND (SELECT max(id) FROM hit)
    ORDER BY hit.score DESC, hit.id DESC
"""
_HEADLINE = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=24, MinWords=8, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)


# Each word of the query counted in a plan's lowercased text (`:word0`...): as often as it occurs,
# and at least once, since every word matched, if only in a form the index stems alike ("target"
# for "targets"). Counting with highlight() instead, which tokenizes every plan of the window
# again, cost three times as much (3 of a search's 5 ms at a million plans). Lengths are taken in
# bytes (the same count: each occurrence removed takes the word's bytes with it), which SQLite
# knows without reading the text, where counting characters reads it: a fifth of the statement.
_WORD_COUNT = (
    "max(1, (length(CAST(text AS BLOB)) - length(CAST(replace(text, :word{n}, '') AS BLOB)))"
    " / length(CAST(:word{n} AS BLOB)))"
)


# A filter keeping fewer plans than this has their id range read from the coach and date indexes
# (a few milliseconds at most) to bound the walk of the full-text index.
SEARCH_PROBE = 2_000


def _filtered_ids(conn: Conn, filters: list[str], params: Params) -> tuple[Any, Any] | None:
    """The (lowest, highest) id of the plans the coach and date filters keep ((None, None) when
    none), or None when they keep `SEARCH_PROBE` plans or more.

    The full-text index is walked from the newest plan id and the filters are checked row by row,
    so a filter keeping few plans, or only old ones, would walk the whole index (0.6 s at a million
    plans) when fewer than `SEARCH_WINDOW` of them match. Bounded by their ids, the walk covers
    those plans only. Deleted plans are counted too: the bounds stay a cover, and the probe reads
    the indexes alone."""
    found = conn.first(
        f"SELECT min(id), max(id), count(*) FROM (SELECT p.id FROM coach_plans AS p"
        f" WHERE {' AND '.join(filters)} LIMIT :probe)",
        {**params, "probe": SEARCH_PROBE},
    )
    if found is None or found[2] >= SEARCH_PROBE:
        return None
    return found[0], found[1]


def search_plans(
    conn: Conn,
    *,
    query: str,
    coach: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int,
    after: tuple[float, int] | None = None,
    window: int = SEARCH_WINDOW,
) -> list[SearchHit]:
    """Of the newest `window` live plans whose text matches `query`, the best first (then newest
    id), each with a highlighted snippet; `after` is the (score, plan id) of the last hit of the
    previous page."""
    match = postgres_query(query) if conn.postgres else fts5_query(query)
    if not match.strip():
        return []
    params: Params = {"match": match, "limit": limit, "window": window}
    chosen = []  # the coach and date filters given
    for condition, name, value in (
        ("p.coach_name = :coach", "coach", coach),
        ("p.date >= :date_from", "date_from", None if date_from is None else conn.day(date_from)),
        ("p.date <= :date_to", "date_to", None if date_to is None else conn.day(date_to)),
    ):
        if value is not None:
            chosen.append(condition)
            params[name] = value
    filters = ["p.deleted_at IS NULL", *chosen]
    if not conn.postgres and chosen:
        bounds = _filtered_ids(conn, chosen, params)
        if bounds is not None:
            if bounds[0] is None:
                return []
            filters.append("coach_plans_fts.rowid BETWEEN :low_id AND :high_id")
            params["low_id"], params["high_id"] = bounds
    page, counts = "", ""
    if after is not None:
        page = "WHERE score < :after_score OR (score = :after_score AND id < :after_id)"
        params["after_score"], params["after_id"] = after
    if conn.postgres:
        statement, params["headline"] = _SEARCH_POSTGRES, _HEADLINE
    else:
        words = fts5_words(query)
        params.update((f"word{n}", word.lower()) for n, word in enumerate(words))
        counts = " + ".join(_WORD_COUNT.format(n=n) for n in range(len(words)))
        statement = _SEARCH_SQLITE
        params["mark_start"], params["mark_end"] = MARK_START, MARK_END
    rows = conn.all(statement.format(where=" AND ".join(filters), page=page, words=counts), params)
    if not rows:
        return []
    ids, id_params = _in([row[0] for row in rows])
    statement = f"{_SHOWN[conn.postgres]} WHERE id IN {ids}"
    plans = {shown.plan.id: shown for shown in (_shown(conn, row) for row in conn.all(statement, id_params))}
    hits = []
    for plan_id, score, marked in rows:
        snippet, highlights = parse_snippet(marked)
        hits.append(SearchHit(plans[plan_id], snippet, highlights, float(score)))
    return hits


def bot_seen_since(conn: Conn, since: dt.datetime) -> bool:
    statement = "SELECT count(*) FROM bot_heartbeats WHERE connected = :yes AND last_seen_at >= :since"
    return int(conn.scalar(statement, {"yes": True, "since": conn.time(since)}) or 0) > 0


def database_identity(conn: Conn) -> str | None:
    identity = conn.scalar("SELECT id FROM database_identity")
    return None if identity is None else str(identity)


def schema_revision(conn: Conn) -> str | None:
    revision = conn.scalar("SELECT version_num FROM alembic_version")
    return None if revision is None else str(revision)


def newest_plan_id(conn: Conn) -> int | None:
    """Reads the plans' b-tree (the storage probe's cheap look at the data itself)."""
    newest = conn.scalar("SELECT max(id) FROM coach_plans")
    return None if newest is None else int(newest)


# --- writes -----------------------------------------------------------------------------------
# The two-key form: its key space is apart from `lock_coach_date`'s single (hashtext) keys.
REVISION_ORDER_LOCK: Params = {"space": 0x63700001, "key": 1}


def lock_coach_date(conn: Conn, *, coach: str, date: dt.date) -> None:
    """Serialise writers of one coach and day (SQLite already holds its write lock)."""
    if conn.postgres:
        conn.first("SELECT pg_advisory_xact_lock(hashtext(:key))", {"key": f"{coach}/{date}"})


def insert_plan(conn: Conn, values: Params) -> int:
    row = conn.first(
        "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, channel, channel_id,"
        " source_message_id, created_at, edited_at, deleted_at, plan_levels) VALUES (:coach_name, :date,"
        " :plan_text, :author, :author_id, :channel, :channel_id, :source_message_id, :created_at,"
        " NULL, NULL, :plan_levels) RETURNING id",
        {
            **values,
            "date": conn.day(values["date"]),
            "created_at": conn.time(values["created_at"]),
            "plan_levels": _json_in(values.get("plan_levels")),
        },
    )
    assert row is not None
    return int(row[0])


_UPDATABLE = (
    "plan_text",
    "plan_levels",
    "edited_at",
    "deleted_at",
    "source_message_id",
    "channel",
    "channel_id",
)


def _json_in(value: Any) -> str | None:
    """A JSON column's parameter: both drivers take the text (PostgreSQL casts it)."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def update_plan(conn: Conn, plan_id: int, *, values: Params) -> None:
    columns = [c for c in _UPDATABLE if c in values]
    params = {
        c: conn.time(values[c])
        if c.endswith("_at")
        else _json_in(values[c])
        if c == "plan_levels"
        else values[c]
        for c in columns
    }
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    conn.run(f"UPDATE coach_plans SET {assignments} WHERE id = :id", {**params, "id": plan_id})


def insert_charts(conn: Conn, plan_id: int, *, rows: Sequence[Params]) -> None:
    conn.run_many(
        "INSERT INTO plan_charts (plan_id, chart_url, chart_order, filename, content_type, size_bytes,"
        " archive_status, archive_error, archive_attempts) VALUES (:plan_id, :chart_url, :chart_order,"
        " :filename, :content_type, :size_bytes, :archive_status, :archive_error, 0)",
        [{**row, "plan_id": plan_id} for row in rows],
    )


def delete_charts(conn: Conn, plan_id: int) -> None:
    conn.run("DELETE FROM plan_charts WHERE plan_id = :id", {"id": plan_id})


def set_tickers(conn: Conn, plan_id: int, *, symbols: list[str], new: bool) -> None:
    """Tag the plan with `symbols` (in order); a new plan has none to compare with."""
    if not new:
        if tickers_of(conn, [plan_id]).get(plan_id, []) == symbols:
            return
        conn.run("DELETE FROM plan_tickers WHERE plan_id = :id", {"id": plan_id})
    conn.run_many(
        "INSERT INTO plan_tickers (plan_id, ticker, position) VALUES (:plan_id, :ticker, :position)",
        [{"plan_id": plan_id, "ticker": t, "position": i} for i, t in enumerate(symbols)],
    )


def insert_revision(conn: Conn, values: Params) -> int:
    """Record a revision; its id is the event id subscribers order and resume by.

    On PostgreSQL the id comes from a sequence at INSERT, but concurrent transactions commit in
    any order: a reader could see revision 24 before 22 commits, and a subscriber resuming after
    24 would never get 22. So every transaction takes one lock just before it takes its revision
    id and holds it until COMMIT: ids become visible in id order (SQLite has one writer already).
    Take it after every other lock of the transaction (`lock_coach_date`), or writers deadlock.
    """
    if conn.postgres:
        conn.first("SELECT pg_advisory_xact_lock(:space, :key)", REVISION_ORDER_LOCK)
    row = conn.first(
        "INSERT INTO plan_revisions (plan_id, action, plan_text, charts_json, editor, editor_id,"
        " message_id, payload_hash, created_at) VALUES (:plan_id, :action, :plan_text, :charts_json,"
        " :editor, :editor_id, :message_id, :payload_hash, :created_at) RETURNING id",
        {**values, "created_at": conn.time(values["created_at"])},
    )
    assert row is not None
    return int(row[0])


def record_archive(
    conn: Conn,
    chart_id: int,
    *,
    status: ArchiveStatus,
    error: str | None,
    retry: bool,
    now: dt.datetime,
    retry_base_seconds: float,
    max_attempts: int,
    sha256: str | None,
    content_type: str | None,
    size: int | None,
) -> ArchiveStatus | None:
    """Record one archival attempt of a chart; the status stored (None: the chart is gone).

    A retry waits `retry_base_seconds` doubled per attempt; past `max_attempts` it is a failure.
    """
    row = conn.first("SELECT archive_attempts FROM plan_charts WHERE id = :id", {"id": chart_id})
    if row is None:  # the plan's charts were replaced meanwhile
        return None
    attempts = int(row[0]) + 1
    if retry and attempts >= max_attempts:
        status = ArchiveStatus.failed
    retry_at = now + dt.timedelta(seconds=retry_base_seconds * 2 ** (attempts - 1))
    values: Params = {
        "id": chart_id,
        "attempts": attempts,
        "error": error,
        "status": status,
        "next_at": conn.time(retry_at),
    }
    assignments = "archive_attempts = :attempts, archive_error = :error, archive_status = :status"
    if status == ArchiveStatus.pending:
        assignments += ", archive_next_at = :next_at"
    if sha256 is not None:
        assignments += ", sha256 = :sha256, content_type = :content_type, size_bytes = :size"
        values.update(sha256=sha256, content_type=content_type, size=size)
    conn.run(f"UPDATE plan_charts SET {assignments} WHERE id = :id", values)
    return status


def record_heartbeat(conn: Conn, *, bot_id: str, connected: bool, mock_mode: bool, at: dt.datetime) -> None:
    values = {"bot_id": bot_id, "connected": connected, "mock_mode": mock_mode, "at": conn.time(at)}
    updated = conn.run(
        "UPDATE bot_heartbeats SET connected = :connected, mock_mode = :mock_mode, last_seen_at = :at"
        " WHERE bot_id = :bot_id",
        values,
    )
    if updated == 0:
        conn.run(
            "INSERT INTO bot_heartbeats (bot_id, connected, mock_mode, last_seen_at)"
            " VALUES (:bot_id, :connected, :mock_mode, :at)",
            values,
        )
