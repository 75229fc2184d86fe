"""Operations behind the CLI: online backup, restore, legacy import and simulated posts."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Table, func, insert, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from coach_plans_api import migrate
from coach_plans_api.db import make_engine
from coach_plans_api.errors import PlanError, StorageUnavailable, first_line
from coach_plans_api.models import Base
from coach_plans_api.schemas import PlanPut
from coach_plans_api.service import PlanService

MAX_SIMULATE_DAYS = 366


class MaintenanceError(Exception):
    """An operator command cannot go on; the message says why in one line."""


# Parents before children, so foreign keys hold while rows are copied.
TABLES = ("coach_plans", "plan_charts", "plan_tickers", "plan_revisions", "bot_heartbeats")
BATCH = 5_000


def _tables() -> list[Table]:
    return [Base.metadata.tables[name] for name in TABLES]


def _rows(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    result = conn.execute(select(table).order_by(*table.primary_key.columns))
    while True:
        try:
            batch = result.fetchmany(BATCH)
        except (ValueError, DBAPIError) as exc:  # a stored value that is not JSON, text or a time
            raise MaintenanceError(f"a row of {table.name} cannot be read: {first_line(exc)}") from None
        if not batch:
            return
        yield [dict(row._mapping) for row in batch]


def copy_database(*, source: Engine, target: Engine, replace: bool = False) -> dict[str, int]:
    """Copy every row from one snapshot of `source` into the migrated `target`, in one
    transaction: `replace` empties it first, and a copy that fails leaves it as it was."""
    counts: dict[str, int] = {}
    snapshot = (
        source.execution_options(isolation_level="REPEATABLE READ")
        if source.dialect.name == "postgresql"
        else source
    )
    with snapshot.connect() as src, target.begin() as dst:
        if src.dialect.name == "sqlite":
            # One read transaction: every table is read from the same WAL snapshot.
            src.exec_driver_sql("SELECT 1 FROM coach_plans LIMIT 1").all()
        for table in reversed(_tables()) if replace else ():
            dst.execute(table.delete())
        for table in _tables():
            counts[table.name] = 0
            for batch in _rows(src, table):
                dst.execute(insert(table), batch)
                counts[table.name] += len(batch)
        if dst.dialect.name == "postgresql":
            for name in ("coach_plans", "plan_charts", "plan_revisions"):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - fixed names
                        f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                    )
                )
    return counts


def integrity_check(path: Path) -> str:
    # Read-only: checking a file must never create or change it.
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def check_backup_file(path: Path) -> None:
    """Refuse anything but an intact SQLite file holding the plan tables."""
    if not path.is_file():
        raise MaintenanceError(f"no backup at {path}")
    try:
        check = integrity_check(path)
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise MaintenanceError(f"{path} is not a Coach Plans backup ({exc})") from None
    if check != "ok":
        raise MaintenanceError(f"{path} is damaged (integrity check: {check.splitlines()[0]})")
    missing = sorted(set(TABLES) - tables)
    if missing:
        raise MaintenanceError(f"{path} is not a Coach Plans backup (no {', '.join(missing)} table)")


def backup(url: URL, destination: Path) -> dict[str, int]:
    """Write a consistent SQLite copy of the live database while it keeps serving."""
    if destination.exists():
        raise MaintenanceError(f"{destination} exists; choose a new file")
    source = make_engine(url)
    try:
        with source.connect():  # reachable before anything is written
            pass
        destination.parent.mkdir(parents=True, exist_ok=True)
        target_url = URL.create("sqlite", database=str(destination))
        migrate.upgrade(target_url)
        target = make_engine(target_url)
        try:
            counts = copy_database(source=source, target=target)
        finally:
            target.dispose()
        check = integrity_check(destination)
    except BaseException:
        for suffix in ("", "-wal", "-shm", "-journal"):  # never leave half a backup behind
            Path(f"{destination}{suffix}").unlink(missing_ok=True)
        raise
    finally:
        source.dispose()
    if check != "ok":
        raise MaintenanceError(f"backup failed its integrity check: {check}")
    return counts


def restore(backup_file: Path, url: URL, *, force: bool = False) -> dict[str, int]:
    """Load a backup into the database at `url` (migrated first); refuses a non-empty one."""
    check_backup_file(backup_file)
    migrate.upgrade(url)
    source, target = make_engine(URL.create("sqlite", database=str(backup_file))), make_engine(url)
    try:
        with target.connect() as conn:
            existing = conn.scalar(select(func.count()).select_from(Base.metadata.tables["coach_plans"]))
        if existing and not force:
            raise MaintenanceError(f"the target holds {existing} plans; pass --force to replace them")
        try:
            return copy_database(source=source, target=target, replace=True)
        except MaintenanceError as exc:
            kept = "the database was left as it was"
            raise MaintenanceError(f"{backup_file} is damaged ({exc}); {kept}") from None
    finally:
        source.dispose()
        target.dispose()


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def legacy_message_id(key: str) -> str:
    """A stable pseudo message id per legacy key, so re-running an import is a no-op."""
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))


def legacy_timestamp(raw: object) -> dt.datetime | None:
    """The old server's `timestamp` (ISO 8601; without an offset it is read as UTC)."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError("not an ISO 8601 time")
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("not an ISO 8601 time") from None
    try:
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except OverflowError:  # "0001-01-01T01:00:00+05:00" is in year 0 in UTC
        raise ValueError("not a time between the years 1 and 9999 in UTC") from None


def fixed_clock(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def import_legacy(service: PlanService, data: dict[str, Any]) -> ImportReport:
    """Import the old server's dict (`coach_d_2024-05-10` -> plan); existing plans are kept,
    and so is each plan's original `timestamp` (its created time)."""
    report = ImportReport()
    for key, entry in sorted(data.items()):
        try:
            coach_key, _, day = key.rpartition("_")
            coach, date = service.coach(coach_key), service.given_day(day)
            if not isinstance(entry, dict):
                entry = {"plan": entry}
            if service.find(coach=coach, date_from=date, date_to=date, limit=1).items:
                report.skipped[key] = "a plan for that coach and date exists"
                continue
            body = PlanPut.model_validate(
                {
                    "plan_text": entry.get("plan") or entry.get("plan_text") or "",
                    "charts": [{"url": u} for u in entry.get("charts") or []],
                    "actor": {
                        "user_id": "0",
                        "display_name": str(entry.get("author") or "legacy import")[:100],
                    },
                    "message_id": legacy_message_id(key),
                    "channel": entry.get("channel"),
                }
            )
            try:
                posted_at = legacy_timestamp(entry.get("timestamp"))
            except ValueError as exc:
                report.skipped[key] = f"timestamp {entry.get('timestamp')!r}: {exc}"
                continue
            writer = service
            if posted_at is not None:  # the same rules, with the clock set to when it was posted
                writer = PlanService(
                    db=service.db,
                    settings=service.settings,
                    now=fixed_clock(posted_at),
                    storage=service.storage,
                )
            writer.put_plan(coach=coach, date=date, body=body)
            report.imported.append(key)
        except StorageUnavailable:
            raise  # not this entry's fault: stop rather than skip every entry after it
        except PlanError as exc:
            report.skipped[key] = exc.detail
        except ValidationError as exc:
            report.skipped[key] = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
    return report


TICKERS = ("NVDA", "AAPL", "MSFT", "TSLA", "AMD", "META", "SPY", "QQQ")


def mock_plan_text(coach: str, rng: random.Random) -> str:
    ticker, other = rng.choice(TICKERS), rng.choice(TICKERS)
    level = rng.randrange(100, 1000)
    stop, target = level - rng.randrange(5, 25), level + rng.randrange(10, 40)
    return (
        f"{coach.upper()} plan: ${ticker} long above {level} with a stop at {stop}; "
        f"trim into {target}. Watching ${other} for a range break."
    )


def simulate(
    *,
    base_url: str,
    token: str,
    coaches: list[str],
    days: int,
    today: dt.date,
    http: httpx.Client | None = None,
    seed: int = 7,
    echo: Callable[[str], None] = print,
) -> int:
    """Post realistic mock plans (text only, no charts) through the internal endpoints, like the bot."""
    rng = random.Random(seed)
    client = http or httpx.Client(base_url=base_url, timeout=10)
    posted = 0
    try:
        for back in range(days):
            day = today - dt.timedelta(days=back)
            for coach in coaches:
                body = {
                    "plan_text": mock_plan_text(coach, rng),
                    # Text only: a one-shot command has nothing to serve pictures from, and a chart
                    # URL that never loads is a broken image on the dashboard. The mock bot posts
                    # real pictures (it serves them itself).
                    "charts": [],
                    "actor": {"user_id": "1", "display_name": "Mock Coach", "is_admin": True},
                    "message_id": legacy_message_id(f"simulate/{coach}/{day}"),
                    "channel": "mock-plans",
                }
                try:
                    response = client.put(
                        f"/internal/plans/{coach}/{day}",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError as exc:
                    raise MaintenanceError(f"cannot reach the API at {base_url}: {exc}") from None
                if not response.is_success:
                    raise MaintenanceError(
                        f"the API answered {response.status_code} for {coach} {day}: {response.text[:200]}"
                    )
                echo(f"{coach} {day}: plan {response.json()['id']} ({response.status_code})")
                posted += 1
    finally:
        if http is None:
            client.close()
    return posted


def load_legacy_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaintenanceError(f"no file at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaintenanceError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MaintenanceError(f"{path}: expected a JSON object of coach_x_YYYY-MM-DD keys")
    return data
