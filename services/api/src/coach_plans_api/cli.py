"""`coach-plans-api`: serve, migrate, back up, restore, import legacy data, simulate posts.

Every failure is one line on stderr (`coach-plans-api <command>: <what went wrong>`) and a
non-zero exit: 2 for bad settings or arguments, 1 for anything else. See docs/operations.md.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sqlite3
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

import httpx
from alembic.util.exc import CommandError
from sqlalchemy.exc import SQLAlchemyError

from coach_plans_api import maintenance, migrate
from coach_plans_api.config import ConfigError, Settings, load_settings
from coach_plans_api.errors import PlanError, first_line
from coach_plans_api.observability import configure_logging
from coach_plans_common import LogFileError

EXIT_CONFIG = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
PROG = "coach-plans-api"
# Commands that never talk to the API nor serve it, so they do not need INTERNAL_API_TOKEN.
OFFLINE_COMMANDS = frozenset({"migrate", "backup", "restore", "import-legacy"})
# What an operator command can run into: its own checks, files, the database, the network.
FAILURES = (
    maintenance.MaintenanceError,
    PlanError,
    OSError,
    ValueError,
    SQLAlchemyError,
    sqlite3.Error,
    CommandError,
    httpx.HTTPError,
)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line instead of argparse's usage block."""
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {PROG} --help)\n")


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from coach_plans_api.app import create_app

    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Event streams never end on their own; close them so in-flight requests can drain.
            core = getattr(app.state, "core", None)
            if core is not None:
                core.events.close_streams()
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # What exists now (modules, the app, its resources) lives as long as the process.
            # Frozen, it is out of the collector's sight: a full collection walked these 170,000
            # objects for 100 ms, a pause every few seconds under load that set the p99 of every
            # read (docs/performance.md); now it walks what requests left behind, about 1 ms.
            gc.collect()
            gc.freeze()

    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    Server(config).run()
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    migrate.upgrade(settings.sqlalchemy_url)
    print(f"database at head: {settings.sqlalchemy_url.render_as_string(hide_password=True)}")
    return 0


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    counts = maintenance.backup(settings.sqlalchemy_url, args.file)
    print(f"backup written to {args.file}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    counts = maintenance.restore(args.file, settings.sqlalchemy_url, force=args.force)
    print(f"restored {args.file}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


def _import_legacy(settings: Settings, args: argparse.Namespace) -> int:
    from coach_plans_api.db import Database
    from coach_plans_api.service import PlanService
    from coach_plans_api.storage import StorageMonitor

    data = maintenance.load_legacy_file(args.file)
    db = Database(settings.sqlalchemy_url)
    storage = StorageMonitor(db, bot_stale_seconds=settings.bot_stale_seconds)
    try:
        with db.engine.connect():  # reachable before the first entry
            pass
        report = maintenance.import_legacy(PlanService(db=db, settings=settings, storage=storage), data)
    finally:
        storage.close()  # its probe's own connection
        db.dispose()
    for key, reason in report.skipped.items():
        print(f"skipped {key}: {reason}")
    print(f"imported {len(report.imported)}, skipped {len(report.skipped)} of {len(data)} entries")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from coach_plans_api.service import utc_now

    today = utc_now().astimezone(settings.zone).date()
    coaches = [f"coach_{key}" for key in settings.roster]
    posted = maintenance.simulate(
        base_url=args.url or f"http://127.0.0.1:{settings.api_port}",
        token=settings.internal_api_token or "",
        coaches=coaches,
        days=args.days,
        today=today,
    )
    print(f"posted {posted} mock plans")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= maintenance.MAX_SIMULATE_DAYS:
        raise argparse.ArgumentTypeError(f"must be 1..{maintenance.MAX_SIMULATE_DAYS}")
    return value


def parser() -> argparse.ArgumentParser:
    root = Parser(prog=PROG, description=__doc__.split("\n", 1)[0])
    sub = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("serve", help="run the HTTP service (API_HOST:API_PORT)").set_defaults(run=_serve)
    sub.add_parser("migrate", help="upgrade the database to the newest schema").set_defaults(run=_migrate)
    sub.add_parser("check-config", help="validate the settings and exit").set_defaults(run=None)
    backup = sub.add_parser("backup", help="consistent copy of the live database into a new SQLite file")
    backup.add_argument("file", type=Path, help="the backup file to create (must not exist)")
    backup.set_defaults(run=_backup)
    restore = sub.add_parser("restore", help="load a backup file into the configured database")
    restore.add_argument("file", type=Path, help="a file written by `backup`")
    restore.add_argument("--force", action="store_true", help="replace the plans already there")
    restore.set_defaults(run=_restore)
    legacy = sub.add_parser("import-legacy", help="import the old server's JSON dump (idempotent)")
    legacy.add_argument("file", type=Path, help='JSON object of "coach_d_YYYY-MM-DD" keys')
    legacy.set_defaults(run=_import_legacy)
    simulate = sub.add_parser("simulate", help="post mock plans for every coach through the API")
    simulate.add_argument("--days", type=_positive, default=1, help="today and the days before it")
    simulate.add_argument("--url", help="API base URL (default: http://127.0.0.1:API_PORT)")
    simulate.set_defaults(run=_simulate)
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C at any point, reading the settings included
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(require_token=args.command not in OFFLINE_COMMANDS)
        configure_logging(settings)
    except (ConfigError, LogFileError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.run is None:
        print("configuration OK")
        return 0
    try:
        code: int = args.run(settings, args)
    except FAILURES as exc:
        print(f"{PROG} {args.command}: {first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
