"""Bulk seeding of plans straight into a migrated database (SQLite executemany, PostgreSQL COPY).

Plans are coaches d/i/s/n x consecutive days going back from today (index 0 = today), each with
one chart, a `create` revision and two ticker rows, exactly the rows the API itself writes. Ids
are derived from (day index, coach), so a database seeded with 100 plans can be topped up to
1,000,000 later without touching the first rows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import psycopg

from coach_plans_api.levels import extract_levels, levels_to_json
from coach_plans_api.tickers import DEFAULT_WATCHLIST, parse_watchlist

COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")
AUTHOR_ID = "900000000000000001"
CREATED_AT = dt.datetime(2026, 1, 2, 14, 30, tzinfo=dt.UTC)
# Seeded plans are old: the chart archiver has been through them already (their host is not
# an allowed Discord host, so it skipped them). Left "pending", the archiver would spend the
# whole bench walking a million charts in the background. Set only where the column exists.
ARCHIVE_COLUMN = "archive_status"
ARCHIVE_DONE = "skipped"
PAYLOAD_HASH = "0" * 64  # never matches a real write, so a bench PUT is never taken for a retry
PLAN_TEXT = (
    "{coach} plan for {day}: NVDA long above 950 (reclaim of yesterday's high), targets 968 and "
    "985, stop 938 under the VWAP shelf. AMD: watch the 165 breakout on volume; fade below 158."
)


def plan_id(day_index: int, coach_index: int) -> int:
    return day_index * len(COACHES) + coach_index + 1


def day_of(today: dt.date, day_index: int) -> dt.date:
    return today - dt.timedelta(days=day_index)


def chart_url(coach: str, day: dt.date) -> str:
    return f"https://cdn.example.com/charts/{coach}_{day.isoformat()}.png"


def plan_text(coach: str, day: dt.date) -> str:
    return PLAN_TEXT.format(coach=coach, day=day.isoformat())


@cache
def levels_json() -> str:
    """The levels the API stores with each seeded plan (the same for all: coach names and dates
    have one length, so the spans match too). Without them every read would extract them again."""
    text = plan_text(COACHES[0], CREATED_AT.date())
    return json.dumps(levels_to_json(extract_levels(text, parse_watchlist(DEFAULT_WATCHLIST))))


def charts_json(coach: str, day: dt.date) -> str:
    """The revision's chart list, in the same JSON the API writes."""
    return (
        f'[{{"url": "{chart_url(coach, day)}", "order": 0, "filename": "chart.png", '
        '"content_type": "image/png", "size_bytes": 123456}]'
    )


def _rows(today: dt.date, start: int, stop: int) -> Iterator[tuple[int, str, dt.date]]:
    for day_index in range(start, stop):
        day = day_of(today, day_index)
        for coach_index, coach in enumerate(COACHES):
            yield plan_id(day_index, coach_index), coach, day


def seed_sqlite(path: Path, *, today: dt.date, start: int, stop: int) -> int:
    """Insert days [start, stop) for every coach in one transaction; return plans inserted."""
    created = CREATED_AT.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores it in SQLite
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")  # seeding only; the API opens its own connections
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO coach_plans (id, coach_name, date, plan_text, author, author_id, channel,"
            " channel_id, source_message_id, created_at, plan_levels) VALUES (?, ?, ?, ?, 'Dan', ?,"
            " 'trading-plans', '777', ?, ?, ?)",
            (
                (
                    pid,
                    coach,
                    day.isoformat(),
                    plan_text(coach, day),
                    AUTHOR_ID,
                    str(10**17 + pid),
                    created,
                    levels_json(),
                )
                for pid, coach, day in _rows(today, start, stop)
            ),
        )
        columns = {row[1] for row in conn.execute("PRAGMA table_info(plan_charts)")}
        archived = ARCHIVE_COLUMN in columns
        conn.executemany(
            "INSERT INTO plan_charts (id, plan_id, chart_url, chart_order, filename, content_type,"  # noqa: S608 - fixed names
            f" size_bytes{', ' + ARCHIVE_COLUMN if archived else ''}) VALUES (?, ?, ?, 0,"
            f" 'chart.png', 'image/png', 123456{', ' + repr(ARCHIVE_DONE) if archived else ''})",
            ((pid, pid, chart_url(coach, day)) for pid, coach, day in _rows(today, start, stop)),
        )
        conn.executemany(
            "INSERT INTO plan_tickers (plan_id, ticker, position) VALUES (?, ?, ?)",
            (row for pid, _, _ in _rows(today, start, stop) for row in ((pid, "NVDA", 0), (pid, "AMD", 1))),
        )
        conn.executemany(
            "INSERT INTO plan_revisions (id, plan_id, action, plan_text, charts_json, editor,"
            " editor_id, message_id, payload_hash, created_at) VALUES (?, ?, 'create', ?, ?,"
            " 'Dan', ?, ?, ?, ?)",
            (
                (
                    pid,
                    pid,
                    plan_text(coach, day),
                    charts_json(coach, day),
                    AUTHOR_ID,
                    str(10**17 + pid),
                    PAYLOAD_HASH,
                    created,
                )
                for pid, coach, day in _rows(today, start, stop)
            ),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return (stop - start) * len(COACHES)


def _copy(cur: psycopg.Cursor[tuple[object, ...]], statement: str, lines: Iterator[str]) -> None:
    """COPY in text format, fed in ~1 MB chunks (the seeded values hold no tabs or backslashes)."""
    with cur.copy(statement) as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            if buffer.tell() > 1 << 20:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def seed_postgres(url: str, *, today: dt.date, start: int, stop: int) -> int:
    """COPY days [start, stop) for every coach in one transaction; return plans inserted."""
    created = CREATED_AT.isoformat()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        _copy(
            cur,
            "COPY coach_plans (id, coach_name, date, plan_text, author, author_id, channel,"
            " channel_id, source_message_id, created_at, plan_levels) FROM STDIN",
            (
                f"{pid}\t{coach}\t{day.isoformat()}\t{plan_text(coach, day)}\tDan\t{AUTHOR_ID}\t"
                f"trading-plans\t777\t{10**17 + pid}\t{created}\t{levels_json()}\n"
                for pid, coach, day in _rows(today, start, stop)
            ),
        )
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'plan_charts' AND column_name = %s",
            (ARCHIVE_COLUMN,),
        )
        archived = cur.fetchone() is not None
        _copy(
            cur,
            "COPY plan_charts (id, plan_id, chart_url, chart_order, filename, content_type,"
            f" size_bytes{', ' + ARCHIVE_COLUMN if archived else ''}) FROM STDIN",
            (
                f"{pid}\t{pid}\t{chart_url(coach, day)}\t0\tchart.png\timage/png\t123456"
                f"{chr(9) + ARCHIVE_DONE if archived else ''}\n"
                for pid, coach, day in _rows(today, start, stop)
            ),
        )
        _copy(
            cur,
            "COPY plan_tickers (plan_id, ticker, position) FROM STDIN",
            (f"{pid}\tNVDA\t0\n{pid}\tAMD\t1\n" for pid, _, _ in _rows(today, start, stop)),
        )
        _copy(
            cur,
            "COPY plan_revisions (id, plan_id, action, plan_text, charts_json, editor, editor_id,"
            " message_id, payload_hash, created_at) FROM STDIN",
            (
                f"{pid}\t{pid}\tcreate\t{plan_text(coach, day)}\t{charts_json(coach, day)}\tDan\t"
                f"{AUTHOR_ID}\t{10**17 + pid}\t{PAYLOAD_HASH}\t{created}\n"
                for pid, coach, day in _rows(today, start, stop)
            ),
        )
        # Rows came with explicit ids: move the sequences past them so the API's inserts work.
        for table in ("coach_plans", "plan_charts", "plan_revisions"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 - fixed names
                f" (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        cur.execute("ANALYZE")
    return (stop - start) * len(COACHES)


def create_postgres_database(admin_url: str, name: str) -> None:
    """A fresh, empty database `name` (dropped first if a previous run left it)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_postgres_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
