"""Catch-up re-reads old Discord messages: their late retries reach a real API and change nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import INTERNAL_TOKEN, ServiceProcess, plan_body

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def test_replayed_messages_never_revert_a_newer_plan(
    start_api: Callable[..., ServiceProcess], shared_database: str
) -> None:
    api = start_api(shared_database)
    posts = [plan_body(text=f"version {n}: NVDA above {950 + n}", message_id=str(100 + n)) for n in range(4)]
    with httpx.Client(base_url=api.url, headers=AUTH) as client:
        answers = [client.put("/internal/plans/d/2026-11-25", json=post) for post in posts]
        assert [a.status_code for a in answers] == [201, 200, 200, 200]
        # The bot restarts and its catch-up sends every message of the day again, oldest first.
        replayed = [client.put("/internal/plans/d/2026-11-25", json=post) for post in posts]
        assert [(r.status_code, r.json()) for r in replayed] == [(a.status_code, a.json()) for a in answers]
        plan = client.get("/api/coach-plans/?coach=d&date=2026-11-25").json()
        assert plan["plan"] == "version 3: NVDA above 953"
        revisions = client.get(f"/api/v1/plans/{plan['id']}/revisions").json()["revisions"]
        assert [r["message_id"] for r in revisions] == ["100", "101", "102", "103"]


def test_replayed_edits_never_revert_a_newer_edit(
    start_api: Callable[..., ServiceProcess], shared_database: str
) -> None:
    """One message posted, then edited twice in Discord; every write arrives again, late and out
    of order (a proxy's retry, an outbox replay): the plan stays at the last edit."""
    api = start_api(shared_database)
    post = plan_body(text="NVDA above 950", message_id="300")
    edits = [
        {**plan_body(text=f"NVDA above {950 + n}", message_id="300"), "message_edited_at": edited_at}
        for n, edited_at in ((1, "2026-11-25T13:01:00Z"), (2, "2026-11-25T13:02:00Z"))
    ]
    with httpx.Client(base_url=api.url, headers=AUTH) as client:
        answers = [client.put("/internal/plans/d/2026-11-26", json=body) for body in (post, *edits)]
        assert [a.status_code for a in answers] == [201, 200, 200]
        for body, answer in reversed(list(zip((post, *edits), answers, strict=True))):
            again = client.put("/internal/plans/d/2026-11-26", json=body)
            assert (again.status_code, again.json()) == (answer.status_code, answer.json())
        assert client.get("/api/coach-plans/?coach=d&date=2026-11-26").json()["plan"] == "NVDA above 952"
