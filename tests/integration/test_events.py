"""Server-Sent Events: subscribers see creates, edits and deletes in order, across instances."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from coach_plans_api import repository as repo
from coach_plans_api.models import RevisionAction
from tests.conftest import INTERNAL_TOKEN, RedisNamespace, ServiceProcess, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
ACTOR = {"user_id": "1001", "display_name": "Dan"}


class Subscriber:
    """Reads `/api/v1/events` in a thread; `connected` is set once the stream is open."""

    def __init__(self, url: str, *, last_event_id: int | None = None) -> None:
        self._headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.events: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the event stream did not open"

    def _run(self, url: str) -> None:
        try:
            self._read(url)
        except httpx.HTTPError as exc:  # the server stops at the end of the test
            self.error = exc

    def _read(self, url: str) -> None:
        with httpx.stream(
            "GET", f"{url}/api/v1/events", headers=self._headers, timeout=httpx.Timeout(30, read=60)
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line == "":
                    if "data" in fields:
                        self.events.put((fields["id"], fields["event"], json.loads(fields["data"])))
                    fields = {}
                elif ":" in line and not line.startswith(":"):
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
                if self._stop.is_set():
                    return

    def take(self, count: int) -> list[tuple[str, str, dict[str, Any]]]:
        taken = [self.events.get(timeout=10) for _ in range(count)]
        assert self.error is None, self.error
        return taken


def test_subscriber_sees_create_update_delete_in_order(start_api: Callable[..., ServiceProcess]) -> None:
    api = start_api()
    subscriber = Subscriber(api.url)
    with httpx.Client(base_url=api.url, headers=AUTH) as client:
        plan = client.put("/internal/plans/d/2026-11-25", json=plan_body(text="v1", message_id="1")).json()
        client.put("/internal/plans/d/2026-11-25", json=plan_body(text="v2", message_id="2"))
        client.patch(
            f"/internal/plans/{plan['id']}", json={"plan_text": "v3", "actor": ACTOR, "message_id": "3"}
        )
        client.request("DELETE", f"/internal/plans/{plan['id']}", json={"actor": ACTOR, "message_id": "4"})
    received = subscriber.take(4)
    assert [kind for _, kind, _ in received] == [
        "plan.created",
        "plan.updated",
        "plan.updated",
        "plan.deleted",
    ]
    ids = [int(event_id) for event_id, _, _ in received]
    assert ids == sorted(ids)
    assert {(d["plan_id"], d["coach"], d["date"]) for _, _, d in received} == {
        (plan["id"], "coach_d", "2026-11-25")
    }
    assert subscriber.events.empty()


@pytest.mark.redis
def test_write_on_one_instance_reaches_subscriber_on_the_other(
    start_api: Callable[..., ServiceProcess], redis_namespace: RedisNamespace, tmp_path: Any
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    redis_env = {"REDIS_URL": redis_namespace.url, "REDIS_PREFIX": redis_namespace.prefix}
    one = start_api(database, **redis_env)
    two = start_api(database, **redis_env)
    on_two = Subscriber(two.url)
    on_one = Subscriber(one.url)
    created = httpx.put(
        f"{one.url}/internal/plans/i/2026-11-25", json=plan_body(text="x"), headers=AUTH
    ).json()
    for subscriber in (on_two, on_one):
        (_, kind, data) = subscriber.take(1)[0]
        assert (kind, data["plan_id"]) == ("plan.created", created["id"])
    assert on_two.events.empty()
    assert on_one.events.empty()


def revision_ids(url: str, plan_id: int) -> list[int]:
    revisions = httpx.get(f"{url}/api/v1/plans/{plan_id}/revisions").json()["revisions"]
    return [int(r["id"]) for r in revisions]


@pytest.mark.postgres
def test_postgres_revision_ids_become_visible_in_id_order(
    start_api: Callable[..., ServiceProcess], postgres_url: str
) -> None:
    """A write that took a later revision id waits for an earlier one to commit: otherwise a
    subscriber could see (and resume after) the later id, and never get the earlier one."""
    import psycopg

    api = start_api(postgres_url)
    client = httpx.Client(base_url=api.url, headers=AUTH, timeout=10)
    first = client.put("/internal/plans/d/2026-11-25", json=plan_body(text="v1", message_id="1")).json()
    (before,) = revision_ids(api.url, first["id"])
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as slow, ThreadPoolExecutor(1) as pool:
        # A slow writer: its revision id is taken, its transaction not committed yet.
        held = repo.insert_revision(
            repo.Conn(slow, postgres=True, error=psycopg.Error),
            {
                "plan_id": first["id"],
                "action": RevisionAction.edit,
                "plan_text": "held",
                "charts_json": "[]",
                "editor": "Dan",
                "editor_id": "1001",
                "message_id": "2",
                "payload_hash": "held",
                "created_at": dt.datetime.now(dt.UTC),
            },
        )
        later = pool.submit(
            client.put, "/internal/plans/i/2026-11-25", json=plan_body(text="later", message_id="3")
        )
        time.sleep(0.5)
        assert not later.done(), "a later revision id committed while an earlier one was pending"
        slow.commit()
        answer = later.result(timeout=10)
    assert answer.status_code == 201
    (after,) = revision_ids(api.url, answer.json()["id"])
    assert before < held < after
    resumed = Subscriber(api.url, last_event_id=before)
    assert [int(event_id) for event_id, _, _ in resumed.take(2)] == [held, after]
    client.close()


@pytest.mark.redis
def test_writes_while_the_pubsub_connection_is_reestablished_are_not_lost(
    start_api: Callable[..., ServiceProcess], redis_namespace: RedisNamespace
) -> None:
    """Redis drops the listener (what a restart or `CLIENT KILL TYPE pubsub` does): the writes
    published before it is back reach the subscriber from the database."""
    import redis

    api = start_api(REDIS_URL=redis_namespace.url, REDIS_PREFIX=redis_namespace.prefix)
    subscriber = Subscriber(api.url)
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=10) as client:
        client.put("/internal/plans/d/2026-11-25", json=plan_body(text="before", message_id="1"))
        assert [kind for _, kind, _ in subscriber.take(1)] == ["plan.created"]
        admin = redis.Redis.from_url(redis_namespace.url)
        admin.client_kill_filter(_type="pubsub")
        admin.close()
        for n, coach in enumerate("isn", start=2):
            client.put(f"/internal/plans/{coach}/2026-11-25", json=plan_body(text="x", message_id=str(n)))
    assert [data["coach"] for _, _, data in subscriber.take(3)] == ["coach_i", "coach_s", "coach_n"]
