"""The client library against the real API: `fetch_coach_plan` from its cache and through to it."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import timeit
from collections.abc import Callable

import httpx

from bench.load import note
from bench.plan import Plan
from bench.reads import legacy_path
from bench.report import TIMES, Report, verdict
from bench.servers import Server
from bench.writes import percentile

CACHED_CLIENT_US = 5.0


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
