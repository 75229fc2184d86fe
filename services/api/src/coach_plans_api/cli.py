"""`coach-plans-api`: serve, migrate, back up, restore, import legacy data, simulate posts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import FrameType

import httpx

from coach_plans_api import maintenance, migrate
from coach_plans_api.config import ConfigError, Settings, load_settings
from coach_plans_api.observability import configure_logging

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from coach_plans_api.app import create_app

    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Event streams never end on their own; close them so in-flight requests can drain.
            app.state.core.events.close_streams()
            super().handle_exit(sig, frame)

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

    data = maintenance.load_legacy_file(args.file)
    db = Database(settings.sqlalchemy_url)
    try:
        report = maintenance.import_legacy(PlanService(db=db, settings=settings), data)
    finally:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coach-plans-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service (API_HOST:API_PORT)").set_defaults(run=_serve)
    sub.add_parser("migrate", help="upgrade the database to the newest schema").set_defaults(run=_migrate)
    sub.add_parser("check-config", help="validate the settings and exit").set_defaults(run=None)
    backup = sub.add_parser("backup", help="consistent copy of the live database into a SQLite file")
    backup.add_argument("file", type=Path)
    backup.set_defaults(run=_backup)
    restore = sub.add_parser("restore", help="load a backup file into the configured database")
    restore.add_argument("file", type=Path)
    restore.add_argument("--force", action="store_true", help="replace the plans already there")
    restore.set_defaults(run=_restore)
    legacy = sub.add_parser("import-legacy", help="import the old server's JSON dump (idempotent)")
    legacy.add_argument("file", type=Path)
    legacy.set_defaults(run=_import_legacy)
    simulate = sub.add_parser("simulate", help="post mock plans for every coach through the API")
    simulate.add_argument("--days", type=int, default=1, help="today and the days before it")
    simulate.add_argument("--url", help="API base URL (default: http://127.0.0.1:API_PORT)")
    simulate.set_defaults(run=_simulate)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"coach-plans-api: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    if args.run is None:
        print("configuration OK")
        return 0
    try:
        code: int = args.run(settings, args)
    except (OSError, RuntimeError, ValueError, httpx.HTTPError) as exc:
        print(f"coach-plans-api {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
