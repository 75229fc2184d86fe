"""The client installs alone: httpx only, no service imports, typed, public names exported."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import coach_plans_client

PACKAGE = Path(coach_plans_client.__file__).parent
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"


def test_depends_on_httpx_only() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert [dep.split(">")[0].split("=")[0] for dep in project["dependencies"]] == ["httpx"]


def test_never_imports_the_services() -> None:
    imported: set[str] = set()
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert not {
        name
        for name in imported
        if name.startswith("coach_plans_")
        or name in {"fastapi", "sqlalchemy", "discord", "pydantic", "respx"}
    }


def test_is_typed_and_exports_its_public_names() -> None:
    assert (PACKAGE / "py.typed").exists()
    assert all(hasattr(coach_plans_client, name) for name in coach_plans_client.__all__)
    assert issubclass(coach_plans_client.NotFoundError, coach_plans_client.APIError)
    assert issubclass(coach_plans_client.APIError, coach_plans_client.CoachPlansError)
    assert issubclass(coach_plans_client.ConnectionError, coach_plans_client.CoachPlansError)
