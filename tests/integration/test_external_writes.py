"""Writes by other processes (the CLI, another replica) are served at once, never a stale cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, REPO, RedisNamespace, ServiceProcess, plan_body
from tests.integration.test_cli import cli as run_cli

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
LEGACY = REPO / "tests" / "data" / "legacy_plans.json"
DAY = "/api/coach-plans/all?date=2024-05-10"


def cli(database_url: str, *args: str) -> None:
    result = run_cli(database_url, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'api.db'}", {}
        return
    env: dict[str, str] = {}
    if request.param.endswith("redis"):
        namespace: RedisNamespace = request.getfixturevalue("redis_namespace")
        env = {"REDIS_URL": namespace.url, "REDIS_PREFIX": namespace.prefix}
    yield request.getfixturevalue("postgres_url"), env


def test_legacy_import_under_a_running_api_is_read_at_once(
    start_api: Callable[..., ServiceProcess], backend: tuple[str, dict[str, str]]
) -> None:
    database, env = backend
    api = start_api(database, RATE_LIMIT_PER_MINUTE="0", **env)
    with httpx.Client(base_url=api.url) as client:
        for _ in range(2):  # the second answer comes from the cache
            assert client.get(DAY).json() == {}
        v1 = client.get("/api/v1/plans", params={"date": "2024-05-10"}).json()
        assert v1["items"] == []
        cli(database, "import-legacy", str(LEGACY))
        assert sorted(client.get(DAY).json()) == ["coach_d", "coach_i"]
        assert len(client.get("/api/v1/plans", params={"date": "2024-05-10"}).json()["items"]) == 2
        plans = client.get("/health").json()["plans_count"]
    assert plans in (0, 4)  # the count is refreshed every few seconds, not per request


def test_restore_under_a_running_api_is_read_at_once(
    start_api: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    source = start_api(other)
    httpx.put(
        f"{source.url}/internal/plans/d/2026-11-25", json=plan_body(text="from the backup"), headers=AUTH
    ).raise_for_status()
    source.stop()
    cli(other, "backup", str(tmp_path / "backup.db"))

    live = f"sqlite:///{tmp_path / 'api.db'}"
    api = start_api(live)
    url = "/api/coach-plans/?coach=d&date=2026-11-25"
    with httpx.Client(base_url=api.url, headers=AUTH) as client:
        client.put("/internal/plans/d/2026-11-25", json=plan_body(text="live")).raise_for_status()
        for _ in range(2):
            assert client.get(url).json()["plan"] == "live"
        cli(live, "restore", "--force", str(tmp_path / "backup.db"))
        assert client.get(url).json()["plan"] == "from the backup"
