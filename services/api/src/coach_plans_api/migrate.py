"""Run the Alembic migrations from code (CLI `migrate`, tests, start-up checks)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL


def migrations_dir() -> Path:
    """`MIGRATIONS_DIR`, else the repository's `migrations/` beside this package's source."""
    configured = os.environ.get("MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        if (parent / "migrations" / "env.py").is_file():
            return parent / "migrations"
    return Path("migrations")


def alembic_config(url: URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: URL) -> None:
    """Raise if the models and the migrated database differ (`alembic check`)."""
    command.check(alembic_config(url))
