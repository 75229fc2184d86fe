"""The durable outbox: outage, restart, ordering, backoff, exactly-once delivery."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import discord.ext.test as dpytest
import httpx
import pytest
from discord.ext import commands
from discord.ext.test import backend

from coach_plans_bot.api import PlansApi
from coach_plans_bot.backoff import Backoff
from coach_plans_bot.bot import CoachPlansBot
from coach_plans_bot.config import BotSettings
from coach_plans_bot.outbox import Operation, Outbox, OutboxEntry, OutboxStore, Status
from coach_plans_bot.parsing import Roster
from coach_plans_bot.replies import outbox_report, settled_notice
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
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]  # the last one repeats
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body)


PLAN = {"id": 7, "coach": "coach_d", "date": TODAY, "plan": "text", "charts": []}
PAYLOAD = {"coach": "coach_d", "date": TODAY, "body": {}}


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


async def test_a_clock_set_back_does_not_hold_retries_back_by_the_step(store: OutboxStore) -> None:
    """Retry times are stored wall-clock times: after the clock is set back an hour, an entry due
    in 4 s must not wait an hour and 4 s (the wait is never longer than the longest backoff)."""
    now = [10_000.0]
    down = httpx.ConnectError("refused")
    script = ScriptedApi(down, down, down, (201, PLAN))
    outbox = outbox_for(store, script, backoff=Backoff(base=1, factor=2, maximum=60), clock=lambda: now[0])
    entry = await submit(outbox)
    now[0] += 1
    await outbox.flush()
    assert store.get(entry.id).next_attempt_at == 10_003.0  # the next try in 2 s

    now[0] -= 3600  # the clock is set back an hour
    assert await outbox.flush() == 0  # tried at once (the API is still down): not held back an hour
    assert len(script.seen) == 3
    assert store.get(entry.id).next_attempt_at == now[0] + 4  # the backoff goes on from the new time
    now[0] += 4
    assert await outbox.flush() == 1
    assert store.get(entry.id).status is Status.DELIVERED


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
        ((502, {"error": "bad_gateway", "detail": "proxy"}), True),
        ((408, {"error": "timeout", "detail": "slow"}), True),
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


# --- per-lane order, bounded attempts, dead letters ----------------------------------------------
async def test_a_write_the_api_keeps_failing_holds_back_no_other_coach_or_date(
    bot: CoachPlansBot, api_transport: SwitchableTransport, api_reader: httpx.AsyncClient
) -> None:
    api_transport.failing[f"/internal/plans/coach_d/{TODAY}"] = 500
    await dpytest.message("!plan d: the API fails on this one")
    await dpytest.message("!plan i: Coach I, same day", member=1)
    await dpytest.message("!plan d 2026-11-26: Coach D, next day")
    replies = [dpytest.get_message().content for _ in range(3)]

    assert replies[0].startswith("⏳ The plan service is unreachable right now.")
    assert all(reply.startswith("✅ Plan #") for reply in replies[1:])
    stored = sorted((plan["coach"], plan["date"]) for plan in await live_plans(api_reader))
    assert stored == [("coach_d", "2026-11-26"), ("coach_i", TODAY)]
    [waiting] = bot.core.outbox.store.pending()
    # Still queued for a retry (a slow machine may already have made the second attempt, 1 s on;
    # the spacing of attempts is checked on an injected clock below).
    assert waiting.error_status == 500
    assert waiting.attempts >= 1


async def test_a_failing_writes_attempts_are_spaced_by_the_backoff_then_it_is_dead(
    store: OutboxStore,
) -> None:
    now = [1000.0]
    attempts_at: list[float] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/internal/plans/coach_d/"):
            attempts_at.append(now[0])
            return httpx.Response(500, json={"error": "internal_error", "detail": "a bug"})
        return httpx.Response(201, json=PLAN)

    outbox = outbox_for(
        store, ScriptedApi(), backoff=Backoff(base=1, factor=2, maximum=60), clock=lambda: now[0]
    )
    outbox._api._client._transport = httpx.MockTransport(api)
    failing = await outbox.submit(
        key="1",
        operation=Operation.PUT_PLAN,
        payload={"coach": "coach_d", "date": TODAY, "body": {}},
        lanes=("plan:coach_d:" + TODAY,),
    )
    # Other writes arrive meanwhile: each delivery pass must leave the failing write to its backoff.
    for n in range(2, 40):
        now[0] += 0.5
        await outbox.submit(
            key=str(n),
            operation=Operation.PUT_PLAN,
            payload={"coach": "coach_i", "date": TODAY, "body": {}},
            lanes=(f"plan:coach_i:{n}",),
        )
        await outbox.flush()

    assert attempts_at == [1000.0, 1001.0, 1003.0, 1007.0, 1015.0]  # 1, 2, 4, 8 s apart
    dead = store.get(failing.id)
    assert (dead.status, dead.attempts, dead.error_status) == (Status.DEAD, 5, 500)
    assert "a bug" in (dead.last_error or "")
    assert store.counts()[Status.DELIVERED] == 38


async def test_a_later_write_of_the_same_coach_and_date_waits_for_the_failing_one(store: OutboxStore) -> None:
    now = [0.0]
    script = ScriptedApi((500, {"error": "internal_error", "detail": "bug"}))
    outbox = outbox_for(store, script, max_attempts=2, clock=lambda: now[0])
    lane = ("plan:coach_d:" + TODAY,)
    first = await outbox.submit(key="1", operation=Operation.PUT_PLAN, payload=PAYLOAD, lanes=lane)
    script.answers = [(201, PLAN)]
    second = await outbox.submit(key="2", operation=Operation.PUT_PLAN, payload=PAYLOAD, lanes=lane)
    assert (first.status, second.status) == (Status.PENDING, Status.PENDING)  # order in the lane
    assert len(script.seen) == 1

    script.answers = [(500, {"error": "internal_error", "detail": "bug"}), (201, PLAN)]
    now[0] += 10
    await outbox.flush()

    assert store.get(first.id).status is Status.DEAD  # no longer holds its lane back
    assert store.get(second.id).status is Status.DELIVERED


async def test_an_admin_retries_or_drops_dead_entries(store: OutboxStore) -> None:
    script = ScriptedApi((500, {"error": "internal_error", "detail": "bug"}))
    outbox = outbox_for(store, script, max_attempts=1)
    one = await outbox.submit(key="1", operation=Operation.PUT_PLAN, payload=PAYLOAD)
    two = await outbox.submit(key="2", operation=Operation.PUT_PLAN, payload=PAYLOAD)
    assert [store.get(e.id).status for e in (one, two)] == [Status.DEAD, Status.DEAD]
    assert store.counts()[Status.DEAD] == 2

    script.answers = [(201, PLAN)]
    retried = await outbox.retry(one.id)
    assert retried is not None
    assert retried.status is Status.DELIVERED
    assert await outbox.drop(two.id)
    assert store.get(two.id).status is Status.DROPPED
    assert await outbox.retry(two.id) is None  # only dead or rejected entries
    assert not await outbox.drop(one.id)
    assert store.counts()[Status.DEAD] == 0


def test_an_outbox_file_from_before_lanes_keeps_its_global_order(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,"
            " operation TEXT NOT NULL, payload TEXT NOT NULL, channel_id INTEGER,"
            " status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
            " next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT, error_status INTEGER,"
            " result TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);"
            "INSERT INTO outbox (key, operation, payload, created_at, updated_at)"
            " VALUES ('1', 'put_plan', '{}', 0, 0);"
        )
    db.close()

    store = OutboxStore(path)
    [entry] = store.pending()
    assert entry.lanes == {"*"}
    store.close()


async def test_outbox_command_lists_retries_and_drops_dead_entries(
    make_bot: MakeBot,
    bot_settings: BotSettings,
    api_transport: SwitchableTransport,
    api_reader: httpx.AsyncClient,
) -> None:
    settings = bot_settings.model_copy(update={"outbox_max_attempts": 1, "admin_role_ids": frozenset({77})})
    bot = await make_bot(settings)
    admin = dpytest.get_config().members[2]
    await dpytest.add_role(admin, backend.make_role("Admins", admin.guild, id_num=77))
    api_transport.failing[f"/internal/plans/coach_d/{TODAY}"] = 500
    await dpytest.message("!plan d: the API fails on this one")
    await dpytest.message("!plan s: Coach S, stored", member=1)
    api_transport.failing[f"/internal/plans/coach_s/{TODAY}"] = 500
    await dpytest.message("!plan s: Coach S, replaced? no: the API fails on it", member=1)
    replies = [dpytest.get_message().content for _ in range(3)]
    assert replies[0].startswith(
        "❌ Your plan could not be delivered: the plan service failed on it 1 time ("
    )
    assert "an admin can `!outbox retry 1`" in replies[0]

    with pytest.raises(commands.CheckFailure):  # dpytest re-raises what the bot answered
        await dpytest.message("!outbox", member=0)
    assert dpytest.get_message().content == "❌ Only admins can use `!outbox`."
    await dpytest.message("!outbox", member=2)
    listing = dpytest.get_message().content
    assert listing.startswith("**Outbox**: 0 pending, 2 dead")
    assert f"💀 #1 put_plan coach_d {TODAY} dead: API answered 500 internal_error: a bug" in listing

    assert bot.core.outbox.store.counts()[Status.DEAD] == 2
    assert await bot.core.send_heartbeat(connected=True)
    metrics = (await api_reader.get("/metrics")).text
    assert 'coach_plans_bot_outbox_entries{bot_id="main",state="dead"} 2.0' in metrics

    api_transport.failing.clear()
    await dpytest.message("!outbox retry 1", member=2)
    assert dpytest.get_message().content.startswith("✅ Plan #")
    await dpytest.message("!outbox drop 3", member=2)
    assert dpytest.get_message().content == "🗑️ Outbox #3 dropped: it will not be sent."
    with pytest.raises(commands.CommandInvokeError):
        await dpytest.message("!outbox drop 3", member=2)
    assert dpytest.get_message().content == "❌ Outbox #3 is not a dead entry."
    stored = sorted((plan["coach"], plan["plan"]) for plan in await live_plans(api_reader))
    assert stored == [("coach_d", "the API fails on this one"), ("coach_s", "Coach S, stored")]


def test_outbox_answers_for_dead_and_pending_entries() -> None:
    dead = OutboxEntry(
        id=4,
        key="1",
        operation=Operation.PUT_PLAN,
        payload=PAYLOAD,
        channel_id=None,
        status=Status.DEAD,
        attempts=5,
        next_attempt_at=0,
        last_error="bug",
        error_status=500,
        result=None,
    )
    patch = dataclasses.replace(
        dead,
        id=5,
        operation=Operation.PATCH_PLAN,
        payload={"plan_id": 9},
        status=Status.PENDING,
        attempts=2,
        last_error="API unreachable",
    )
    clear = dataclasses.replace(
        dead,
        id=6,
        operation=Operation.CLEAR_DATE,
        payload={},
        status=Status.PENDING,
        attempts=0,
        last_error=None,
    )

    assert settled_notice(dead, Roster()) == (
        "❌ The queued write (outbox #4) could not be delivered: the plan service failed on it 5 times (bug)."
        " It is kept as outbox #4; an admin can `!outbox retry 4`."
    )
    assert outbox_report([patch, clear], [dead]).splitlines() == [
        "**Outbox**: 2 pending, 1 dead",
        "⏳ #5 patch_plan plan #9, 2 attempt(s) — last error: API unreachable",
        "⏳ #6 clear_date, 0 attempt(s)",
        f"💀 #4 put_plan coach_d {TODAY} dead: bug",
        "`!outbox retry <id>` sends a dead entry again; `!outbox drop <id>` gives up on it.",
    ]
