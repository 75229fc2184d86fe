"""Read cache of rendered responses by request key, cleared on every write by anyone.

`ReadCache` lives in the process (TTL + LRU, bounded by entries and by bytes); `RedisReadCache` is
shared by every API instance pointed at the same Redis, so a write through one instance is never
answered stale by another. Both follow the database's data version (`follow`), so a commit by any
process (the CLI, another replica) clears them before the next read.

Every call to Redis runs on the event loop, so a Redis that does not answer must not hold it:
calls give up after `REDIS_TIMEOUT` without retrying, and after a failure Redis is left alone for
`REDIS_BACKOFF` (reads go to the database meanwhile). An invalidation that did not reach Redis is
kept and retried; until it is done this instance neither reads nor stores shared entries, which
still hold answers from before its write.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("coach_plans_api.cache")
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# Bookkeeping per entry besides its key, body and ETag (the entry object, the dict slot).
ENTRY_OVERHEAD = 200
# Seconds a Redis call may wait (to connect, or between two reads of its answer). Redis answers
# in well under a millisecond on a local network; the event loop waits for every call, so a
# frozen or unreachable Redis costs it at most this per `REDIS_BACKOFF`.
REDIS_TIMEOUT = 0.05
# Seconds Redis is left alone after a failed call: the cache is bypassed, rate limits count in
# the process, and a missed invalidation is retried at this pace.
REDIS_BACKOFF = 1.0


def redis_options() -> dict[str, object]:
    """Options of the synchronous clients that run on the event loop: short waits, no retries
    (redis-py retries a refused connection three times by default; the breaker retries later)."""
    return {
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }


class Breaker:
    """Skips Redis for `backoff` seconds after a failure, so one that does not answer costs one
    timeout per `backoff` instead of one per request. Thread-safe enough: a race only lets one
    more call try."""

    def __init__(
        self, backoff: float = REDIS_BACKOFF, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backoff = backoff
        self._clock = clock
        self._until = 0.0

    @property
    def open(self) -> bool:
        """Redis is being left alone."""
        return self._clock() < self._until

    def trip(self) -> None:
        self._until = self._clock() + self.backoff


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

    def follow(self, version: Callable[[], int]) -> None: ...


class _Follower:
    """Calls `invalidate` whenever the followed data version has changed since the last look."""

    def __init__(self) -> None:
        self._version: Callable[[], int] | None = None
        self._seen: int | None = None

    def follow(self, version: Callable[[], int]) -> None:
        """Drop every entry whenever `version()` changes (a commit by any process)."""
        self._version = version
        self._seen = version()

    def _catch_up(self) -> None:
        if self._version is not None and self._version() != self._seen:
            self.invalidate()

    def _current(self) -> int | None:
        """The data version now: read before an invalidation starts, and recorded by
        `_caught_up` once it is done (a change meanwhile is then seen as news)."""
        return None if self._version is None else self._version()

    def _caught_up(self, version: int | None) -> None:
        """After an invalidation that started at `version`: every change up to it is accounted for."""
        if version is not None:
            self._seen = version

    def invalidate(self) -> None:  # pragma: no cover - both caches define it
        raise NotImplementedError


class ReadCache(_Follower):
    """Thread-safe; expired entries stay (until evicted) to answer while the database is down."""

    def __init__(
        self,
        *,
        ttl: float,
        max_size: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.ttl = ttl
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self._bytes = 0

    @property
    def generation(self) -> int:
        self._catch_up()
        return self._generation

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None:
        if not allow_stale:  # while the database is down, stale entries are all we have
            self._catch_up()
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
        size = _size(key, body=body, etag=etag)
        if self.ttl <= 0 or size > self.max_bytes:
            return
        with self._lock:
            if generation != self._generation:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _size(key, body=old.body, etag=old.etag)
            self._entries[key] = CachedResponse(body, etag, self._clock() + self.ttl)
            self._bytes += size
            while len(self._entries) > self.max_size or self._bytes > self.max_bytes:
                evicted_key, evicted = self._entries.popitem(last=False)
                self._bytes -= _size(evicted_key, body=evicted.body, etag=evicted.etag)

    def invalidate(self) -> None:
        version = self._current()
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._bytes = 0
        self._caught_up(version)

    def __len__(self) -> int:
        return len(self._entries)


def _size(key: str, *, body: bytes, etag: str) -> int:
    return len(key) + len(body) + len(etag) + ENTRY_OVERHEAD


# Every entry lives in one hash that a write deletes (UNLINK frees it at once), so superseded
# entries are never left to expire. The hash expires TTL after it was started, so no entry
# outlives the TTL; a byte counter and HLEN bound its size. KEYS: generation, entries.
_PUT_IF_CURRENT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
local size = string.len(ARGV[2]) + string.len(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[2], '\\0bytes') or '0')
if used + size > tonumber(ARGV[5]) or redis.call('HLEN', KEYS[2]) > tonumber(ARGV[6]) then
  return 0
end
local started = redis.call('EXISTS', KEYS[2]) == 0
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[2], '\\0bytes', size)
if started then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return 1
"""
_INVALIDATE = """
redis.call('UNLINK', KEYS[2])
return redis.call('INCR', KEYS[1])
"""


class RedisReadCache(_Follower):
    """The same contract over Redis; Redis trouble degrades to cache misses, never to errors.

    Build the client with `redis_options()`: every call here runs on the event loop.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float,
        prefix: str = "coach-plans",
        max_size: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        backoff: float = REDIS_BACKOFF,
    ) -> None:
        super().__init__()
        self.ttl = ttl
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._redis = client
        self._clock = clock
        self._keys = [f"{prefix}:cache:generation", f"{prefix}:cache:entries"]
        self._put = client.register_script(_PUT_IF_CURRENT)
        self._invalidate = client.register_script(_INVALIDATE)
        self._breaker = Breaker(backoff)
        # Invalidations asked for, and the last of them known done in Redis: numbered, because
        # they come from several threads and one may fail while a later one succeeds.
        self._asked = 0
        self._done = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._retrier: threading.Thread | None = None

    @property
    def pending(self) -> bool:
        """An invalidation has not reached Redis yet: its entries may predate one of our writes."""
        return self._done < self._asked

    def _usable(self, *, catch_up: bool = True) -> bool:
        """Redis may be used now: it is not being left alone, and holds no entry older than a
        write this instance knows of (a missed invalidation is retried first)."""
        if catch_up:
            self._catch_up()
        if self.pending:
            self._flush()
        return not self.pending and not self._breaker.open

    def _failed(self, what: str, exc: redis.RedisError) -> None:
        self._breaker.trip()
        log.warning("redis unavailable, %s for %.0f s: %s", what, self._breaker.backoff, exc)

    @property
    def generation(self) -> int:
        if not self._usable():
            return -1
        try:
            return int(self._redis.get(self._keys[0]) or 0)
        except redis.RedisError as exc:
            self._failed("cache bypassed", exc)
            return -1

    def get(self, key: str, *, allow_stale: bool = False) -> CachedResponse | None:
        # A stale read (the database is down) does not follow the data version, as in `ReadCache`,
        # but never reads entries that one of our writes should have removed.
        if not self._usable(catch_up=not allow_stale):
            return None
        try:
            raw = self._redis.hget(self._keys[1], key)
        except redis.RedisError as exc:
            self._failed("cache bypassed", exc)
            return None
        if raw is None:
            return None
        header, _, body = (raw if isinstance(raw, bytes) else raw.encode()).partition(b"\n")
        meta = json.loads(header)
        entry = CachedResponse(body, meta["e"], meta["x"])
        if not allow_stale and entry.expires_at <= self._clock():
            return None
        return entry

    def put(self, key: str, *, body: bytes, etag: str, generation: int) -> None:
        if self.ttl <= 0 or generation < 0 or not self._usable():
            return
        value = json.dumps({"e": etag, "x": self._clock() + self.ttl}).encode() + b"\n" + body
        try:
            self._put(
                keys=self._keys,
                args=[generation, key, value, max(1, int(self.ttl * 1000)), self.max_bytes, self.max_size],
            )
        except redis.RedisError as exc:
            self._failed("responses not cached", exc)

    def invalidate(self) -> None:
        """Drop every shared entry; if Redis cannot be told now, bypass it until it is told."""
        with self._lock:
            self._asked += 1
        self._flush()

    def _flush(self, *, force: bool = False) -> None:
        """Try the pending invalidation (unless Redis is being left alone); retry it in the
        background if it fails, so the entries go even if no request comes to this instance."""
        if self._breaker.open and not force:
            self._retry_in_background()
            return
        with self._lock:
            asked = self._asked
        version = self._current()
        try:
            self._invalidate(keys=self._keys)
        except redis.RedisError as exc:
            self._breaker.trip()
            log.error(
                "redis unavailable: shared cache bypassed until it is cleared (retried every %.0f s): %s",
                self._breaker.backoff,
                exc,
            )
            self._retry_in_background()
            return
        with self._lock:
            if asked > self._done:
                self._done = asked
                self._caught_up(version)

    def _retry_in_background(self) -> None:
        with self._lock:
            if self._closed.is_set() or self._retrier is not None:
                return
            self._retrier = threading.Thread(target=self._retry, name="cache-invalidation", daemon=True)
            self._retrier.start()

    def _retry(self) -> None:
        # Forced: this thread already waits `backoff` between tries, and off the event loop.
        while not self._closed.wait(self._breaker.backoff):
            self._flush(force=True)
            # Decided under the lock: an invalidation failing meanwhile then starts a new thread.
            with self._lock:
                if not self.pending:
                    self._retrier = None
                    return

    def close(self) -> None:
        """Stop retrying (after one last try, so other instances lose our superseded entries)."""
        self._closed.set()
        if self.pending:
            self._flush(force=True)
        retrier = self._retrier
        if retrier is not None:
            retrier.join(timeout=1)
