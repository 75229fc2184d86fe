"""The shared package stays small and pure: no HTTP, no service, not part of the client."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import coach_plans_common

PACKAGE = Path(coach_plans_common.__file__).parent


def requires(dist: str) -> set[str]:
    """The names of the distributions `dist` depends on (extras and markers stripped)."""
    found = importlib.metadata.requires(dist) or []
    return {r.split(";")[0].split(">")[0].split("[")[0].strip() for r in found}


def test_it_depends_on_settings_and_logging_libraries_only() -> None:
    requires = {
        r.split(">")[0].split("[")[0] for r in importlib.metadata.requires("coach-plans-common") or []
    }
    assert requires == {"pydantic", "pydantic-settings", "python-json-logger"}
    assert (PACKAGE / "py.typed").exists()


def test_it_imports_no_service_and_no_http() -> None:
    imported = set()
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert not imported & {"coach_plans_api", "coach_plans_bot", "coach_plans_client", "httpx", "aiohttp"}


def test_the_services_use_it_and_the_client_does_not() -> None:
    def requires(dist: str) -> set[str]:
        return {
            r.split(">")[0].split("[")[0].split(";")[0].strip()
            for r in importlib.metadata.requires(dist) or []
        }

    assert "coach-plans-common" in requires("coach-plans-api")
    assert "coach-plans-common" in requires("coach-plans-bot")
    assert "coach-plans-common" not in requires("coach-plans-client")
    assert all(hasattr(coach_plans_common, name) for name in coach_plans_common.__all__)
