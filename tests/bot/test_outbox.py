"""The durable outbox: outage, restart, ordering, backoff, exactly-once delivery."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import discord.ext.test as dpytest
import httpx
import pytest

from coach_plans_bot.api import PlansApi
from coach_plans_bot.backoff import Backoff
from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.config import BotSettings
from coach_plans_bot.outbox import Operation, Outbox, OutboxStore, Status
from tests.bot.conftest import TODAY, MakeBot, Sleeps, SwitchableTransport, eventually


async def live_plans(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.get("/api/v1/plans", params={"limit": 200})).json()["items"]
    return items


async def test_outage_plans_are_queued_then_each_stored_once(
    bot: CoachPlansBot,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
) -> None:
    api_transport.down = True
    await dpytest.message("!plan d: posted during the outage")
    await dpytest.message("!plan i: also during the outage", member=1)
    queued = [dpytest.get_message().content for _ in range(2)]
    assert all(reply.startswith("⏳ The plan service is unreachable right now.") for reply in queued)
    assert "queued (outbox #1)" in queued[0]
    assert "queued (outbox #2)" in queued[1]
    assert await bot.core.outbox.pending_count() == 2

    api_transport.down = False
    await bot.core.outbox.flush(force=True)
    await bot.core.outbox.flush(force=True)  # a second pass must not send anything again

    plans = await live_plans(api_reader)
    assert sorted(plan["plan"] for plan in plans) == [
        "also during the outage",
        "posted during the outage",
    ]
    assert await bot.core.outbox.pending_count() == 0
    # The channel is told when a queued plan finally lands.
    notices = [dpytest.get_message().content for _ in range(2)]
    assert all(notice.startswith("(delivered from the queue) ✅ Plan #") for notice in notices)
    puts = [w for w in api_transport.writes() if w[0] == "PUT"]
    assert len(puts) == 4  # 2 failed attempts while down + exactly 1 delivery each


async def test_a_new_command_after_the_outage_delivers_the_backlog_first(
    bot: CoachPlansBot, api_transport: SwitchableTransport, api_reader: httpx.AsyncClient
) -> None:
    api_transport.down = True
    await dpytest.message("!plan d: posted while down")
    api_transport.down = False
    await dpytest.message("!plan i: posted after the API came back")

    plans = sorted(await live_plans(api_reader), key=lambda plan: plan["id"])
    assert [plan["plan"] for plan in plans] == [
        "posted while down",
        "posted after the API came back",
    ]
    assert await bot.core.outbox.pending_count() == 0


async def test_undelivered_entries_are_delivered_after_a_restart(
    make_bot: MakeBot,
    bot_settings: BotSettings,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
) -> None:
    first = await make_bot()
    api_transport.down = True
    for coach in "disn":
        await dpytest.message(f"!plan {coach}: queued before the restart")
    assert await first.core.outbox.pending_count() == 4
    first.ws = None  # type: ignore[assignment]
    await first.close()

    api_transport.down = False
    second = await make_bot(use_dpytest=False)  # same outbox file, fresh process state

    async def delivered() -> bool:
        return await second.core.outbox.pending_count() == 0

    await eventually(delivered)
    plans = await live_plans(api_reader)
    assert sorted(plan["coach"] for plan in plans) == ["coach_d", "coach_i", "coach_n", "coach_s"]
    assert all(plan["date"] == TODAY for plan in plans)


# --- the outbox on its own, against a scripted API ---------------------------------------------
class ScriptedApi:
    """An httpx.MockTransport handler answering from a list of (status, body) or exceptions."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body)


PLAN = {"id": 7, "coach": "coach_d", "date": TODAY, "plan": "text", "charts": []}


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "outbox.db")


def outbox_for(store: OutboxStore, script: ScriptedApi, **kwargs: Any) -> Outbox:
    client = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url="http://api")
    return Outbox(store, PlansApi(client, internal_token="t"), **kwargs)


async def submit(outbox: Outbox, key: str = "1", **payload: Any) -> Any:
    body = {"plan_text": "text", "charts": [], "message_id": key, **payload}
    return await outbox.submit(
        key=key,
        operation=Operation.PUT_PLAN,
        payload={"coach": "coach_d", "date": TODAY, "body": body},
    )


async def test_retries_back_off_exponentially(store: OutboxStore) -> None:
    now = [1000.0]
    down = httpx.ConnectError("refused")
    script = ScriptedApi(down, down, down, (201, PLAN))
    outbox = outbox_for(store, script, backoff=Backoff(base=1, factor=2, maximum=60), clock=lambda: now[0])

    entry = await submit(outbox)
    assert entry.status is Status.PENDING
    assert entry.attempts == 1
    assert entry.next_attempt_at == 1001.0
    assert await outbox.flush() == 0  # backoff not expired: nothing is sent
    assert len(script.seen) == 1

    now[0] = 1001.0
    await outbox.flush()
    now[0] = 1003.0
    await outbox.flush()
    assert store.get(entry.id).next_attempt_at == 1003.0 + 4  # 1 s, 2 s, 4 s
    now[0] = 1007.0
    assert await outbox.flush() == 1
    assert store.get(entry.id).status is Status.DELIVERED
    assert len(script.seen) == 4


async def test_run_loop_sleeps_until_the_next_retry(store: OutboxStore) -> None:
    now = [0.0]
    script = ScriptedApi(httpx.ConnectError("down"), (201, PLAN))
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        now[0] += delay
        if len(sleeps) >= 3:
            raise asyncio.CancelledError

    outbox = outbox_for(
        store,
        script,
        clock=lambda: now[0],
        poll_seconds=5.0,
        backoff=Backoff(base=2, factor=2, maximum=60),
        sleep=fake_sleep,
    )
    store.add(
        key="1",
        operation=Operation.PUT_PLAN,
        channel_id=None,
        payload={"coach": "coach_d", "date": TODAY, "body": {}},
    )

    with pytest.raises(asyncio.CancelledError):
        await outbox.run()

    assert sleeps == [2.0, 5.0, 5.0]  # wait for the backoff, then poll
    assert store.pending() == []


async def test_entries_are_delivered_in_order_and_stop_at_the_first_outage(
    store: OutboxStore,
) -> None:
    script = ScriptedApi(httpx.ConnectError("down"))
    outbox = outbox_for(store, script)
    await submit(outbox, "1")
    await submit(outbox, "2")
    assert len(script.seen) == 2  # each submit tries the head of the queue only

    script.answers = [(201, PLAN)]
    await outbox.flush(force=True)
    keys = [json.loads(request.content)["message_id"] for request in script.seen[2:]]
    assert keys == ["1", "2"]


async def test_a_repeated_key_is_not_sent_twice(store: OutboxStore) -> None:
    script = ScriptedApi((201, PLAN))
    outbox = outbox_for(store, script)

    first = await submit(outbox, "55")
    again = await submit(outbox, "55")

    assert (first.id, first.status) == (again.id, Status.DELIVERED)
    assert len(script.seen) == 1


@pytest.mark.parametrize(
    ("answer", "retried"),
    [
        ((503, {"error": "storage_unavailable", "detail": "db down"}), True),
        ((500, {"error": "internal", "detail": "bug"}), True),
        ((429, {"error": "rate_limited", "detail": "slow down"}), True),
        ((401, {"error": "unauthorized", "detail": "bad token"}), True),
        (httpx.ReadTimeout("slow"), True),
        ((403, {"error": "forbidden", "detail": "not yours"}), False),
        ((404, {"error": "not_found", "detail": "gone"}), False),
        (
            (
                422,
                {
                    "error": "validation_error",
                    "detail": "bad",
                    "fields": [{"field": "plan_text", "message": "too long"}],
                },
            ),
            False,
        ),
        ((409, {"error": "conflict", "detail": "?"}), False),
        ((200, ["not", "a", "plan"]), False),
    ],
)
async def test_which_answers_are_retried(store: OutboxStore, answer: Any, retried: bool) -> None:
    outbox = outbox_for(store, ScriptedApi(answer))

    entry = await submit(outbox)

    assert entry.status is (Status.PENDING if retried else Status.REJECTED)


async def test_a_rejection_keeps_the_apis_reason(store: OutboxStore) -> None:
    outbox = outbox_for(
        store,
        ScriptedApi(
            (
                422,
                {
                    "error": "validation_error",
                    "detail": "bad",
                    "fields": [{"field": "charts", "message": "at most 10"}],
                },
            )
        ),
    )

    entry = await submit(outbox)

    assert (entry.error_status, entry.last_error) == (422, "bad (charts: at most 10)")


async def test_rejected_entry_does_not_block_the_queue(store: OutboxStore) -> None:
    script = ScriptedApi((403, {"error": "forbidden", "detail": "no"}), (201, PLAN))
    outbox = outbox_for(store, script)

    assert (await submit(outbox, "1")).status is Status.REJECTED
    assert (await submit(outbox, "2")).status is Status.DELIVERED


def test_settled_entries_are_pruned_but_pending_ones_kept(tmp_path: Path) -> None:
    now = [0.0]
    store = OutboxStore(tmp_path / "o.db", clock=lambda: now[0])
    old = store.add(key="old", operation=Operation.PUT_PLAN, payload={}, channel_id=None)
    store.mark_delivered(old.id, {})
    store.add(key="waiting", operation=Operation.PUT_PLAN, payload={}, channel_id=None)
    now[0] = 100.0

    assert store.prune(older_than_seconds=50) == 1
    assert [entry.key for entry in store.pending()] == ["waiting"]
    with pytest.raises(KeyError):
        store.get(old.id)
    store.close()


async def test_delete_by_message_without_a_plan_is_a_no_op(store: OutboxStore) -> None:
    script = ScriptedApi((200, {"items": [], "next_cursor": None}))
    outbox = outbox_for(store, script)

    entry = await outbox.submit(
        key="9:delete",
        operation=Operation.DELETE_BY_MESSAGE,
        payload={"source_message_id": "9", "body": {"message_id": "9"}},
    )

    assert (entry.status, entry.result) == (Status.DELIVERED, {"deleted": False})


async def test_edit_by_message_stores_the_plan_when_the_original_never_landed(
    store: OutboxStore,
) -> None:
    script = ScriptedApi((200, {"items": [], "next_cursor": None}), (201, PLAN))
    outbox = outbox_for(store, script)

    entry = await outbox.submit(
        key="9:edit:t",
        operation=Operation.EDIT_BY_MESSAGE,
        payload={
            "source_message_id": "9",
            "coach": "coach_d",
            "date": TODAY,
            "body": {"plan_text": "edited", "charts": [], "message_id": "9"},
        },
    )

    assert entry.status is Status.DELIVERED
    assert [(r.method, r.url.path) for r in script.seen] == [
        ("GET", "/api/v1/plans"),
        ("PUT", f"/internal/plans/coach_d/{TODAY}"),
    ]


async def test_delivery_follows_sleeps_of_the_injected_clock(
    make_bot: MakeBot, api_transport: SwitchableTransport
) -> None:
    """The bot's own background loops use the injected sleep: heartbeat every 30 s."""
    sleeps = Sleeps()
    bot = await make_bot(sleep=sleeps)

    async def heartbeat_sent() -> bool:
        return 30.0 in sleeps.delays

    await eventually(heartbeat_sent)
    assert ("POST", "/internal/bot/heartbeat") in api_transport.requests
    assert bot.core.settings.heartbeat_seconds == 30.0
