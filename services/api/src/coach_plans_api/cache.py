"""In-process read cache: rendered responses by request key, TTL + LRU, cleared on every write."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    body: bytes
    etag: str
    expires_at: float


class ReadCache:
    """Thread-safe; expired entries stay (until evicted) to answer while the database is down."""

    def __init__(
        self, *, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not allow_stale and entry.expires_at <= self._clock():
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, *, status: int, body: bytes, etag: str, generation: int) -> None:
        """Store unless a write happened since the caller read (`generation` is then stale)."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            self._entries[key] = CachedResponse(status, body, etag, self._clock() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
