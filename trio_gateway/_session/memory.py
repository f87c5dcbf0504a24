"""The in-memory session store: the embedded default for one gateway process.

Everything runs on the Trio thread with no awaits inside, so each call is atomic by construction.
The methods do not checkpoint: they are on the request path and never block.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from .._ratelimit import LimitResult, Limits, QuotaState, apply_limits
from .model import Session
from .store import hash_key

__all__ = ["MemorySessionStore"]


@attrs.define(eq=False)
class MemorySessionStore:
    hash_keys: bool = False
    #: Seconds on a monotonic clock, for ``store_data``'s TTL (tests pass their own).
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = attrs.field(factory=dict, init=False)
    #: Plugin data: key -> (value, expiry on ``clock``). Bounded by what plugins store, as in
    #: Tyk's Redis; expired entries go when read or overwritten.
    _data: dict[str, tuple[bytes, float]] = attrs.field(factory=dict, init=False)
    #: storage id -> bucket -> counter
    _quotas: dict[str, dict[str, QuotaState]] = attrs.field(factory=dict, init=False)
    _rate_logs: dict[tuple[str, str], deque[float]] = attrs.field(factory=dict, init=False)

    def _id(self, key: str) -> str:
        return hash_key(key) if self.hash_keys else key

    async def get_session(self, key: str, *, shared: bool = False) -> Session | None:
        sid = self._id(key)
        stored = self._sessions.get(sid)
        if stored is None or shared:
            return stored
        session = stored.copy_for_request()
        counter = self._quotas.get(sid, {}).get("")
        if session.quota_max > 0:
            used = counter.used if counter is not None else 0
            session.quota_remaining = max(0, session.quota_max - used)
            session.quota_renews = int(counter.renews_at) if counter is not None else 0
        return session

    async def put_session(self, key: str, session: Session, *, reset_quota: bool = True) -> None:
        sid = self._id(key)
        self._sessions[sid] = session.copy_for_request()
        if reset_quota:
            self._quotas.pop(sid, None)

    async def delete_session(self, key: str) -> bool:
        sid = self._id(key)
        self._quotas.pop(sid, None)
        return self._sessions.pop(sid, None) is not None

    async def list_keys(self) -> list[str]:
        return list(self._sessions)

    async def update_meta_data(self, key: str, meta_data: dict[str, Any]) -> bool:
        stored = self._sessions.get(self._id(key))
        if stored is None:
            return False
        stored.meta_data = dict(meta_data)
        return True

    async def consume(self, key: str, limits: Limits, *, now: float) -> LimitResult:
        sid = hash_key(key) if self.hash_keys else key
        log = None
        if limits.has_rate:
            log = self._rate_logs.get((sid, limits.bucket))
            if log is None:
                log = self._rate_logs[sid, limits.bucket] = deque()
        quota = None
        if limits.has_quota:
            buckets = self._quotas.get(sid)
            if buckets is None:
                buckets = self._quotas[sid] = {}
            quota = buckets.get(limits.bucket)
            if quota is None:
                quota = buckets[limits.bucket] = QuotaState()
        return apply_limits(log, quota, limits, now)

    async def store_data(self, key: str, value: bytes, ttl: int) -> None:
        expires = self.clock() + ttl if ttl > 0 else math.inf
        self._data[key] = (bytes(value), expires)

    async def get_data(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._data[key]
            return None
        return entry[0]

    async def aclose(self) -> None:
        return None
