"""What the Discord bot and the mock bot share: HTTP client, API wrapper, outbox, roster, writes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from coach_plans_bot.api import ApiError, PlansApi
from coach_plans_bot.backoff import Backoff, Sleep
from coach_plans_bot.catchup import ChannelCursors
from coach_plans_bot.config import BotSettings
from coach_plans_bot.outbox import EVERY_LANE, Notify, Operation, Outbox, OutboxEntry, OutboxStore, Status
from coach_plans_bot.parsing import Attachment, Roster
from coach_plans_bot.permissions import PermissionPolicy

log = logging.getLogger(__name__)

SETTLED_ENTRIES_KEPT_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class Actor:
    """Who does a write, as the API wants it."""

    user_id: int
    display_name: str
    is_admin: bool = False

    def as_json(self) -> dict[str, Any]:
        """The `actor` object of the internal API."""
        return {
            "user_id": str(self.user_id),
            "display_name": (self.display_name.strip() or str(self.user_id))[:100],
            "is_admin": self.is_admin,
        }


def chart_json(chart: Attachment) -> dict[str, Any]:
    """The `chart` object of the internal API (optional fields left out when unknown)."""
    data: dict[str, Any] = {"url": chart.url, "filename": chart.filename}
    if chart.content_type:
        data["content_type"] = chart.content_type
    if chart.size_bytes:
        data["size_bytes"] = chart.size_bytes
    return data


def plan_lane(coach: str, date: dt.date | str) -> str:
    """The outbox lane of every write to one coach's plan of one date."""
    day = date.isoformat() if isinstance(date, dt.date) else date
    return f"plan:{coach}:{day}"


def message_lane(message_id: int) -> str:
    """The outbox lane of a `!plan` message and of its later edits and deletion."""
    return f"message:{message_id}"


class BotCore:
    """Owns the long-lived resources: one `httpx.AsyncClient`, the outbox, background tasks."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        client: httpx.AsyncClient,
        store: OutboxStore,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.api = PlansApi(client, internal_token=settings.internal_api_token.get_secret_value())
        self.outbox = Outbox(
            store,
            self.api,
            backoff=Backoff(maximum=settings.outbox_retry_max_seconds),
            max_attempts=settings.outbox_max_attempts,
            sleep=sleep,
        )
        self.cursors = ChannelCursors()
        self.policy = PermissionPolicy.from_settings(settings)
        self.roster = Roster()
        self.roster_from_api = False
        self._sleep = sleep
        self._now = now or (lambda: dt.datetime.now(settings.timezone))
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls,
        settings: BotSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], dt.datetime] | None = None,
    ) -> BotCore:
        """Open the HTTP client and the outbox file, and load the roster."""
        store = await asyncio.to_thread(OutboxStore, settings.outbox_path)
        await asyncio.to_thread(store.prune, older_than_seconds=SETTLED_ENTRIES_KEPT_SECONDS)
        client = httpx.AsyncClient(
            base_url=settings.api_base_url,
            transport=transport,
            timeout=settings.api_timeout_seconds,
            headers={"User-Agent": "coach-plans-bot"},
        )
        core = cls(settings, client=client, store=store, sleep=sleep, now=now)
        await core.refresh_roster()
        return core

    async def aclose(self) -> None:
        """Stop the background tasks, close the HTTP client and the outbox file."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.client.aclose()
        await asyncio.to_thread(self.outbox.store.close)

    def today(self, at: dt.datetime | None = None) -> dt.date:
        """The date in the market time zone (PLAN_TIMEZONE) now, or at `at`; never the server's zone."""
        return (at or self._now()).astimezone(self.settings.timezone).date()

    async def refresh_roster(self) -> None:
        """Load the coaches from the API; keep the default d, i, s, n if it is unreachable."""
        try:
            coaches = await self.api.coaches()
        except ApiError as exc:
            log.warning("coach roster: API unavailable (%s); using the default d, i, s, n", exc)
            return
        if coaches:
            self.roster = Roster(coaches)
            self.roster_from_api = True
            log.info("coach roster: %s", ", ".join(coach.coach for coach in coaches))

    def start_background(self, *, connected: Callable[[], bool], on_settled: Notify | None) -> None:
        """Start outbox delivery and the heartbeat."""
        self.outbox.on_settled = on_settled
        self._tasks.append(asyncio.create_task(self.outbox.run(), name="outbox-delivery"))
        self._tasks.append(asyncio.create_task(self.heartbeat_loop(connected), name="heartbeat"))

    async def send_heartbeat(self, *, connected: bool) -> bool:
        """One heartbeat, with the outbox's counts; False (logged) when the API cannot be reached."""
        counts = await asyncio.to_thread(self.outbox.store.counts)
        if counts[Status.DEAD]:
            log.warning(
                "outbox: %d dead entr%s waiting for an admin (`!outbox`)",
                counts[Status.DEAD],
                "y" if counts[Status.DEAD] == 1 else "ies",
            )
        try:
            await self.api.heartbeat(
                bot_id=self.settings.bot_id,
                connected=connected,
                mock_mode=self.settings.mock_mode,
                outbox_pending=counts[Status.PENDING],
                outbox_dead=counts[Status.DEAD],
            )
        except ApiError as exc:
            log.warning("heartbeat failed: %s", exc)
            return False
        return True

    async def heartbeat_loop(self, connected: Callable[[], bool]) -> None:
        """Heartbeat every HEARTBEAT seconds; retry the roster while it is the fallback."""
        while True:
            if await self.send_heartbeat(connected=connected()) and not self.roster_from_api:
                await self.refresh_roster()
            await self._sleep(self.settings.heartbeat_seconds)

    # --- catch-up cursors ---------------------------------------------------------
    async def channel_cursors(self) -> dict[int, int]:
        """The last processed message id per channel, as stored in the outbox file."""
        return await asyncio.to_thread(self.outbox.store.cursors)

    def begin_message(self, channel_id: int, message_id: int) -> None:
        """A channel message is being processed (the cursor must not pass it yet)."""
        self.cursors.begin(channel_id, message_id)

    async def finish_message(self, channel_id: int, message_id: int) -> None:
        """The message is processed: move the channel's cursor as far as is safe."""
        cursor = self.cursors.finish(channel_id, message_id)
        if cursor is not None:
            await asyncio.to_thread(self.outbox.store.advance_cursor, channel_id, cursor)

    # --- writes, all through the outbox -------------------------------------------------
    async def submit_plan(
        self,
        *,
        coach: str,
        date: dt.date,
        text: str,
        charts: Sequence[Attachment],
        actor: Actor,
        message_id: int,
        channel: str | None,
        channel_id: int | None,
    ) -> OutboxEntry:
        """Create or replace a coach's plan for a date."""
        return await self.outbox.submit(
            key=str(message_id),
            operation=Operation.PUT_PLAN,
            payload={
                "coach": coach,
                "date": date.isoformat(),
                "body": self._plan_body(
                    text=text,
                    charts=charts,
                    actor=actor,
                    message_id=message_id,
                    channel=channel,
                    channel_id=channel_id,
                ),
            },
            channel_id=channel_id,
            lanes=(plan_lane(coach, date), message_lane(message_id)),
        )

    async def submit_edit(
        self,
        *,
        plan_id: int,
        text: str,
        actor: Actor,
        message_id: int,
        channel_id: int | None,
        lane: str = EVERY_LANE,
    ) -> OutboxEntry:
        """Replace the text of a plan by id (`lane`: the plan's coach and date, when known)."""
        return await self.outbox.submit(
            key=str(message_id),
            operation=Operation.PATCH_PLAN,
            payload={
                "plan_id": plan_id,
                "body": {
                    "plan_text": text,
                    "actor": actor.as_json(),
                    "message_id": str(message_id),
                },
            },
            channel_id=channel_id,
            lanes=(lane,),
        )

    async def submit_delete(
        self,
        *,
        plan_id: int,
        actor: Actor,
        message_id: int,
        channel_id: int | None,
        lane: str = EVERY_LANE,
    ) -> OutboxEntry:
        """Delete a plan by id (`lane`: the plan's coach and date, when known)."""
        return await self.outbox.submit(
            key=str(message_id),
            operation=Operation.DELETE_PLAN,
            payload={
                "plan_id": plan_id,
                "body": {"actor": actor.as_json(), "message_id": str(message_id)},
            },
            channel_id=channel_id,
            lanes=(lane,),
        )

    async def submit_clear(
        self, *, date: dt.date, actor: Actor, message_id: int, channel_id: int | None
    ) -> OutboxEntry:
        """Delete every plan of a date (admin)."""
        return await self.outbox.submit(
            key=str(message_id),
            operation=Operation.CLEAR_DATE,
            payload={
                "body": {
                    "date": date.isoformat(),
                    "actor": actor.as_json(),
                    "message_id": str(message_id),
                },
            },
            channel_id=channel_id,
        )

    async def submit_message_edit(
        self,
        *,
        coach: str,
        date: dt.date,
        text: str,
        charts: Sequence[Attachment],
        actor: Actor,
        message_id: int,
        edited_at: str,
        channel: str | None,
        channel_id: int | None,
    ) -> OutboxEntry:
        """The original `!plan` message was edited: update the plan it created."""
        return await self.outbox.submit(
            key=f"{message_id}:edit:{edited_at}",
            operation=Operation.EDIT_BY_MESSAGE,
            payload={
                "source_message_id": str(message_id),
                "coach": coach,
                "date": date.isoformat(),
                "body": {
                    **self._plan_body(
                        text=text,
                        charts=charts,
                        actor=actor,
                        message_id=message_id,
                        channel=channel,
                        channel_id=channel_id,
                    ),
                    # Each edit is a write of its own, even one back to an earlier text.
                    "message_edited_at": edited_at,
                },
            },
            channel_id=channel_id,
            lanes=(plan_lane(coach, date), message_lane(message_id)),
        )

    async def submit_message_delete(
        self, *, message_id: int, actor: Actor | None, channel_id: int | None
    ) -> OutboxEntry:
        """The original `!plan` message was deleted: delete the plan it created.

        Without an actor (message not cached), the plan's recorded author is the actor.
        """
        body: dict[str, Any] = {"message_id": str(message_id)}
        if actor is not None:
            body["actor"] = actor.as_json()
        return await self.outbox.submit(
            key=f"{message_id}:delete",
            operation=Operation.DELETE_BY_MESSAGE,
            payload={"source_message_id": str(message_id), "body": body},
            channel_id=channel_id,
            lanes=(message_lane(message_id),),
        )

    @staticmethod
    def _plan_body(
        *,
        text: str,
        charts: Sequence[Attachment],
        actor: Actor,
        message_id: int,
        channel: str | None,
        channel_id: int | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "plan_text": text,
            "charts": [chart_json(chart) for chart in charts],
            "actor": actor.as_json(),
            "message_id": str(message_id),
        }
        if channel:
            body["channel"] = channel[:100]
        if channel_id is not None:
            body["channel_id"] = str(channel_id)
        return body
