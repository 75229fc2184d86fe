"""A thread-safe TTL + LRU cache."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CacheEntry", "TTLCache"]

logger = logging.getLogger("coach_plans_client.cache")

V = TypeVar("V")


@dataclass(slots=True)
class CacheEntry(Generic[V]):
    """A cached value, when it stops being fresh, and the ETag it was served with."""

    value: V
    expires_at: float
    etag: str | None = None


class TTLCache(Generic[V]):
    """Entries expire after their TTL; beyond ``max_size`` the least recently used go first.

    Expired entries are kept (until evicted) so that they can be revalidated with their ETag.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[Hashable, CacheEntry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The fresh value for ``key`` (marking it recently used), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.expires_at:
                self._entries.move_to_end(key)
                self.hits += 1
                logger.debug("cache hit: %s", key)
                return entry.value
            self.misses += 1
            logger.debug("cache miss: %s (%s)", key, "expired" if entry else "absent")
            return None

    def get_stale(self, key: Hashable) -> CacheEntry[V] | None:
        """The entry for ``key`` even if expired, without counting a hit or a miss."""
        with self._lock:
            return self._entries.get(key)

    def set(self, key: Hashable, value: V, *, ttl: float | None = None, etag: str | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default: the cache's TTL)."""
        lifetime = self.ttl if ttl is None else ttl
        with self._lock:
            self._entries[key] = CacheEntry(value, self._clock() + lifetime, etag)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                evicted, _ = self._entries.popitem(last=False)
                logger.debug("cache evict: %s", evicted)

    def refresh(self, key: Hashable, *, ttl: float | None = None) -> V | None:
        """Make an existing entry fresh again (after a 304) and return its value."""
        lifetime = self.ttl if ttl is None else ttl
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.expires_at = self._clock() + lifetime
            self._entries.move_to_end(key)
            return entry.value

    def clear(self) -> None:
        """Drop every entry (the hit/miss counters are kept)."""
        with self._lock:
            self._entries.clear()

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries
