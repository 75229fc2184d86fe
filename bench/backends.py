"""The databases a bench runs on: a SQLite file, or a PostgreSQL database of this run's own."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import seed

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Named for this run, so two benches on one server never share a database.
PG_DATABASE = f"coach_plans_bench_{os.getpid()}"


@dataclass
class Backend:
    name: str
    url: str
    seed_days: Callable[[int, int], int]
    cleanup: Callable[[], None] = lambda: None


def sqlite_backend(workdir: Path, today: dt.date) -> Backend:
    path = workdir / "bench.db"
    return Backend(
        "sqlite",
        f"sqlite:///{path}",
        lambda start, stop: seed.seed_sqlite(path, today=today, start=start, stop=stop),
    )


def postgres_backend(today: dt.date) -> Backend:
    seed.create_postgres_database(PG_ADMIN_URL, PG_DATABASE)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DATABASE}"
    return Backend(
        "postgres",
        url,
        lambda start, stop: seed.seed_postgres(url, today=today, start=start, stop=stop),
        lambda: seed.drop_postgres_database(PG_ADMIN_URL, PG_DATABASE),
    )
