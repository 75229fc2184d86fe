"""`python -m bench --profile`: pyinstrument on the API process while wrk drives it.

Two runs: the hot cached read, and the database path (random keys, response cache off). Each
profile goes to `bench/results/profile-<run>.txt`.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
from pathlib import Path

from bench.backends import sqlite_backend
from bench.load import SPREAD_LUA, run_wrk, write_paths
from bench.plan import Plan
from bench.reads import legacy_path, spread_paths
from bench.report import describe
from bench.servers import REPO, Server, api_env, free_port, migrate_api

RESULTS = REPO / "bench" / "results"


def profile(plan: Plan, workdir: Path, today: dt.date) -> None:
    backend = sqlite_backend(workdir, today)
    migrate_api(backend.url, workdir / "migrate.log")
    backend.seed_days(0, plan.big_days)
    hot = legacy_path("coach_d", today)
    spread = write_paths(workdir / "spread.txt", spread_paths(today, plan.big_days))
    for name, env, wrk in (
        ("hot", {}, {"url_path": hot}),
        ("database", {"CACHE_TTL_SECONDS": "0"}, {"url_path": "", "script": spread}),
    ):
        output = RESULTS / f"profile-{name}.txt"
        port = free_port()
        server = Server(
            f"api-profiled-{name}",
            [
                sys.executable,
                "-m",
                "pyinstrument",
                "-r",
                "text",
                "-o",
                str(output),
                "--no-color",
                # The framework frames are where time goes; pyinstrument hides libraries by default.
                "--show=*/fastapi/*",
                "--show=*/starlette/*",
                "--show=*/anyio/*",
                "-m",
                "coach_plans_api",
                "serve",
            ],
            workdir / f"api-profiled-{name}.log",
            env=api_env(backend.url, port, **env),
            port=port,
        )
        server.start("/health", timeout=120)
        script = wrk.get("script")
        try:
            url = server.url + str(wrk["url_path"])
            kwargs = {"script": SPREAD_LUA, "script_args": (str(script),)} if script else {}
            run_wrk(url, seconds=1, **kwargs)  # type: ignore[arg-type]
            result = run_wrk(url, seconds=max(plan.seconds, 10), **kwargs)  # type: ignore[arg-type]
        finally:
            # uvicorn re-raises SIGTERM after its shutdown, which would kill pyinstrument before
            # it writes; after SIGINT it gets a KeyboardInterrupt and still writes the profile.
            server.stop(sig=signal.SIGINT)
        print(f"profiled {name} under wrk -t2 -c32: {describe(result)} (slowed by the profiler)")
        print(f"profile written to {output.relative_to(REPO)}")
