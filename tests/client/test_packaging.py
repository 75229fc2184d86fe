"""The client installs alone: httpx (and its SSE reader) only, Python 3.10+, a small public surface."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import coach_plans_client

PACKAGE = Path(coach_plans_client.__file__).parent


def test_depends_on_httpx_and_its_event_stream_reader_only() -> None:
    requires = importlib.metadata.requires("coach-plans-client") or []
    base = [requirement for requirement in requires if "extra ==" not in requirement]
    assert sorted(re.split(r"[<>=!~;\s\[]", requirement, maxsplit=1)[0] for requirement in base) == [
        "httpx",
        "httpx-sse",
    ]
    assert importlib.metadata.metadata("coach-plans-client")["Requires-Python"] == ">=3.10"


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


def test_is_typed_and_exports_what_users_need() -> None:
    assert (PACKAGE / "py.typed").exists()
    assert all(hasattr(coach_plans_client, name) for name in coach_plans_client.__all__)
    assert {"CoachPlansClient", "AsyncCoachPlansClient", "DiscordWebhookClient", "Plan", "PlanEvent"} <= set(
        coach_plans_client.__all__
    )
    assert issubclass(coach_plans_client.NotFoundError, coach_plans_client.APIError)
    assert issubclass(coach_plans_client.APIError, coach_plans_client.CoachPlansError)
    assert issubclass(coach_plans_client.ConnectionError, coach_plans_client.CoachPlansError)


def test_internals_are_not_exported_but_stay_importable() -> None:
    internals = {"TTLCache", "CacheEntry", "mock_plan", "mock_transport", "build_summary_embed"}
    assert not internals & set(coach_plans_client.__all__)
    # Code written against 2.0, which exported them, keeps working.
    from coach_plans_client import (  # noqa: F401
        CacheEntry,
        TTLCache,
        build_summary_embed,
        mock_plan,
        mock_transport,
    )
