"""Readiness checks for scripts/run-dev.sh (`make run`); each prints one clear line and exits 1 on failure.

    dev_ready.py port-free HOST PORT        the API could listen there (nothing else does)
    dev_ready.py api URL LOG PID            the API started as PID (its log is LOG) answers at URL
    dev_ready.py plans URL PID              the mock bot (PID) has stored today's plan of every coach

Only the standard library: it runs before anything else is known to work.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 60
INSTANCE = re.compile(r"instance ([0-9a-f]{16})")


def fail(message: str) -> None:
    print(f"make run: {message}", file=sys.stderr)
    sys.exit(1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def get_json(url: str) -> Any:
    """The JSON body of a GET, or None while nothing (or nothing healthy) answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a local http URL
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As uvicorn binds: SO_REUSEADDR, so a port left in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            fail(
                f"port {port} on {host} is taken ({exc.strerror}): is another Coach Plans running? "
                f"Stop it, or pick another port: API_PORT={port + 1} make run"
            )


def wait_for_api(url: str, log: Path, pid: int) -> None:
    """Wait until /health answers with the instance id that OUR API process logged."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    ours = None
    while time.monotonic() < deadline:
        if not alive(pid):
            fail("the API exited during start-up (its log is above)")
        if ours is None:
            found = INSTANCE.search(log.read_text(errors="replace")) if log.exists() else None
            ours = found.group(1) if found else None
        health = get_json(f"{url}/health") if ours else None
        if health is not None:
            if health.get("instance_id") == ours:
                return
            fail(f"{url} is answered by another process, not the API this script started")
        time.sleep(0.2)
    fail(f"the API did not answer at {url} within {TIMEOUT_SECONDS} s")


def wait_for_plans(url: str, pid: int) -> None:
    """Wait until today's plan of every coach of the roster is stored."""
    roster = {coach["coach"] for coach in (get_json(f"{url}/api/v1/coaches") or {}).get("coaches", [])}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not alive(pid):
            fail("the bot exited during start-up (its log is above)")
        stored = get_json(f"{url}/api/coach-plans/all") or {}
        if roster and roster <= set(stored):
            return
        time.sleep(0.2)
    fail(f"the mock bot did not store today's plans within {TIMEOUT_SECONDS} s")


def main(argv: list[str]) -> None:
    match argv:
        case ["port-free", host, port]:
            port_free(host, int(port))
        case ["api", url, log, pid]:
            wait_for_api(url, Path(log), int(pid))
        case ["plans", url, pid]:
            wait_for_plans(url, int(pid))
        case _:
            fail(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
