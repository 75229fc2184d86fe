"""Property-based fuzzing of the whole OpenAPI schema: no 5xx, every answer matches the schema."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
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
EXAMPLES = 200
# The event stream never ends by design; it has its own tests (tests/integration/test_events.py).
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/v1/events")
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def use_real_coach(case: schemathesis.Case) -> None:
    """Random path strings only ever meet the 400s (tested one by one elsewhere); a real
    coach and day let the generated bodies reach the write path."""
    if case.path_parameters and "coach" in case.path_parameters:
        case.path_parameters.update(coach="coach_d", date="2026-11-25")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    use_real_coach(case)
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_paths_never_reach_a_5xx(case: schemathesis.Case) -> None:
    """The same operations with the generated coach and date kept, however odd."""
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])


# Stateful: follow the OpenAPI links (create -> read, edit, delete, revisions) in random orders.
class APIWorkflow(schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each scenario starts from an empty database, so a replay sees the same answers.
        with sqlite3.connect(_DB) as conn:
            for table in ("plan_revisions", "plan_tickers", "plan_charts", "coach_plans"):
                conn.execute(f"DELETE FROM {table}")
        app.state.core.cache.invalidate()

    def before_call(self, case: schemathesis.Case) -> None:
        use_real_coach(case)

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
        return {"headers": AUTH}

    def validate_response(self, response: object, case: schemathesis.Case, **kwargs: object) -> None:
        case.validate_response(response, checks=CHECKS)


TestAPIWorkflow = APIWorkflow.TestCase
TestAPIWorkflow.settings = settings(
    max_examples=40, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
)
