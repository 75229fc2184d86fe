"""Exponential backoff shared by the outbox and the Discord reconnect policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number `attempt` (1-based): base * factor**(attempt-1), capped."""

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the given retry."""
        if attempt < 1:
            return 0.0
        return float(min(self.base * self.factor ** (attempt - 1), self.maximum))
