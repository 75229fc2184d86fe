"""`make bench` / `python -m bench [--quick] [--profile]`: the API against its baselines, same run.

Every figure is measured on this machine in this invocation, next to the baselines it is
compared with: a bare uvicorn app (the ceiling of the stack) and the old Flask server. The report
goes to stdout (one line per figure), `bench/results/latest.json` and the table in
`docs/performance.md` (`--quick`: 2 s runs and 10,000 plans, to `bench/results/quick.json.tmp`
and `bench/results/quick-table.md.tmp`, ignored by git). `--profile` runs pyinstrument on the API
under load instead. The modules: `reads`, `writes`, `client`, `capacity` measure; `load` drives
wrk; `servers`, `backends`, `seed` set up; `report` writes the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg

from bench.backends import PG_ADMIN_URL, Backend, postgres_backend, sqlite_backend
from bench.capacity import measure_replicas
from bench.client import measure_client
from bench.load import LoadError, ensure_wrk, note
from bench.plan import FULL, QUICK, Plan
from bench.profiling import profile
from bench.reads import SPREAD_KEYS, Baselines, compare_scales, measure_baselines, measure_scale
from bench.report import Report, fmt_plans, machine_info, markdown_table, summary, write_docs
from bench.servers import REPO, Server, migrate_api
from bench.writes import WRITE_CONNECTIONS, measure_bot, measure_extraction, measure_writes

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "performance.md"
PLAN_TIMEZONE = "America/New_York"  # the API's default "today"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def today_in_market() -> dt.date:
    return dt.datetime.now(ZoneInfo(PLAN_TIMEZONE)).date()


def redis_reachable(url: str) -> bool:
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=1).close()
    except OSError:
        return False
    return True


def measure_backend(
    backend: Backend, plan: Plan, workdir: Path, today: dt.date, baselines: Baselines, report: Report
) -> None:
    migrate_api(backend.url, workdir / f"migrate-{backend.name}.log")
    note(f"{backend.name}: seeding {fmt_plans(plan.small_plans)}")
    backend.seed_days(0, plan.small_days)

    def small_extras(server: Server, label: str) -> None:
        if backend.name == "sqlite":
            measure_client(server, label, today, plan, report)

    small = measure_scale(
        backend, plan.small_days, plan, workdir, today, baselines, report, after_reads=small_extras
    )
    note(f"{backend.name}: seeding up to {fmt_plans(plan.big_plans)}")
    started = time.perf_counter()
    backend.seed_days(plan.small_days, plan.big_days)
    seconds = time.perf_counter() - started
    report.add(
        f"seed {backend.name}: {fmt_plans(plan.big_plans - plan.small_plans)} (with charts, revisions,"
        f" tickers) in {seconds:.1f} s",
        name=f"seed {backend.name}",
        seconds=round(seconds, 2),
    )

    def big_extras(server: Server, label: str) -> None:
        measure_bot(server, label, plan, workdir, report)
        measure_writes(server, label, backend.name, plan, report)

    big = measure_scale(
        backend, plan.big_days, plan, workdir, today, baselines, report, after_reads=big_extras
    )
    compare_scales(backend.name, small, big, report)
    if backend.name == "postgres":
        if redis_reachable(REDIS_URL):
            measure_replicas(backend, plan.big_days, plan, workdir, today, report, REDIS_URL)
        else:
            report.not_measured("capacity two replicas", f"Redis not reachable at {REDIS_URL}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s runs and 10,000 plans: a smoke run")
    parser.add_argument("--profile", action="store_true", help="profile the API under load instead")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    try:
        ensure_wrk()
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="coach-plans-bench-"))
    today = today_in_market()
    started = time.perf_counter()
    try:
        if args.profile:
            profile(plan, workdir, today)
            return 0
        report = Report()
        busy = os.getloadavg()[0]
        if busy > 0.5:
            print(
                f"warning: load average {busy:.1f} before the bench; other work on this machine"
                " skews every figure (the API and its baselines alike, but not equally)",
                flush=True,
            )
        print(
            f"Coach Plans bench ({'quick' if plan.quick else 'full'}): wrk -t2 -c32 -d{plan.seconds:g}s"
            f" --latency over loopback; {fmt_plans(plan.small_plans)} and {fmt_plans(plan.big_plans)};"
            f" today = {today} ({PLAN_TIMEZONE})",
            flush=True,
        )
        baselines = measure_baselines(plan, workdir, today, report)
        measure_extraction(report)
        backends: list[Callable[[], Backend]] = [lambda: sqlite_backend(workdir, today)]
        if not args.no_postgres:
            backends.append(lambda: postgres_backend(today))
        else:
            report.not_measured("postgres", "skipped with --no-postgres")
        for make in backends:
            try:
                backend = make()
            except psycopg.Error as exc:
                report.not_measured("postgres", f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
                continue
            try:
                measure_backend(backend, plan, workdir, today, baselines, report)
            except (LoadError, RuntimeError, OSError, psycopg.Error, httpx.HTTPError) as exc:
                report.not_measured(f"{backend.name} runs", f"failed: {exc}")
            finally:
                backend.cleanup()
        seconds = time.perf_counter() - started
        info = machine_info(PG_ADMIN_URL)
        targets = summary(report)
        print("\nTargets:")
        for row in targets:
            missed = f" (not met: {'; '.join(row['not_met'])})" if row["not_met"] else ""
            print(f"  {row['target']}: met {row['met']} of {row['of']}{missed}")
        print(f"\nfinished in {seconds / 60:.1f} min")
        document = {
            "machine": info,
            "mode": "quick" if plan.quick else "full",
            "settings": {
                "seconds_per_run": plan.seconds,
                "threads": 2,
                "connections": 32,
                "write_connections": WRITE_CONNECTIONS,
                "small_plans": plan.small_plans,
                "big_plans": plan.big_plans,
                "spread_keys": SPREAD_KEYS,
            },
            "duration_seconds": round(seconds, 1),
            "figures": report.figures,
            "targets": targets,
        }
        out = RESULTS / ("quick.json.tmp" if plan.quick else "latest.json")  # *.tmp: ignored by git
        out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"results: {out.relative_to(REPO)}")
        table = markdown_table(report, info, seconds)
        if plan.quick:
            quick_docs = RESULTS / "quick-table.md.tmp"
            quick_docs.write_text(f"# Quick bench (smoke run, not the figures of record)\n\n{table}\n")
            print(f"table: {quick_docs.relative_to(REPO)}")
        else:
            write_docs(DOCS, table)
            print(f"table: {DOCS.relative_to(REPO)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / "coach-plans-bench-charts", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
