"""Catch-up after downtime (docs/bot.md), the parts that need no Discord objects.

The bot remembers, per channel, the last Discord message it processed (in the outbox file, its
only durable store). On start it reads each channel's history after that message and runs every
`!plan` found through the live path. A cursor only moves past a message once the message is
processed, and never past an older message still being processed, so a crash at any point
leaves the unprocessed messages after the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from coach_plans_bot.outbox import OutboxEntry, Status


class ChannelCursors:
    """Which message each channel's cursor may move to while messages are processed concurrently."""

    def __init__(self) -> None:
        self._in_flight: dict[int, set[int]] = {}
        self._done: dict[int, int] = {}

    def begin(self, channel_id: int, message_id: int) -> None:
        """A message of the channel is being processed."""
        self._in_flight.setdefault(channel_id, set()).add(message_id)

    def finish(self, channel_id: int, message_id: int) -> int | None:
        """The message is processed: the id the cursor may move to now, or None (not yet)."""
        in_flight = self._in_flight.get(channel_id, set())
        in_flight.discard(message_id)
        done = max(self._done.get(channel_id, 0), message_id)
        self._done[channel_id] = done
        if any(other < done for other in in_flight):
            # An older message is still on its way to the outbox; its finish moves the cursor.
            return None
        if not in_flight:
            self._in_flight.pop(channel_id, None)
        return done

    def abandon(self, channel_id: int, message_id: int) -> None:
        """The message will not be processed now (an error stopped the catch-up); stop waiting."""
        in_flight = self._in_flight.get(channel_id, set())
        in_flight.discard(message_id)
        if not in_flight:
            self._in_flight.pop(channel_id, None)


class HasId(Protocol):
    """Anything with a Discord id (a message)."""

    @property
    def id(self) -> int: ...


MessageT = TypeVar("MessageT", bound=HasId)


def unprocessed(messages: Iterable[MessageT], *, after: int) -> list[MessageT]:
    """Messages newer than the cursor, oldest first, whatever order the history came in."""
    return sorted((message for message in messages if message.id > after), key=lambda message: message.id)


@dataclass
class CatchUpReport:
    """What one channel's catch-up did."""

    channel_id: int
    scanned: int = 0
    stored: list[OutboxEntry] = field(default_factory=list)
    queued: list[OutboxEntry] = field(default_factory=list)
    refused: int = 0

    def count(self, entry: OutboxEntry | None) -> None:
        """Count the outcome of one caught-up `!plan` (None: refused before the outbox)."""
        if entry is None or entry.status is Status.REJECTED:
            self.refused += 1
        elif entry.status is Status.PENDING:
            self.queued.append(entry)
        else:
            self.stored.append(entry)

    def summary(self) -> str | None:
        """The one line told in the channel, or None when no plan was caught up."""
        saved = len(self.stored) + len(self.queued)
        if not saved:
            return None
        text = f"📥 Back online: saved {saved} plan{'s' if saved != 1 else ''} posted while the bot was away"
        if self.queued:
            text += f" ({len(self.queued)} queued until the plan service is reachable)"
        if self.refused:
            text += f"; {self.refused} `!plan` message(s) could not be saved (post them again to see why)"
        return text + "."
