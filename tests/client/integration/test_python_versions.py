"""The client installs and passes its own tests on the oldest Python TradingAgents supports, 3.10.

The workspace's own interpreter (3.11) runs the same tests in the main run; 3.12 and 3.13 ran here
too until 2026-12-01 and were left out to keep the suite within its time (the client uses nothing
newer Pythons dropped). In a fresh virtual environment made by uv (its cache makes this quick): a
real install of ``libs/client[mcp]`` plus the test tools, then ``tests/client`` without
``integration/`` (those need the API, which needs 3.11+). Where the interpreter is missing the test
is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
VERSIONS = ("3.10",)
TEST_TOOLS = ("pytest>=8.3", "pytest-asyncio>=0.24", "pytest-timeout>=2.3", "respx>=0.23")
# What a parent test run (coverage, pytest, a virtualenv) sets that must not leak into the child.
LEAKY_ENV = re.compile(r"^(COV_|COVERAGE_|PYTEST_|PYTHON|VIRTUAL_ENV$|UV_PROJECT)")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test")
    pytest.skip(reason)


def find_uv() -> str | None:
    """uv as `uv run` announces it, on PATH, beside this interpreter, or where make puts it."""
    candidates = [
        os.environ.get("UV"),
        shutil.which("uv"),
        str(Path(sys.prefix) / "bin" / "uv"),
        str(REPO / ".tools" / "bin" / "uv"),
    ]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def pyenv_roots() -> list[Path]:
    roots = [os.environ.get("PYENV_ROOT")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        answer = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        roots.append(answer.stdout.strip() if answer.returncode == 0 else None)
    roots.append(str(Path.home() / ".pyenv"))
    return [Path(root) for root in dict.fromkeys(roots) if root]


def release(path: Path) -> tuple[int, ...]:
    """(3, 10, 13) from .../versions/3.10.13/bin/python3.10; () when not a plain release."""
    name = path.parents[1].name
    return tuple(int(part) for part in name.split(".")) if re.fullmatch(r"[\d.]+", name) else ()


def find_python(version: str, uv: str) -> str | None:
    """The newest pyenv release of `version`, else one on PATH, else one uv already knows."""
    for root in pyenv_roots():
        found = sorted(root.glob(f"versions/{version}.*/bin/python{version}"), key=release)
        found = [path for path in found if release(path)]
        if found:
            return str(found[-1])
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    answer = subprocess.run(
        [uv, "python", "find", "--no-project", version],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    return answer.stdout.strip() or None if answer.returncode == 0 else None


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_client_suite_passes_on(version: str, tmp_path: Path) -> None:
    uv = find_uv()
    if uv is None:
        unavailable("uv not found (UV, PATH, this environment, .tools/bin)")
        return
    python = find_python(version, uv)
    if python is None:
        unavailable(f"no Python {version} (looked in the pyenv versions folder, on PATH and in uv's list)")
        return
    env = {name: value for name, value in os.environ.items() if not LEAKY_ENV.match(name)}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    venv = tmp_path / "venv"
    child = venv / "bin" / "python"

    made = run([uv, "venv", "--quiet", "--python", python, str(venv)], cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    client = f"{REPO / 'libs' / 'client'}[mcp]"
    installed = run(
        [uv, "pip", "install", "--quiet", "--python", str(child), client, *TEST_TOOLS], cwd=tmp_path, env=env
    )
    assert installed.returncode == 0, (
        f"pip install ./libs/client[mcp] failed on {python}:\n{installed.stderr}"
    )

    tests = run(
        [
            str(child),
            "-m",
            "pytest",
            "tests/client",
            "--ignore=tests/client/integration",
            "--confcutdir=tests/client",  # tests/conftest.py imports the API
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=REPO,
        env=env,
    )
    output = tests.stdout + tests.stderr
    assert tests.returncode == 0, f"client tests failed on Python {version} ({python}):\n{output[-6000:]}"
    assert re.search(r"\d+ passed", output)
    # The tests ran against the installed wheel, not the source tree.
    where = run(
        [str(child), "-c", "import coach_plans_client as c; print(c.__file__)"], cwd=tmp_path, env=env
    )
    assert where.stdout.startswith(str(venv)), where.stdout
