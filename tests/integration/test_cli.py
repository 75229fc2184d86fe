"""The API's command line: backup during writes, restore, legacy import, simulated posts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from coach_plans_api import maintenance
from coach_plans_api.cli import main
from tests.conftest import INTERNAL_TOKEN, REPO, ServiceProcess, plan_body, run_in_process

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
LEGACY = REPO / "tests" / "data" / "legacy_plans.json"


def cli(database_url: str, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "INTERNAL_API_TOKEN": INTERNAL_TOKEN}
    env.pop("CONFIG_FILE", None)
    env.pop("MOCK_MODE", None)
    if not token:
        env.pop("INTERNAL_API_TOKEN")
    return run_in_process(main, list(args), env)


def test_backup_during_writes_restores_every_acknowledged_write(
    start_api: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    api = start_api(db_url)
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=api.url, headers=AUTH) as client:
            n = 0
            while not stop.is_set() and n < 2000:
                day = f"2026-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}"
                coach = "disn"[n // 336 % 4]
                response = client.put(
                    f"/internal/plans/{coach}/{day}",
                    json=plan_body(text=f"write {n}", message_id=str(10_000 + n)),
                )
                if response.status_code in (200, 201):
                    acknowledged.append(response.json()["id"])
                n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 50:
        thread.join(0.05)
    before_backup = set(acknowledged)
    result = cli(db_url, "backup", str(tmp_path / "backup.db"))
    stop.set()
    thread.join()
    assert result.returncode == 0, result.stderr
    assert "backup written" in result.stdout
    assert len(acknowledged) > len(before_backup), "writes should go on while the backup runs"

    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    restored = cli(restored_url, "restore", str(tmp_path / "backup.db"))
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(tmp_path / "restored.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = {row[0] for row in conn.execute("SELECT id FROM coach_plans")}
        revisions = conn.execute("SELECT COUNT(*) FROM plan_revisions").fetchone()[0]
    assert before_backup <= ids
    assert revisions >= len(ids)


def test_restore_refuses_a_database_with_plans(tmp_path: Path, sqlite_template: Path) -> None:
    source = tmp_path / "a.db"
    source.write_bytes(sqlite_template.read_bytes())
    with sqlite3.connect(source) as conn:
        conn.execute(
            "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, created_at)"
            " VALUES ('coach_d', '2026-11-25', 't', 'a', '1', '2026-11-25 10:00:00')"
        )
    maintenance.backup(make_url(f"sqlite:///{source}"), tmp_path / "b.db")
    refused = cli(f"sqlite:///{source}", "restore", str(tmp_path / "b.db"))
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert cli(f"sqlite:///{source}", "restore", "--force", str(tmp_path / "b.db")).returncode == 0
    assert cli(f"sqlite:///{source}", "backup", str(tmp_path / "b.db")).returncode == 1  # never overwrites
    assert cli(f"sqlite:///{source}", "restore", str(tmp_path / "missing.db")).returncode == 1


def test_import_legacy_twice(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "plans.db"
    db.write_bytes(sqlite_template.read_bytes())
    first = cli(f"sqlite:///{db}", "import-legacy", str(LEGACY))
    assert first.returncode == 0, first.stderr
    assert "imported 4, skipped 3 of 7 entries" in first.stdout
    assert "skipped coach_x_2024-05-13: unknown coach" in first.stdout
    assert "skipped coach_d_2024-02-30: invalid date" in first.stdout
    assert "skipped coach_d_2024-05-14: plan_text" in first.stdout
    second = cli(f"sqlite:///{db}", "import-legacy", str(LEGACY))
    assert "imported 0, skipped 7 of 7 entries" in second.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT coach_name, date, plan_text, author FROM coach_plans ORDER BY id"
        ).fetchall()
        charts = conn.execute("SELECT chart_url FROM plan_charts").fetchall()
        levels = dict(conn.execute("SELECT date, plan_levels FROM coach_plans WHERE coach_name = 'coach_d'"))
    assert len(rows) == 4
    assert ("coach_d", "2024-05-10", "NVDA above 950, add on reclaim of 960", "Dan") in rows
    assert ("coach_n", "2024-05-13", "Macro: 10y above 4.5 is risk-off", "legacy import") in rows
    assert charts == [("https://cdn.discordapp.com/attachments/1/2/nvda.png",)]
    # Imported plans get their levels like any write (the importer writes through the service).
    assert json.loads(levels["2024-05-10"])[0]["ticker"] == "NVDA"
    assert [lv["value"] for lv in json.loads(levels["2024-05-10"])[0]["levels"]] == [950.0, 960.0]


def test_import_rejects_a_non_object_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = cli(f"sqlite:///{tmp_path / 'x.db'}", "import-legacy", str(bad))
    assert result.returncode == 1
    assert "expected a JSON object" in result.stderr


def test_simulate_posts_every_coach_through_the_api(
    start_api: Callable[..., ServiceProcess],
) -> None:
    api = start_api()
    result = cli(api.env["DATABASE_URL"], "simulate", "--days", "2", "--url", api.url)
    assert result.returncode == 0, result.stderr
    assert "posted 8 mock plans" in result.stdout
    items = httpx.get(f"{api.url}/api/v1/plans").json()["items"]
    assert sorted({p["coach"] for p in items}) == ["coach_d", "coach_i", "coach_n", "coach_s"]
    # Text only: no chart URL that would never load (a broken image on the dashboard).
    assert all("$" in p["plan"] and p["charts"] == [] for p in items)


def test_simulate_against_an_unreachable_api_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(f"sqlite:///{tmp_path / 'x.db'}", "simulate", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "coach-plans-api simulate: cannot reach the API at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_backup_from_postgresql(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    url = make_url(postgres_url)
    source = tmp_path / "seed.db"
    seed_url = make_url(f"sqlite:///{source}")
    from coach_plans_api import migrate

    migrate.upgrade(seed_url)
    with sqlite3.connect(source) as conn:
        conn.execute(
            "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, created_at)"
            " VALUES ('coach_d', '2026-11-25', 'pg', 'a', '1', '2026-11-25 10:00:00')"
        )
    maintenance.backup(seed_url, tmp_path / "seed-backup.db")
    maintenance.restore(tmp_path / "seed-backup.db", url)
    counts = maintenance.backup(url, tmp_path / "pg-backup.db")
    assert counts["coach_plans"] == 1
    engine = create_engine(url)
    with engine.begin() as conn:  # the sequence moved past the restored ids
        new_id = conn.execute(
            text(
                "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id,"
                " created_at) VALUES ('coach_i', '2026-11-25', 'x', 'a', '1', now())"
                " RETURNING id"
            )
        ).scalar()
    engine.dispose()
    assert new_id == 2


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The command failed with `code` and said why in exactly one line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path, sqlite_template: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    assert "is not a Coach Plans backup" in one_line_error(cli(target, "restore", str(text)))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE things (id INTEGER)")
    assert "no bot_heartbeats, coach_plans" in one_line_error(cli(target, "restore", str(other)))
    assert "no backup at" in one_line_error(cli(target, "restore", str(tmp_path / "missing.db")))
    assert not (tmp_path / "missing.db").exists()  # checking a path never creates a file there


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("UPDATE coach_plans SET plan_levels = '[{' WHERE plan_text = 'second'", "Expecting property name"),
        ("UPDATE coach_plans SET plan_text = CAST(x'ff' AS TEXT) WHERE plan_text = 'second'", "UTF-8"),
        ("UPDATE coach_plans SET created_at = 'yesterday' WHERE plan_text = 'second'", "yesterday"),
    ],
    ids=["levels not JSON", "text not UTF-8", "time not a time"],
)
def test_restore_of_a_backup_with_a_row_it_cannot_read_leaves_the_database_as_it_was(
    tmp_path: Path, sqlite_template: Path, damage: str, reason: str
) -> None:
    """The integrity check passes such a file (SQLite does not look inside values); the copy
    finds the row, and the emptying of the target is undone with it."""
    target = tmp_path / "target.db"
    target.write_bytes(sqlite_template.read_bytes())
    with sqlite3.connect(target) as conn:
        for day, text in (("2026-11-24", "first"), ("2026-11-25", "second")):
            conn.execute(
                "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, created_at,"
                " plan_levels) VALUES ('coach_d', ?, ?, 'a', '1', '2026-11-25 10:00:00', '[]')",
                (day, text),
            )
    backup = tmp_path / "backup.db"
    maintenance.backup(make_url(f"sqlite:///{target}"), backup)
    with sqlite3.connect(backup) as conn:
        conn.execute(damage)
    assert maintenance.integrity_check(backup) == "ok"
    with sqlite3.connect(target) as conn:
        conn.execute("DELETE FROM coach_plans WHERE plan_text = 'first'")  # the target differs from it
    result = cli(f"sqlite:///{target}", "restore", "--force", str(backup))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the migration's log lines
    assert f"{backup} is damaged (a row of coach_plans cannot be read: " in line
    assert reason in line
    assert line.endswith("the database was left as it was")
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT plan_text FROM coach_plans").fetchall() == [("second",)]


def test_import_legacy_bad_files_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    broken = tmp_path / "broken.json"
    broken.write_text('{"coach_d_2024-05-10": ')
    assert "is not JSON" in one_line_error(cli(url, "import-legacy", str(broken)))
    assert "no file at" in one_line_error(cli(url, "import-legacy", str(tmp_path / "none.json")))


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql://coach:hunter2@127.0.0.1:1/plans"
    for args in (("migrate",), ("backup", str(tmp_path / "b.db")), ("import-legacy", str(LEGACY))):
        line = one_line_error(cli(url, *args))
        assert line.startswith(f"coach-plans-api {args[0]}: ")
        assert "hunter2" not in line


@pytest.mark.parametrize(
    "args",
    [("backup",), ("simulate", "--days", "0"), ("simulate", "--days", "many"), ("frobnicate",), ()],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    line = one_line_error(cli(f"sqlite:///{tmp_path / 'x.db'}", *args), code=2)
    assert line.startswith("coach-plans-api")


def test_offline_commands_need_no_internal_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    assert cli(url, "migrate", token=False).returncode == 0
    imported = cli(url, "import-legacy", str(LEGACY), token=False)
    assert imported.returncode == 0, imported.stderr
    backup = cli(url, "backup", str(tmp_path / "b.db"), token=False)
    assert backup.returncode == 0, backup.stderr
    restored = cli(f"sqlite:///{tmp_path / 'copy.db'}", "restore", str(tmp_path / "b.db"), token=False)
    assert restored.returncode == 0, restored.stderr
    for needs_token in (("simulate",), ("check-config",), ("serve",)):
        refused = cli(url, *needs_token, token=False)
        assert refused.returncode == 2
        assert "INTERNAL_API_TOKEN" in refused.stderr


def test_import_legacy_keeps_the_old_timestamp(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "plans.db"
    db.write_bytes(sqlite_template.read_bytes())
    assert cli(f"sqlite:///{db}", "import-legacy", str(LEGACY)).returncode == 0
    with sqlite3.connect(db) as conn:
        created = conn.execute(
            "SELECT created_at FROM coach_plans WHERE coach_name = 'coach_d' AND date = '2024-05-10'"
        ).fetchone()[0]
        revised = conn.execute("SELECT created_at FROM plan_revisions WHERE plan_id = 1").fetchone()[0]
    assert created.startswith("2024-05-10 13:05:00")
    assert revised.startswith("2024-05-10 13:05:00")


def test_import_legacy_times_at_the_calendar_edges(tmp_path: Path, sqlite_template: Path) -> None:
    """A time outside years 1-9999 in UTC is listed with its reason (it was a traceback that ended
    the import); a time before year 1000 is stored so that it reads back (it was written "999-…",
    which made every read of that day a 500)."""
    db = tmp_path / "plans.db"
    db.write_bytes(sqlite_template.read_bytes())
    legacy = tmp_path / "legacy.json"
    legacy.write_text(
        json.dumps(
            {
                "coach_d_2024-05-10": {"plan": "late", "timestamp": "9999-12-31T23:00:00-05:00"},
                "coach_i_2024-05-10": {"plan": "early", "timestamp": "0001-01-01T01:00:00+05:00"},
                "coach_s_2024-05-10": {"plan": "old", "timestamp": "0999-05-10T08:00:00Z"},
            }
        )
    )
    result = cli(f"sqlite:///{db}", "import-legacy", str(legacy))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "not a time between the years 1 and 9999 in UTC" in result.stdout
    assert "imported 1, skipped 2 of 3 entries" in result.stdout
    with sqlite3.connect(db) as conn:
        [(created,)] = conn.execute("SELECT created_at FROM coach_plans").fetchall()
    assert created == "0999-05-10 08:00:00.000000"


def test_file_names_that_look_like_url_syntax_are_the_files_named(tmp_path: Path) -> None:
    """A "%20" or "?" in DATABASE_PATH or in a backup's or restore's file name is part of the name: they
    were pasted into a URL, so "r%20x.db" restored the plans of another file, "r x.db"."""

    def run(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_PATH": str(database), "LOG_LEVEL": "WARNING"}
        for name in ("DATABASE_URL", "CONFIG_FILE", "MOCK_MODE", "INTERNAL_API_TOKEN"):
            env.pop(name, None)
        return run_in_process(main, list(args), env)

    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"coach_d_2024-05-10": "plan A"}))
    live = tmp_path / "x%20y?mode=ro.db"
    assert run(live, "migrate").returncode == 0
    decoy = tmp_path / "r x.db"  # what "r%20x.db" meant as a URL: another database, empty
    shutil.copy(live, decoy)
    assert run(live, "import-legacy", str(legacy)).returncode == 0
    backup = tmp_path / "r%20x.db"
    assert run(live, "backup", str(backup)).returncode == 0
    fresh = tmp_path / "fresh.db"
    restored = run(fresh, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    with contextlib.closing(sqlite3.connect(fresh)) as conn:
        assert conn.execute("SELECT plan_text FROM coach_plans").fetchall() == [("plan A",)]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted(
        ["x%20y?mode=ro.db", "r%20x.db", "r x.db", "fresh.db"]
    )
