"""The load generator: wrk (installed when missing), its output parsed into figures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SPREAD_LUA = BENCH / "spread.lua"
PACED_LUA = BENCH / "paced.lua"
PUT_LUA = BENCH / "put.lua"
THREADS = 2
CONNECTIONS = 32

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class LoadError(RuntimeError):
    """wrk is missing and cannot be installed, or a run failed."""


def ensure_wrk() -> str:
    """The path of wrk; installs Debian's `wrk` package (as root) when it is not on PATH."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk (the HTTP load generator) is not installed: installing it with `apt-get install -y wrk`")
    if os.geteuid() != 0:
        raise LoadError("wrk is missing and this is not root: run `sudo apt-get install -y wrk` first")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:  # noqa: S603
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=False)  # noqa: S607
        subprocess.run(install, env=env, check=False)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise LoadError("could not install wrk; install it (`apt-get install -y wrk`) and run again")
    return found


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    return (result.stdout + result.stderr).strip().splitlines()[0] if result.stdout + result.stderr else ""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: throughput, latency percentiles, and requests that did not succeed."""

    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    seconds: float
    errors: int
    connections: int
    # CPU time the server process spent per request answered (user + system): steadier than
    # throughput on a machine that other work shares.
    cpu_us_per_request: float | None = None

    def as_json(self) -> dict[str, float | int | None]:
        return asdict(self)


def parse_wrk(output: str, connections: int) -> LoadResult:
    """The figures of `wrk --latency` output; raises LoadError when they are not there."""
    latency = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _LATENCY.findall(output)}
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    if rps is None or total is None or set(latency) != {50, 75, 90, 99}:
        raise LoadError(f"unexpected wrk output:\n{output}")
    socket_errors = _SOCKET.search(output)
    non_2xx = _NON_2XX.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return LoadResult(
        rps=float(rps.group(1)),
        p50_ms=latency[50],
        p75_ms=latency[75],
        p90_ms=latency[90],
        p99_ms=latency[99],
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        errors=errors,
        connections=connections,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WrkRun:
    """One wrk process under way; `result()` waits for it and parses its figures."""

    def __init__(
        self,
        url: str,
        *,
        seconds: float,
        connections: int = CONNECTIONS,
        threads: int = THREADS,
        script: Path | None = None,
        script_args: Sequence[str] = (),
        server_pid: int | None = None,
    ) -> None:
        self.seconds = seconds
        self.connections = connections
        self.server_pid = server_pid
        self.command = [
            "wrk",
            f"-t{min(threads, max(connections, 1))}",
            f"-c{max(connections, 1)}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
        ]
        if script is not None:
            self.command += ["-s", str(script)]
        self.command.append(url)
        if script_args:
            self.command += ["--", *script_args]
        self._cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        self.process = subprocess.Popen(  # noqa: S603 - wrk with arguments built here
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> LoadResult:
        output, _ = self.process.communicate(timeout=self.seconds + 60)
        if self.process.returncode != 0:
            raise LoadError(f"wrk exited {self.process.returncode}: {' '.join(self.command)}\n{output}")
        result = parse_wrk(output, self.connections)
        if self.server_pid and result.requests:
            used = cpu_seconds(self.server_pid) - self._cpu_before
            result = replace(result, cpu_us_per_request=round(used / result.requests * 1e6, 1))
        return result


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int = CONNECTIONS,
    threads: int = THREADS,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    during: Callable[[], None] | None = None,
    server_pid: int | None = None,
) -> LoadResult:
    """`wrk -t2 -c32 -dNs --latency` against `url`; `during` is called every 0.2 s meanwhile."""
    run = WrkRun(
        url,
        seconds=seconds,
        connections=connections,
        threads=threads,
        script=script,
        script_args=script_args,
        server_pid=server_pid,
    )
    while during is not None and run.running():
        during()
        time.sleep(0.2)
    return run.result()


def paced_pause_ms(target_rps: float, connections: int) -> int:
    """The think time per connection that offers about `target_rps` (latency aside)."""
    return max(1, round(connections * 1000 / max(target_rps, 1.0)))


def write_paths(path: Path, paths: Sequence[str]) -> Path:
    path.write_text("\n".join(paths) + "\n")
    return path


def note(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"  .. {message}", file=sys.stderr, flush=True)
