"""Property-based fuzzing of the whole OpenAPI schema: no 5xx, every answer matches the schema."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.hooks import HookContext
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import make_url

from coach_plans_api import migrate
from coach_plans_api.app import create_app
from tests.conftest import INTERNAL_TOKEN, make_settings

# One database for the whole run: the fuzzer's writes feed its later reads.
_DIR = tempfile.mkdtemp(prefix="coach-fuzz-")
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_DB = Path(_DIR) / "fuzz.db"
migrate.upgrade(make_url(f"sqlite:///{_DB}"))
app = create_app(make_settings(f"sqlite:///{_DB}"))
# The app's lifespan (database, caches, limiter) stays open while the fuzzer runs, for the
# parametrized tests and the state machine alike.
_running = TestClient(app)
_running.__enter__()
atexit.register(_running.__exit__, None, None, None)
# Enough examples per operation to reach the edges of every number and string in the schema.
EXAMPLES = 50
# The event stream never ends by design; it has its own tests (tests/integration/test_events.py).
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/v1/events")
# Case is generic over its operation's type, with four parameters schemathesis itself never
# spells out; these tests take any operation of the schema.
Case = schemathesis.Case[Any]
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def use_real_coach(case: Case) -> None:
    """Random path strings only ever meet the 400s (tested one by one elsewhere); a real
    coach and day let the generated bodies reach the write path."""
    if case.path_parameters and "coach" in case.path_parameters:
        case.path_parameters.update(coach="coach_d", date="2026-11-25")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Case) -> None:
    use_real_coach(case)
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_paths_never_reach_a_5xx(case: Case) -> None:
    """The same operations with the generated coach and date kept, however odd."""
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])


# Numbers of every size and sign where the API takes one (query, path, body), including values
# the schema forbids: the schema's bounds must hold before anything reaches the database.
WILD_INT = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(max_value=-(2**63) + 2),
)


def flatmap_query(
    _ctx: HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not query:
        return st.just(query)
    return st.tuples(WILD_INT, WILD_INT, WILD_INT).map(
        lambda n: {
            **query,
            **({"limit": n[0]} if "limit" in query else {}),
            **({"days": n[1]} if "days" in query else {}),
            **({"cursor": f"2026-11-25_{n[2]}"} if "cursor" in query else {}),
        }
    )


def flatmap_path_parameters(
    _ctx: HookContext, path: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path or "plan_id" not in path:
        return st.just(path)
    return WILD_INT.map(lambda n: {**path, "plan_id": n})


def flatmap_body(_ctx: HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Charts that pass the image check, so a generated size reaches the write path."""
    if not isinstance(body, dict) or not isinstance(body.get("charts"), list) or not body["charts"]:
        return st.just(body)
    count = len(body["charts"])
    return st.lists(WILD_INT, min_size=count, max_size=count).map(
        lambda sizes: {
            **body,
            "charts": [{"url": f"https://c.example/{i}.png", "size_bytes": n} for i, n in enumerate(sizes)],
        }
    )


@schema.hooks.apply(flatmap_body)
@schema.hooks.apply(flatmap_path_parameters)
@schema.hooks.apply(flatmap_query)
@schema.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
def test_numbers_of_any_size_never_reach_a_5xx(case: Case) -> None:
    use_real_coach(case)
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])


# Stateful: follow the OpenAPI links (create -> read, edit, delete, revisions) in random orders.
class APIWorkflow(schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each scenario starts from an empty database, so a replay sees the same answers.
        with sqlite3.connect(_DB) as conn:
            for table in ("plan_revisions", "plan_tickers", "plan_charts", "coach_plans"):
                conn.execute(f"DELETE FROM {table}")
        app.state.core.cache.invalidate()

    def before_call(self, case: Case) -> None:
        use_real_coach(case)

    def get_call_kwargs(self, case: Case) -> dict[str, object]:
        return {"headers": AUTH}

    def validate_response(self, response: Response, case: Case, **kwargs: object) -> None:
        case.validate_response(response, checks=CHECKS)


TestAPIWorkflow = APIWorkflow.TestCase
TestAPIWorkflow.settings = settings(
    max_examples=40, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
)
