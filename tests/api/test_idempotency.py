"""A retried write changes nothing and answers what it first answered, however late it comes."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from coach_plans_api import db
from coach_plans_api.repository import Conn
from tests.conftest import plan_body

URL = "/internal/plans/coach_d/2026-11-25"
READ = "/api/coach-plans/?coach=d&date=2026-11-25"


def actor(user_id: str = "1001", name: str = "Dan", is_admin: bool = False) -> dict[str, Any]:
    return {"user_id": user_id, "display_name": name, "is_admin": is_admin}


def revisions(client: TestClient, plan_id: int) -> list[dict[str, Any]]:
    body: dict[str, list[dict[str, Any]]] = client.get(f"/api/v1/plans/{plan_id}/revisions").json()
    return body["revisions"]


def test_late_put_retry_answers_its_first_answer_and_keeps_the_newer_plan(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    a = plan_body(text="A: NVDA above 950", message_id="1", charts=["https://c.example/a.png"])
    first = api_client.put(URL, json=a, headers=internal_headers)
    second = api_client.put(
        URL, json=plan_body(text="B: NVDA below 940", message_id="2"), headers=internal_headers
    )
    late = api_client.put(URL, json=a, headers=internal_headers)
    assert (first.status_code, second.status_code, late.status_code) == (201, 200, 201)
    assert late.json() == first.json()
    assert api_client.get(READ).json()["plan"] == "B: NVDA below 940"
    assert [r["message_id"] for r in revisions(api_client, first.json()["id"])] == ["1", "2"]


def test_late_retry_of_a_middle_edit(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    api_client.put(URL, json=plan_body(text="one", message_id="1"), headers=internal_headers)
    two = api_client.put(URL, json=plan_body(text="two NVDA", message_id="2"), headers=internal_headers)
    api_client.put(URL, json=plan_body(text="three", message_id="3"), headers=internal_headers)
    again = api_client.put(URL, json=plan_body(text="two NVDA", message_id="2"), headers=internal_headers)
    assert (again.status_code, again.json()) == (200, two.json())
    assert again.json()["tickers"] == ["NVDA"]
    assert api_client.get(READ).json()["plan"] == "three"
    assert len(revisions(api_client, two.json()["id"])) == 3


def test_late_patch_retry(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    plan = api_client.put(URL, json=plan_body(text="posted", message_id="1"), headers=internal_headers).json()
    path = f"/internal/plans/{plan['id']}"
    x = {"plan_text": "edit x", "actor": actor(), "message_id": "2"}
    first = api_client.patch(path, json=x, headers=internal_headers)
    api_client.patch(
        path, json={"plan_text": "edit y", "actor": actor(), "message_id": "3"}, headers=internal_headers
    )
    late = api_client.patch(path, json=x, headers=internal_headers)
    assert (late.status_code, late.json()) == (200, first.json())
    assert api_client.get(READ).json()["plan"] == "edit y"
    assert len(revisions(api_client, plan["id"])) == 3


def test_late_put_retry_does_not_bring_back_a_deleted_plan(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    a = plan_body(text="A", message_id="1")
    first = api_client.put(URL, json=a, headers=internal_headers)
    deleted = api_client.request(
        "DELETE",
        f"/internal/plans/{first.json()['id']}",
        json={"actor": actor(), "message_id": "2"},
        headers=internal_headers,
    )
    assert deleted.status_code == 200
    late = api_client.put(URL, json=a, headers=internal_headers)
    assert (late.status_code, late.json()) == (201, first.json())
    assert api_client.get(READ).status_code == 404


def test_late_delete_retry_leaves_the_plan_posted_since(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    old = api_client.put(URL, json=plan_body(text="old", message_id="1"), headers=internal_headers).json()
    delete = {"actor": actor(), "message_id": "2"}
    first = api_client.request(
        "DELETE", f"/internal/plans/{old['id']}", json=delete, headers=internal_headers
    )
    new = api_client.put(URL, json=plan_body(text="new", message_id="3"), headers=internal_headers)
    late = api_client.request("DELETE", f"/internal/plans/{old['id']}", json=delete, headers=internal_headers)
    assert (late.status_code, late.json()) == (200, first.json())
    assert new.status_code == 201
    assert api_client.get(READ).json()["plan"] == "new"


def test_late_clear_retry_leaves_the_plan_posted_since(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    for coach in ("d", "i"):
        api_client.put(
            f"/internal/plans/{coach}/2026-11-25",
            json=plan_body(message_id=str(ord(coach))),
            headers=internal_headers,
        )
    clear = {"date": "2026-11-25", "actor": actor(is_admin=True), "message_id": "9"}
    first = api_client.post("/internal/plans/clear", json=clear, headers=internal_headers)
    api_client.put(URL, json=plan_body(text="after the clear", message_id="10"), headers=internal_headers)
    late = api_client.post("/internal/plans/clear", json=clear, headers=internal_headers)
    assert late.json() == first.json()
    assert first.json()["deleted"] == 2
    assert api_client.get(READ).json()["plan"] == "after the clear"


def edit(body: dict[str, Any], *, edited_at: str) -> dict[str, Any]:
    """`body` as the bot sends it for an edit of the Discord message (its edit time)."""
    return {**body, "message_edited_at": edited_at}


def test_message_edited_back_in_discord_is_applied(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    """Same message, text A, then A', then A again: each edit has its own time, so the last is
    the poster's edit back, not a retry of the first post."""
    bodies = [
        plan_body(text="A", message_id="1"),
        edit(plan_body(text="A prime", message_id="1"), edited_at="2026-11-25T13:00:00+00:00"),
        edit(plan_body(text="A", message_id="1"), edited_at="2026-11-25T13:05:00+00:00"),
    ]
    for body in bodies:
        response = api_client.put(URL, json=body, headers=internal_headers)
        assert response.json()["plan"] == body["plan_text"]
    assert api_client.get(READ).json()["plan"] == "A"


def test_late_retry_of_a_message_edited_since_changes_nothing(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    """The first post and the first edit of a message, retried after later edits of it."""
    post = plan_body(text="A: NVDA above 950", message_id="1")
    first_edit = edit(plan_body(text="A': NVDA above 955", message_id="1"), edited_at="2026-11-25T13:00:00Z")
    last_edit = edit(plan_body(text="A'': NVDA above 960", message_id="1"), edited_at="2026-11-25T13:05:00Z")
    writes = (post, first_edit, last_edit)
    answers = [api_client.put(URL, json=body, headers=internal_headers) for body in writes]
    assert [a.status_code for a in answers] == [201, 200, 200]
    late = [api_client.put(URL, json=body, headers=internal_headers) for body in (post, first_edit)]
    assert [(r.status_code, r.json()) for r in late] == [(a.status_code, a.json()) for a in answers[:2]]
    assert api_client.get(READ).json()["plan"] == "A'': NVDA above 960"
    assert len(revisions(api_client, answers[0].json()["id"])) == 3


def test_late_patch_retry_of_an_edited_message(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    """The bot's edit path (PATCH by plan id): a late retry of an earlier edit changes nothing,
    an edit back to that text (a new edit time) is applied."""
    plan = api_client.put(URL, json=plan_body(text="posted", message_id="1"), headers=internal_headers).json()
    path = f"/internal/plans/{plan['id']}"

    def patch(text: str, edited_at: str) -> dict[str, Any]:
        body = {"plan_text": text, "actor": actor(), "message_id": "1", "message_edited_at": edited_at}
        response = api_client.patch(path, json=body, headers=internal_headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    x = patch("edit x", "2026-11-25T13:00:00Z")
    patch("edit y", "2026-11-25T13:01:00Z")
    assert patch("edit x", "2026-11-25T13:00:00Z") == x
    assert api_client.get(READ).json()["plan"] == "edit y"
    patch("edit x", "2026-11-25T13:02:00Z")
    assert api_client.get(READ).json()["plan"] == "edit x"
    assert len(revisions(api_client, plan["id"])) == 4


def test_edit_time_must_carry_a_timezone(api_client: TestClient, internal_headers: dict[str, str]) -> None:
    body = edit(plan_body(), edited_at="2026-11-25T13:00:00")
    response = api_client.put(URL, json=body, headers=internal_headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "message_edited_at"


class CommitThenFail:
    """A driver connection whose next COMMIT is carried out, then reported failed: what a client
    sees when the connection breaks after the server committed but before it answered."""

    armed = False

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def execute(self, statement: str, *args: Any) -> Any:  # SQLite's group commit
        result = self._raw.execute(statement, *args)
        if statement == "COMMIT" and CommitThenFail.armed:
            CommitThenFail.armed = False
            raise sqlite3.OperationalError("disk I/O error")
        return result

    def commit(self) -> None:  # PostgreSQL
        self._raw.commit()
        if CommitThenFail.armed:
            CommitThenFail.armed = False
            raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_write_whose_commit_was_lost_clears_the_cache_and_its_retry_is_read_back(
    api_client: TestClient, internal_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write is answered 503 but stored: the cached answer from before it was served for an
    hour (the cache was cleared only after a write that succeeded, and its retry, finding the
    write done, announced nothing either)."""
    path, read = "/internal/plans/d/2026-11-25", "/api/coach-plans/?coach=d&date=2026-11-25"
    assert api_client.put(path, json=plan_body(text="one"), headers=internal_headers).status_code == 201
    assert api_client.get(read).json()["plan"] == "one"  # now cached
    monkeypatch.setattr(db, "Conn", lambda raw, **kwargs: Conn(CommitThenFail(raw), **kwargs))
    CommitThenFail.armed = True

    lost = api_client.put(path, json=plan_body(text="two", message_id="2"), headers=internal_headers)

    assert (lost.status_code, lost.json()["error"]) == (503, "storage_unavailable")
    assert api_client.get(read).json()["plan"] == "two"
    retry = api_client.put(path, json=plan_body(text="two", message_id="2"), headers=internal_headers)
    assert (retry.status_code, retry.json()["plan"]) == (200, "two")
