"""The capacity model of docs/performance.md, checked at one point: two replicas on PostgreSQL + Redis.

Model: a request costs `c_api` seconds of CPU in the API process (one core at most per process:
the GIL) and `c_total` seconds across the processes that serve it (API, the PostgreSQL backends of
the bench's database, Redis, the load generator). N replicas on K cores then serve about
min(N / c_api, K / c_total) requests per second. Both costs are measured with one replica (per
process from /proc, so other work on the machine is not charged to our requests); the prediction
for two is compared with two measured replicas.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
from contextlib import suppress
from pathlib import Path

import psycopg

from bench.backends import PG_ADMIN_URL, Backend
from bench.load import SPREAD_LUA, LoadResult, WrkRun, cpu_seconds, note, write_paths
from bench.plan import Plan
from bench.reads import spread_paths
from bench.report import Report, describe, fmt_rps, verdict
from bench.servers import Server, start_api

MODEL_TOLERANCE = 0.25  # the model is a planning tool: within 25 % of what two replicas do


def serving_seconds(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends of `database` and of the Redis server."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
        pids = [row[0] for row in rows]
    pids += [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_redis(int(p))]
    total = 0.0
    for pid in pids:
        with suppress(OSError):  # a backend that ended meanwhile
            total += cpu_seconds(pid)
    return total


def _children_seconds() -> float:
    """CPU seconds of the finished child processes (wrk) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _is_redis(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
    except OSError:
        return False


def measure_replicas(
    backend: Backend, days: int, plan: Plan, workdir: Path, today: dt.date, report: Report, redis_url: str
) -> None:
    """One replica, then two, on `backend` with the shared Redis cache; the model's prediction."""
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": f"coach-plans-bench-{os.getpid()}"}
    paths = write_paths(workdir / "replicas.txt", spread_paths(today, days))
    label = f"{backend.name} + Redis, {days * 4:,} plans"
    cores = os.cpu_count() or 1

    def load(server: Server, connections: int) -> WrkRun:
        return WrkRun(
            server.url,
            seconds=plan.seconds,
            connections=connections,
            script=SPREAD_LUA,
            script_args=(str(paths),),
            server_pid=server.pid,
        )

    one = start_api(backend.url, workdir, "replica-1", **env)
    two: Server | None = None
    try:
        note(f"{label}: one replica")
        load(one, 32).result()  # warm up
        database = backend.url.rsplit("/", 1)[1]
        serving, generator = serving_seconds(database), _children_seconds()
        single = load(one, 32).result()
        api_cpu = (single.cpu_us_per_request or 0) / 1e6
        others = serving_seconds(database) - serving + _children_seconds() - generator
        total_cpu = api_cpu + others / max(single.requests, 1)
        two = start_api(backend.url, workdir, "replica-2", **env)
        note(f"{label}: two replicas")
        runs = [load(one, 16), load(two, 16)]
        results: list[LoadResult] = [run.result() for run in runs]
    finally:
        one.stop()
        if two is not None:
            two.stop()
    measured = sum(r.rps for r in results)
    predicted = min(2 / api_cpu, cores / total_cpu) if api_cpu and total_cpu else 0.0
    ratio = measured / predicted if predicted else 0.0
    met = abs(ratio - 1) <= MODEL_TOLERANCE
    report.add(
        f"capacity one replica ({label}, spread of keys): {describe(single)}; with PostgreSQL, Redis"
        f" and wrk {total_cpu * 1e6:,.0f} µs/request over {cores} cores",
        name=f"capacity one {label}",
        load=single.as_json(),
        api_cpu_us=round(api_cpu * 1e6, 1),
        total_cpu_us=round(total_cpu * 1e6, 1),
    )
    report.add(
        f"capacity two replicas ({label}, wrk -c16 on each): {fmt_rps(measured)} measured,"
        f" {fmt_rps(predicted)} predicted = min(2 / {api_cpu * 1e6:,.0f} µs, {cores} cores /"
        f" {total_cpu * 1e6:,.0f} µs)  {ratio:.2f} of the prediction  [target within"
        f" {MODEL_TOLERANCE:.0%}: {verdict(met)}]",
        name=f"capacity two {label}",
        loads=[r.as_json() for r in results],
        predicted_rps=round(predicted, 1),
        measured_rps=round(measured, 1),
        targets={f"capacity model within {MODEL_TOLERANCE:.0%}": met},
    )
