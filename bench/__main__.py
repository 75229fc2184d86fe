"""`make bench` / `python -m bench [--quick] [--profile]`: the API against its baselines, same run.

Every figure is measured on this machine in this invocation, next to the baselines it is
compared with: a bare uvicorn app (the ceiling of the stack) and the old Flask server. The report
goes to stdout (one line per figure), `bench/results/latest.json` and the table in
`docs/performance.md`. `--quick` (2 s runs, 10,000 plans) is a smoke run and writes only
`bench/results/quick.json.tmp`. `--profile` runs pyinstrument on the API under load instead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from bench import seed
from bench.load import (
    PACED_LUA,
    PUT_LUA,
    SPREAD_LUA,
    LoadError,
    LoadResult,
    ensure_wrk,
    note,
    paced_pause_ms,
    run_wrk,
    write_paths,
    wrk_version,
)
from bench.servers import INTERNAL_TOKEN, REPO, Server, migrate_api, start_api, start_baseline

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "performance.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "coach_plans_bench"
PLAN_TIMEZONE = "America/New_York"  # the API's default "today"
PACED_CONNECTIONS = 32
WRITE_CONNECTIONS = 8
SPREAD_KEYS = 1000
WRITE_FIRST_YEAR = "1000"
BOT_FIRST_DAY = dt.date(1200, 1, 1)

# Targets of the issue; reported as met / not met, never asserted.
FLASK_FACTOR = 1.5
BARE_SHARE = 0.70
PACED_P99_MS = 10.0
SCALE_FACTOR = 1.5
CACHED_CLIENT_US = 5.0
BOT_P99_MS = 20.0
TIMES = "\u00d7"  # the multiplication sign of the report lines


@dataclass(frozen=True)
class Plan:
    """What this run measures, full or quick."""

    quick: bool
    seconds: float
    big_days: int  # days per coach in the large runs (x 4 coaches)
    small_days: int = 25
    bot_posts: int = 300
    cached_calls: int = 100_000
    uncached_calls: int = 2_000

    @property
    def big_plans(self) -> int:
        return self.big_days * len(seed.COACHES)

    @property
    def small_plans(self) -> int:
        return self.small_days * len(seed.COACHES)


FULL = Plan(quick=False, seconds=5, big_days=250_000)
QUICK = Plan(quick=True, seconds=2, big_days=2_500, bot_posts=50, cached_calls=20_000, uncached_calls=300)


@dataclass
class Report:
    """Figures in the order measured; each is printed as soon as it exists."""

    figures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: str, **data: Any) -> dict[str, Any]:
        figure = {"line": line, **data}
        self.figures.append(figure)
        print(line, flush=True)
        return figure

    def not_measured(self, name: str, reason: str) -> None:
        self.add(f"{name}: not measured: {reason}", name=name, not_measured=reason)


def fmt_rps(value: float) -> str:
    return f"{value:,.0f} rps"


def fmt_plans(count: int) -> str:
    return f"{count:,} plans"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def load_json(result: LoadResult) -> dict[str, Any]:
    return result.as_json()


def describe(result: LoadResult) -> str:
    errors = f"  errors {result.errors:,}" if result.errors else ""
    return f"{fmt_rps(result.rps)}  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms{errors}"


@dataclass
class Baselines:
    bare: LoadResult | None = None
    fastapi: LoadResult | None = None
    flask: dict[str, LoadResult] = field(default_factory=dict)


def today_in_market() -> dt.date:
    return dt.datetime.now(ZoneInfo(PLAN_TIMEZONE)).date()


def legacy_path(coach: str, day: dt.date) -> str:
    return f"/api/coach-plans/?coach={coach}&date={day.isoformat()}"


def spread_paths(today: dt.date, days: int) -> list[str]:
    """Every key when there are few, else 1,000 random ones over the whole range."""
    keys = [(c, i) for i in range(days) for c in seed.COACHES] if days * 4 <= SPREAD_KEYS else None
    if keys is None:
        rng = random.Random(2026)  # reproducible keys
        keys = [(rng.choice(seed.COACHES), rng.randrange(days)) for _ in range(SPREAD_KEYS)]
    return [legacy_path(coach, seed.day_of(today, index)) for coach, index in keys]


# --- baselines ------------------------------------------------------------------------------
def measure_baselines(plan: Plan, workdir: Path, today: dt.date, report: Report) -> Baselines:
    baselines = Baselines()
    hot = legacy_path("coach_d", today)
    with start_baseline("bare_uvicorn", workdir) as bare:
        run_wrk(bare.url + hot, seconds=1)
        baselines.bare = run_wrk(bare.url + hot, seconds=plan.seconds)
    report.add(
        f"baseline bare uvicorn, constant JSON: {describe(baselines.bare)}",
        name="baseline bare_uvicorn",
        load=load_json(baselines.bare),
    )
    with start_baseline("bare_uvicorn", workdir, "--fastapi") as bare_fastapi:
        run_wrk(bare_fastapi.url + hot, seconds=1)
        baselines.fastapi = run_wrk(bare_fastapi.url + hot, seconds=plan.seconds)
    report.add(
        f"baseline bare FastAPI route, constant JSON (for reference): {describe(baselines.fastapi)}",
        name="baseline bare_fastapi",
        load=load_json(baselines.fastapi),
    )
    if importlib.util.find_spec("flask") is None:
        report.not_measured(
            "baseline old Flask server",
            "flask is not installed (it belongs to the dev group; `uv pip install flask` for now)",
        )
        return baselines
    args = ("--today", today.isoformat(), "--days", str(plan.small_days))
    with start_baseline("legacy_flask", workdir, *args) as flask:
        for endpoint, path in (
            ("legacy", hot),
            ("all", f"/api/coach-plans/all?date={today.isoformat()}"),
            ("health", "/health"),
        ):
            run_wrk(flask.url + path, seconds=1)
            result = run_wrk(flask.url + path, seconds=plan.seconds)
            baselines.flask[endpoint] = result
            report.add(
                f"baseline old Flask server {path.split('?')[0]}: {describe(result)}",
                name=f"baseline flask {endpoint}",
                load=load_json(result),
            )
    return baselines


# --- the API ----------------------------------------------------------------------------------
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


@dataclass
class ScaleResult:
    plans: int
    reads: dict[str, LoadResult] = field(default_factory=dict)


@contextmanager
def api(backend: Backend, workdir: Path, name: str, **env: str) -> Iterator[Server]:
    server = start_api(backend.url, workdir, name, **env)
    try:
        yield server
    finally:
        server.stop()


def warm(server: Server, paths: list[str]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path in paths:
            client.get(path)
    run_wrk(server.url + paths[0], seconds=1)


def read_line(
    endpoint: str,
    label: str,
    result: LoadResult,
    baselines: Baselines,
    *,
    flask_key: str | None,
    targets: bool,
) -> tuple[str, dict[str, Any]]:
    """`read ...: rps p50 p99 | flask ... xR | bare ... xR  [targets]` and its JSON."""
    parts = [f"read {endpoint} ({label}): {describe(result)}"]
    data: dict[str, Any] = {"load": load_json(result), "ratios": {}, "targets": {}}
    flask = baselines.flask.get(flask_key) if flask_key else None
    checks = []
    if flask is not None:
        ratio = result.rps / flask.rps
        parts.append(f"flask {fmt_rps(flask.rps)} {TIMES}{ratio:.2f}")
        data["ratios"]["flask"] = round(ratio, 3)
        if targets:
            met = ratio >= FLASK_FACTOR
            data["targets"][f">= {FLASK_FACTOR}x flask"] = met
            checks.append(f"≥{FLASK_FACTOR}{TIMES} flask: {verdict(met)}")
    if baselines.bare is not None:
        ratio = result.rps / baselines.bare.rps
        parts.append(f"bare {fmt_rps(baselines.bare.rps)} {TIMES}{ratio:.2f}")
        data["ratios"]["bare"] = round(ratio, 3)
        if targets:
            met = ratio >= BARE_SHARE
            data["targets"][f">= {BARE_SHARE:.0%} of bare"] = met
            checks.append(f"≥{BARE_SHARE:.0%} bare: {verdict(met)}")
    line = " | ".join(parts) + (f"  [target {'; '.join(checks)}]" if checks else "")
    return line, data


def paced(
    server: Server,
    paths_file: Path,
    maximum: LoadResult,
    what: str,
    label: str,
    plan: Plan,
    report: Report,
    key: str,
) -> LoadResult:
    """p99 at about half the measured maximum: wrk with a per-connection think time."""
    target = maximum.rps / 2
    pause = paced_pause_ms(target, PACED_CONNECTIONS)
    result = run_wrk(
        server.url,
        seconds=plan.seconds,
        connections=PACED_CONNECTIONS,
        script=PACED_LUA,
        script_args=(str(paths_file), str(pause)),
    )
    met = result.p99_ms < PACED_P99_MS
    report.add(
        f"p99 at half max {what} ({label}): {fmt_rps(result.rps)} offered"
        f" ({result.rps / maximum.rps:.0%} of max {fmt_rps(maximum.rps)}; wrk -c{PACED_CONNECTIONS},"
        f" {pause} ms think time)  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms"
        f"  [target p99 < {PACED_P99_MS:.0f} ms: {verdict(met)}]",
        name=f"paced {key} {label}",
        load=load_json(result),
        max_rps=maximum.rps,
        pause_ms=pause,
        targets={f"p99 < {PACED_P99_MS} ms": met},
    )
    return result


def measure_scale(
    backend: Backend,
    days: int,
    plan: Plan,
    workdir: Path,
    today: dt.date,
    baselines: Baselines,
    report: Report,
    *,
    after_reads: Callable[[Server, str], None] | None = None,
) -> ScaleResult:
    plans = days * len(seed.COACHES)
    label = f"{backend.name}, {fmt_plans(plans)}"
    scale = ScaleResult(plans)
    hot = legacy_path("coach_d", today)
    spread_file = write_paths(workdir / f"spread-{days}.txt", spread_paths(today, days))
    hot_file = write_paths(workdir / "hot.txt", [hot])
    endpoints = [
        ("/api/coach-plans/ hot key", "hot", hot, "legacy"),
        ("/api/coach-plans/ spread of keys", "spread", None, "legacy"),
        ("/api/coach-plans/all", "all", f"/api/coach-plans/all?date={today.isoformat()}", "all"),
        ("/api/v1/plans", "v1", "/api/v1/plans", None),
        ("/health", "health", "/health", "health"),
    ]
    with api(backend, workdir, f"api-{backend.name}-{plans}") as server:
        warm(server, [hot, *(p for _, _, p, _ in endpoints if p)])
        idle = server.rss_mib()
        peak = [idle]
        for endpoint, key, path, flask_key in endpoints:
            note(f"{label}: {endpoint}")
            if path is None:
                result = run_wrk(
                    server.url,
                    seconds=plan.seconds,
                    script=SPREAD_LUA,
                    script_args=(str(spread_file),),
                    during=lambda: peak.append(server.rss_mib()),
                )
            else:
                result = run_wrk(server.url + path, seconds=plan.seconds)
            scale.reads[key] = result
            line, data = read_line(
                endpoint, label, result, baselines, flask_key=flask_key, targets=key in ("hot", "all")
            )
            report.add(line, name=f"read {key} {label}", backend=backend.name, plans=plans, **data)
        report.add(
            f"memory API RSS ({label}): idle {idle:.0f} MiB, under load (spread reads) max"
            f" {max(peak):.0f} MiB",
            name=f"memory {label}",
            backend=backend.name,
            plans=plans,
            rss_idle_mib=round(idle, 1),
            rss_load_mib=round(max(peak), 1),
        )
        scale.reads["paced-hot"] = paced(
            server, hot_file, scale.reads["hot"], "/api/coach-plans/ hot key", label, plan, report, "hot"
        )
        scale.reads["paced-spread"] = paced(
            server,
            spread_file,
            scale.reads["spread"],
            "/api/coach-plans/ spread of keys",
            label,
            plan,
            report,
            "spread",
        )
        if after_reads is not None:
            after_reads(server, label)
    # The database path itself: the same spread with the response cache off.
    with api(backend, workdir, f"api-{backend.name}-{plans}-nocache", CACHE_TTL_SECONDS="0") as server:
        warm(server, [hot])
        note(f"{label}: spread, cache off")
        result = run_wrk(server.url, seconds=plan.seconds, script=SPREAD_LUA, script_args=(str(spread_file),))
        scale.reads["nocache"] = result
        line, data = read_line(
            "/api/coach-plans/ spread of keys, response cache off",
            label,
            result,
            baselines,
            flask_key="legacy",
            targets=False,
        )
        report.add(line, name=f"read nocache {label}", backend=backend.name, plans=plans, **data)
    return scale


def compare_scales(backend: str, small: ScaleResult, big: ScaleResult, report: Report) -> None:
    for key, what in (
        ("nocache", "spread of keys, response cache off (database path)"),
        ("spread", "spread of keys"),
        ("hot", "hot key"),
    ):
        a, b = small.reads[key], big.reads[key]
        ratio = b.p99_ms / a.p99_ms
        met = ratio <= SCALE_FACTOR
        report.add(
            f"scale p99 /api/coach-plans/ {what} ({backend}): {fmt_plans(big.plans)} {b.p99_ms:.2f} ms"
            f" vs {fmt_plans(small.plans)} {a.p99_ms:.2f} ms {TIMES}{ratio:.2f}"
            f"  [target ≤{SCALE_FACTOR}{TIMES}: {verdict(met)}]",
            name=f"scale {key} {backend}",
            backend=backend,
            p99_small_ms=a.p99_ms,
            p99_big_ms=b.p99_ms,
            ratio=round(ratio, 3),
            targets={f"<= {SCALE_FACTOR}x": met},
        )


# --- writes, bot, client ----------------------------------------------------------------------
def measure_writes(server: Server, label: str, plan: Plan, report: Report) -> None:
    note(f"{label}: writes")
    result = run_wrk(
        server.url,
        seconds=plan.seconds,
        connections=WRITE_CONNECTIONS,
        script=PUT_LUA,
        script_args=(INTERNAL_TOKEN, WRITE_FIRST_YEAR),
    )
    report.add(
        f"write PUT /internal/plans/{{coach}}/{{date}}, each a create ({label}, wrk"
        f" -c{WRITE_CONNECTIONS}): {describe(result)} | no baseline (the old server kept plans in memory)",
        name=f"write {label}",
        load=load_json(result),
    )


def measure_bot(server: Server, label: str, plan: Plan, workdir: Path, report: Report) -> None:
    """A mock-mode bot post (outbox write, internal PUT, stored) timed end to end."""
    from coach_plans_bot.config import load_settings
    from coach_plans_bot.mock import MockDiscordBot
    from coach_plans_bot.outbox import Status

    note(f"{label}: bot mock posts")
    settings = load_settings(
        mock_mode=True,
        api_base_url=server.url,
        internal_api_token=INTERNAL_TOKEN,
        outbox_path=workdir / f"outbox-{server.port}.db",
        log_level="WARNING",
        config_file=None,
    )

    async def post_all() -> tuple[list[float], int]:
        timings: list[float] = []
        delivered = 0
        async with MockDiscordBot(settings) as bot:
            for n in range(plan.bot_posts):
                coach = seed.COACHES[n % len(seed.COACHES)]
                day = BOT_FIRST_DAY + dt.timedelta(days=n // len(seed.COACHES))
                started = time.perf_counter()
                entry = await bot.simulate_plan_post(coach, date=day)
                timings.append((time.perf_counter() - started) * 1000)
                delivered += entry.status is Status.DELIVERED
        return timings, delivered

    timings, delivered = asyncio.run(post_all())
    stored = httpx.get(server.url + legacy_path("coach_d", BOT_FIRST_DAY), timeout=10).status_code == 200
    if delivered != plan.bot_posts or not stored:
        report.not_measured(
            f"bot mock message → plan stored ({label})",
            f"only {delivered} of {plan.bot_posts} posts delivered (stored: {stored})",
        )
        return
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    met = p99 < BOT_P99_MS
    report.add(
        f"bot mock message → plan stored ({label}, {plan.bot_posts} posts one after another, outbox +"
        f" internal PUT): p50 {p50:.2f} ms  p99 {p99:.2f} ms  [target p99 < {BOT_P99_MS:.0f} ms:"
        f" {verdict(met)}]",
        name=f"bot {label}",
        p50_ms=round(p50, 3),
        p99_ms=round(p99, 3),
        posts=plan.bot_posts,
        targets={f"p99 < {BOT_P99_MS} ms": met},
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure_client(server: Server, label: str, today: dt.date, plan: Plan, report: Report) -> None:
    """`DiscordWebhookClient.fetch_coach_plan`: from its cache, and through to the real API."""
    from coach_plans_client import DiscordWebhookClient

    note(f"{label}: client")
    date = today.isoformat()
    urls = {"coach_d": f"{server.url}/api/coach-plans/?coach=coach_d"}
    with DiscordWebhookClient(urls, cache_ttl=3600) as client:
        if "No plan" in client.fetch_coach_plan("coach_d", date)["plan"]:
            report.not_measured("client cached fetch_coach_plan", "the warm fetch found no plan")
            return
        per_call = timeit.timeit(lambda: client.fetch_coach_plan("coach_d", date), number=plan.cached_calls)
        per_call_us = per_call / plan.cached_calls * 1e6
    met = per_call_us < CACHED_CLIENT_US
    report.add(
        f"client cached fetch_coach_plan: {per_call_us:.2f} µs per call ({plan.cached_calls:,} calls"
        f" after one warm fetch)  [target < {CACHED_CLIENT_US:.0f} µs: {verdict(met)}]",
        name="client cached",
        us_per_call=round(per_call_us, 3),
        calls=plan.cached_calls,
        targets={f"< {CACHED_CLIENT_US} us": met},
    )

    def timed(call: Callable[[], object], count: int) -> list[float]:
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    with DiscordWebhookClient(urls, cache_ttl=0) as client:
        fetched = timed(lambda: client.fetch_coach_plan("coach_d", date), plan.uncached_calls)
        api_calls = client.get_metrics()["api_calls"]
    with httpx.Client(timeout=10) as raw:
        url = server.url + legacy_path("coach_d", today)
        plain = timed(lambda: raw.get(url), plan.uncached_calls)
    p50, p99 = percentile(fetched, 50), percentile(fetched, 99)
    raw_p50 = percentile(plain, 50)
    report.add(
        f"client uncached fetch_coach_plan against the real API ({label}, hot key):"
        f" p50 {p50:.3f} ms  p99 {p99:.3f} ms ({api_calls:,} API calls) | plain httpx.get p50"
        f" {raw_p50:.3f} ms {TIMES}{p50 / raw_p50:.2f}",
        name="client uncached",
        p50_ms=round(p50, 4),
        p99_ms=round(p99, 4),
        mean_ms=round(statistics.fmean(fetched), 4),
        httpx_p50_ms=round(raw_p50, 4),
        api_calls=api_calls,
    )


# --- one backend ----------------------------------------------------------------------------
def measure_backend(
    backend: Backend,
    plan: Plan,
    workdir: Path,
    today: dt.date,
    baselines: Baselines,
    report: Report,
) -> None:
    log = workdir / f"migrate-{backend.name}.log"
    migrate_api(backend.url, log)
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
        measure_writes(server, label, plan, report)

    big = measure_scale(
        backend, plan.big_days, plan, workdir, today, baselines, report, after_reads=big_extras
    )
    compare_scales(backend.name, small, big, report)


# --- output -----------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            postgres = str(row[0]) if row else ""
    except psycopg.Error:
        postgres = "not reachable"
    import sqlite3

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres,
        "wrk": wrk_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15": [round(n, 2) for n in os.getloadavg()],
    }


def summary(report: Report) -> list[dict[str, Any]]:
    """Every target with the figures it was checked on."""
    checks: dict[str, list[tuple[str, bool]]] = {}
    for figure in report.figures:
        for target, met in (figure.get("targets") or {}).items():
            checks.setdefault(target, []).append((figure["line"].split(":")[0], met))
    rows = []
    for target, results in checks.items():
        met = sum(1 for _, ok in results if ok)
        rows.append(
            {
                "target": target,
                "met": met,
                "of": len(results),
                "not_met": [name for name, ok in results if not ok],
            }
        )
    return rows


def markdown_table(report: Report, info: dict[str, Any], seconds: float) -> str:
    lines = [
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), Python {info['python']},"
        f" SQLite {info['sqlite']}, PostgreSQL {info['postgres']}, {info['wrk']}; the whole run took"
        f" {seconds / 60:.1f} min; load average at the end {info['load_average_1_5_15']}.",
        "",
        "| figure | result | baseline, ratio, target |",
        "|---|---|---|",
    ]
    for figure in report.figures:
        name, _, rest = figure["line"].partition(": ")
        result, _, tail = rest.partition(" | ")
        lines.append(f"| {name} | {result} | {tail.replace('|', '·')} |")
    lines += ["", "| target | met |", "|---|---|"]
    for row in summary(report):
        lines.append(f"| {row['target']} | {row['met']} of {row['of']} |")
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        text = f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}"
    else:
        text = f"{text.rstrip()}\n\n## Latest results\n{TABLE_START}\n{table}\n{TABLE_END}\n"
    DOCS.write_text(text)


# --- profile ----------------------------------------------------------------------------------
def profile(plan: Plan, workdir: Path, today: dt.date) -> None:
    """pyinstrument on the API process while wrk drives the hottest endpoint (hot legacy read)."""
    backend = sqlite_backend(workdir, today)
    migrate_api(backend.url, workdir / "migrate.log")
    backend.seed_days(0, plan.small_days)
    output = RESULTS / "profile.txt"
    from bench.servers import api_env, free_port

    port = free_port()
    server = Server(
        "api-profiled",
        [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "text",
            "-o",
            str(output),
            "--no-color",
            # The framework frames are where the time goes; pyinstrument hides libraries by default.
            "--show=*/fastapi/*",
            "--show=*/starlette/*",
            "--show=*/anyio/*",
            "-m",
            "coach_plans_api",
            "serve",
        ],
        workdir / "api-profiled.log",
        env=api_env(backend.url, port),
        port=port,
    )
    hot = legacy_path("coach_d", today)
    server.start("/health", timeout=120)
    try:
        run_wrk(server.url + hot, seconds=1)
        result = run_wrk(server.url + hot, seconds=max(plan.seconds, 10))
    finally:
        # uvicorn re-raises SIGTERM after its shutdown, which would kill pyinstrument before it
        # writes; after SIGINT it gets a KeyboardInterrupt and still writes the profile.
        server.stop(sig=signal.SIGINT)
    print(f"profiled GET {hot} under wrk -t2 -c32: {describe(result)} (slowed by the profiler)")
    print(f"profile written to {output.relative_to(REPO)}:\n")
    print(output.read_text())


# --- main -------------------------------------------------------------------------------------
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
        info = machine_info()
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
                "paced_connections": PACED_CONNECTIONS,
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
        if not plan.quick:
            write_docs(markdown_table(report, info, seconds))
            print(f"table: {DOCS.relative_to(REPO)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / "coach-plans-bench-charts", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
