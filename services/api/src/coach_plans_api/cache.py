"""Read cache of rendered responses by request key, cleared on every write.

`ReadCache` lives in the process (TTL + LRU); `RedisReadCache` is shared by every API instance
pointed at the same Redis, so a write through one instance is never answered stale by another.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

log = logging.getLogger("coach_plans_api.cache")


@dataclass(frozen=True, slots=True)
class CachedResponse:
    body: bytes
    etag: str
    expires_at: float


class Cache(Protocol):
    @property
    def generation(self) -> int: ...

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None: ...

    def put(self, key: str, *, body: bytes, etag: str, generation: int) -> None: ...

    def invalidate(self) -> None: ...


class ReadCache:
    """Thread-safe; expired entries stay (until evicted) to answer while the database is down."""

    def __init__(self, *, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not allow_stale and entry.expires_at <= self._clock():
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, *, body: bytes, etag: str, generation: int) -> None:
        """Store unless a write happened since the caller read (`generation` is then stale)."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = CachedResponse(body, etag, self._clock() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# Store only if no write bumped the generation since the reader looked (atomic in Redis).
_PUT_IF_CURRENT = """
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisReadCache:
    """The same contract over Redis; Redis trouble degrades to cache misses, never to errors."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float,
        prefix: str = "coach-plans",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self._redis = client
        self._clock = clock
        self._gen_key = f"{prefix}:cache:generation"
        self._prefix = f"{prefix}:cache:entry:"
        self._put = client.register_script(_PUT_IF_CURRENT)

    @property
    def generation(self) -> int:
        try:
            return int(self._redis.get(self._gen_key) or 0)
        except redis.RedisError as exc:
            log.warning("redis unavailable, cache bypassed: %s", exc)
            return -1

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None:
        try:
            generation, raw = self._redis.mget(self._gen_key, self._prefix + key)
        except redis.RedisError as exc:
            log.warning("redis unavailable, cache bypassed: %s", exc)
            return None
        if raw is None:
            return None
        header, _, body = (raw if isinstance(raw, bytes) else raw.encode()).partition(b"\n")
        meta = json.loads(header)
        if meta["g"] != int(generation or 0):
            return None
        entry = CachedResponse(body, meta["e"], meta["x"])
        if not allow_stale and entry.expires_at <= self._clock():
            return None
        return entry

    def put(self, key: str, *, body: bytes, etag: str, generation: int) -> None:
        if self.ttl <= 0 or generation < 0:
            return
        meta = {"g": generation, "e": etag, "x": self._clock() + self.ttl}
        value = json.dumps(meta).encode() + b"\n" + body
        # Kept past its TTL (at least a day) to answer while the database is down.
        keep_ms = int(max(self.ttl * 2, 86_400) * 1000)
        try:
            self._put(keys=[self._gen_key, self._prefix + key], args=[generation, value, keep_ms])
        except redis.RedisError as exc:
            log.warning("redis unavailable, response not cached: %s", exc)

    def invalidate(self) -> None:
        try:
            self._redis.incr(self._gen_key)
        except redis.RedisError as exc:
            log.error("redis unavailable: other instances may serve cached reads until TTL: %s", exc)
