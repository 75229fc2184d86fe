"""The bench's report: figures as they are measured, targets met or not, the docs table."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.load import LoadResult, wrk_version

TIMES = "\u00d7"  # the multiplication sign of the report lines
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


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


def describe(result: LoadResult) -> str:
    errors = f"  errors {result.errors:,}" if result.errors else ""
    cpu = f"  CPU {result.cpu_us_per_request:,.0f} µs/request" if result.cpu_us_per_request else ""
    return f"{fmt_rps(result.rps)}  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms{cpu}{errors}"


def machine_info(postgres_url: str) -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        with psycopg.connect(postgres_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            postgres = str(row[0]) if row else ""
    except psycopg.Error:
        postgres = "not reachable"
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
    return [
        {
            "target": target,
            "met": sum(1 for _, ok in results if ok),
            "of": len(results),
            "not_met": [name for name, ok in results if not ok],
        }
        for target, results in checks.items()
    ]


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
    lines += ["", "| target | met | not met on |", "|---|---|---|"]
    for row in summary(report):
        lines.append(f"| {row['target']} | {row['met']} of {row['of']} | {'; '.join(row['not_met'])} |")
    return "\n".join(lines)


def write_docs(docs: Path, table: str) -> None:
    text = docs.read_text() if docs.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        text = f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}"
    else:
        text = f"{text.rstrip()}\n\n## Latest results\n{TABLE_START}\n{table}\n{TABLE_END}\n"
    docs.write_text(text)
