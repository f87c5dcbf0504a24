"""The Redis session store: several gateway processes or hosts share keys, limits and quotas.

Layout (``prefix`` + Tyk-like names; ``<id>`` is the key, or its hash with ``hash_keys``):
``apikey-<id>`` the session's Tyk JSON; ``quota-<id>`` a hash of quota counters per bucket;
``rate-<id>-<bucket>`` the sliding log (a sorted set of admission times).

Each request costs one round trip (:meth:`consume`, one Lua script doing rate and quota
together). Redis failures surface as :class:`SessionStoreError`; see ``_redis/client.py`` for
the fast-fail and reconnect behaviour.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from typing import Any

import attrs
import trio

from .._ratelimit import LimitOutcome, LimitResult, Limits, QuotaResult, RateResult
from .._redis.client import RedisClient, RedisError
from .json import session_from_json, session_to_json
from .model import Session
from .redis_scripts import CONSUME, PUT_META_DATA
from .store import DATA_PREFIX, SessionStoreError, hash_key

__all__ = ["RedisSessionStore"]

_OUTCOMES = {
    0: LimitOutcome.ALLOWED,
    1: LimitOutcome.RATE_LIMITED,
    2: LimitOutcome.QUOTA_EXCEEDED,
}


@attrs.define(eq=False)
class RedisSessionStore:
    client: RedisClient
    hash_keys: bool = False
    prefix: str = ""
    #: Seconds a session read from Redis is served from this process's memory (0: off). Like
    #: Tyk's local session cache: it saves a round trip per request, at the price of changes made
    #: by other processes showing after up to this long (this store's own writes show at once).
    #: Rate limits and quotas are never cached.
    session_cache_ttl: float = 0.0
    _cache: dict[str, tuple[float, Session]] = attrs.field(factory=dict, init=False)
    #: Makes the rate-log members of this process unique among all gateways sharing the Redis.
    _member_prefix: str = attrs.field(factory=lambda: os.urandom(6).hex() + ":", init=False)
    _counter: itertools.count[int] = attrs.field(factory=itertools.count, init=False)

    def _id(self, key: str) -> str:
        return hash_key(key) if self.hash_keys else key

    def _session_key(self, sid: str) -> str:
        return f"{self.prefix}apikey-{sid}"

    def _quota_key(self, sid: str) -> str:
        return f"{self.prefix}quota-{sid}"

    async def get_session(self, key: str, *, shared: bool = False) -> Session | None:
        sid = self._id(key)
        if self.session_cache_ttl > 0:
            cached = self._cache.get(sid)
            if cached is not None and cached[0] > trio.current_time():
                return cached[1] if shared else cached[1].copy_for_request()
        try:
            raw, counters = await self.client.pipeline(
                [
                    ["GET", self._session_key(sid)],
                    ["HMGET", self._quota_key(sid), "u:", "s:", "p:"],
                ]
            )
        except RedisError as exc:
            raise SessionStoreError(str(exc)) from exc
        if raw is None:
            return None
        session = _decode_session(raw)
        if session.quota_max > 0 and isinstance(counters, list):
            used_s, start_s, period_s = counters
            used = int(used_s) if used_s is not None else 0
            session.quota_remaining = max(0, session.quota_max - used)
            session.quota_renews = (
                math.floor(float(start_s) + float(period_s))
                if start_s is not None and period_s is not None
                else 0
            )
        if self.session_cache_ttl > 0:
            if len(self._cache) >= 100_000:
                self._cache.clear()  # crude bound; entries are cheap to fetch again
            self._cache[sid] = (trio.current_time() + self.session_cache_ttl, session)
            return session if shared else session.copy_for_request()
        return session

    async def put_session(self, key: str, session: Session, *, reset_quota: bool = True) -> None:
        sid = self._id(key)
        self._cache.pop(sid, None)
        commands: list[list[str | bytes | int | float]] = [
            ["SET", self._session_key(sid), _encode_session(session)]
        ]
        if reset_quota:
            commands.append(["DEL", self._quota_key(sid)])
        await self._pipeline_checked(commands)

    async def delete_session(self, key: str) -> bool:
        sid = self._id(key)
        self._cache.pop(sid, None)
        deleted, _ = await self._pipeline_checked(
            [["DEL", self._session_key(sid)], ["DEL", self._quota_key(sid)]]
        )
        return bool(deleted)

    async def list_keys(self) -> list[str]:
        head = f"{self.prefix}apikey-"
        found: list[str] = []
        cursor = b"0"
        try:
            while True:
                cursor, names = await self.client.execute(
                    "SCAN", cursor, "MATCH", head + "*", "COUNT", 1000
                )
                found.extend(n.decode()[len(head) :] for n in names)
                if cursor == b"0":
                    return found
        except RedisError as exc:
            raise SessionStoreError(str(exc)) from exc

    async def update_meta_data(self, key: str, meta_data: dict[str, Any]) -> bool:
        sid = self._id(key)
        self._cache.pop(sid, None)
        try:
            raw = await self.client.execute("GET", self._session_key(sid))
            if raw is None:
                return False
            session = _decode_session(raw)
            session.meta_data = dict(meta_data)
            written = await self.client.run_script(
                PUT_META_DATA, [self._session_key(sid)], [_encode_session(session)]
            )
        except RedisError as exc:
            raise SessionStoreError(str(exc)) from exc
        return bool(written)

    async def consume(self, key: str, limits: Limits, *, now: float) -> LimitResult:
        sid = self._id(key)
        limit, window = limits.window
        quota_max = limits.quota_max if limits.has_quota else 0
        member = f"{self._member_prefix}{next(self._counter)}"
        try:
            reply = await self.client.run_script(
                CONSUME,
                [f"{self.prefix}rate-{sid}-{limits.bucket}", self._quota_key(sid)],
                [now, limit, window, member, quota_max, limits.quota_renewal_rate, limits.bucket],
            )
        except RedisError as exc:
            raise SessionStoreError(str(exc)) from exc
        code, rate_remaining, rate_reset, quota_remaining, quota_renews = reply
        rate = (
            RateResult(
                allowed=code != 1,
                limit=limit,
                remaining=int(rate_remaining),
                reset=float(rate_reset),
            )
            if limit
            else None
        )
        quota = (
            QuotaResult(
                allowed=code != 2,
                limit=quota_max,
                remaining=int(quota_remaining),
                renews=math.floor(float(quota_renews)),
            )
            if quota_max and code != 1
            else None
        )
        return LimitResult(outcome=_OUTCOMES[int(code)], rate=rate, quota=quota)

    async def store_data(self, key: str, value: bytes, ttl: int) -> None:
        command: list[str | bytes | int | float] = [
            "SET", f"{self.prefix}{DATA_PREFIX}{key}", value
        ]
        if ttl > 0:
            command += ["EX", ttl]
        await self._pipeline_checked([command])

    async def get_data(self, key: str) -> bytes | None:
        (value,) = await self._pipeline_checked([["GET", f"{self.prefix}{DATA_PREFIX}{key}"]])
        return value if isinstance(value, bytes) else None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _pipeline_checked(self, commands: list[list[str | bytes | int | float]]) -> list[Any]:
        try:
            replies = await self.client.pipeline(commands)
        except RedisError as exc:
            raise SessionStoreError(str(exc)) from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise SessionStoreError(f"Redis error: {reply}")
        return replies


def _encode_session(session: Session) -> bytes:
    return json.dumps(session_to_json(session), separators=(",", ":")).encode()


def _decode_session(raw: bytes) -> Session:
    try:
        return session_from_json(json.loads(raw))
    except Exception as exc:
        # A session another writer stored in a form we cannot read.
        raise SessionStoreError(f"unreadable session in Redis: {exc!r}") from exc
