"""`coach-plans-api`: serve, migrate and check the configuration."""

from __future__ import annotations

import argparse
import sys

from coach_plans_api import migrate
from coach_plans_api.config import ConfigError, Settings, load_settings
from coach_plans_api.observability import configure_logging

EXIT_CONFIG = 2


def _serve(settings: Settings) -> int:
    import uvicorn

    from coach_plans_api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    return 0


def _migrate(settings: Settings) -> int:
    migrate.upgrade(settings.sqlalchemy_url)
    print(f"database at head: {settings.sqlalchemy_url.render_as_string(hide_password=True)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coach-plans-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service (API_HOST:API_PORT)")
    sub.add_parser("migrate", help="upgrade the database to the newest schema")
    sub.add_parser("check-config", help="validate the settings and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"coach-plans-api: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    print("configuration OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
