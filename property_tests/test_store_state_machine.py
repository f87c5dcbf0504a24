"""Stateful test: each SessionStore against a plain-dict model of Tyk's semantics.

Rules: create, update, delete, consume (the key's own limits: rate and quota), consume per-API
limits, advance the clock. Invariants: quota remaining never negative; no window of ``per``
seconds ever admits more than ``rate``. Every rule runs through ``run(afn)`` (one ``trio.run``);
the Redis machine opens a fresh client per rule, since Trio sockets belong to one run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar, TypeVar

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.redis_server import RedisServer
from trio_gateway._ratelimit import LimitOutcome, LimitResult, Limits
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._session.store import SessionStore

T = TypeVar("T")
KEYS = ("a", "b", "c")
#: Fixed limits per key, so the window invariant has one (rate, per) per counter.
PROFILES = {
    "a": Limits(rate=2, per=10, quota_max=3, quota_renewal_rate=30),
    "b": Limits(rate=3, per=5),
    "c": Limits(quota_max=2),
}
PER_API = Limits(rate=1, per=4, quota_max=2, quota_renewal_rate=8, bucket="api1")
STEPS = (0, 0.125, 1, 2.5, 5, 31)

_redis: RedisServer | None = None


class StoreMachine(RuleBasedStateMachine):
    hash_keys: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0
        self.sessions: dict[str, Session] = {}
        self.admitted: dict[tuple[str, str], list[float]] = {}  # never reset (windows age out)
        self.quota: dict[tuple[str, str], tuple[int, float | None]] = {}  # used, period end

    # The store under test -----------------------------------------------------------------
    def run(self, afn: Callable[[SessionStore], Awaitable[T]]) -> T:
        raise NotImplementedError

    # Rules ----------------------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS), alias=st.text(max_size=3), meta=st.integers())
    def create(self, key: str, alias: str, meta: int) -> None:
        session = Session(alias=alias, meta_data={"m": meta}, **_session_limits(key))
        self.run(lambda s: s.put_session(key, session))
        self.sessions[key] = session
        self._reset_quota(key)

    @precondition(lambda self: bool(self.sessions))
    @rule(data=st.data(), reset=st.booleans())
    def update(self, data: st.DataObject, reset: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.sessions)))
        session = Session(alias="updated", **_session_limits(key))
        self.run(lambda s: s.put_session(key, session, reset_quota=reset))
        self.sessions[key] = session
        if reset:
            self._reset_quota(key)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        assert self.run(lambda s: s.delete_session(key)) == (key in self.sessions)
        self.sessions.pop(key, None)
        self._reset_quota(key)

    @rule(key=st.sampled_from(KEYS))
    def consume(self, key: str) -> None:
        self._consume(key, PROFILES[key])

    @rule(key=st.sampled_from(KEYS))
    def consume_per_api(self, key: str) -> None:
        self._consume(key, PER_API)

    @rule(step=st.sampled_from(STEPS))
    def advance_clock(self, step: float) -> None:
        self.now += step

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str) -> None:
        got = self.run(lambda s: s.get_session(key))
        expected = self.sessions.get(key)
        if expected is None:
            assert got is None
            return
        assert got is not None
        assert got.alias == expected.alias
        assert got.meta_data == expected.meta_data
        if expected.quota_max > 0:
            used, _ = self.quota.get((key, ""), (0, None))
            assert got.quota_remaining == expected.quota_max - used

    # Invariants -----------------------------------------------------------------------------
    @invariant()
    def no_window_admits_more_than_rate(self) -> None:
        for (key, bucket), times in self.admitted.items():
            limits = PER_API if bucket else PROFILES[key]
            rate = int(limits.rate)
            for i in range(len(times) - rate):
                assert times[i + rate] - times[i] >= limits.per

    @invariant()
    def quota_never_exceeded(self) -> None:
        for (key, bucket), (used, _) in self.quota.items():
            limits = PER_API if bucket else PROFILES[key]
            assert 0 <= used <= limits.quota_max

    # The model ------------------------------------------------------------------------------
    def _reset_quota(self, key: str) -> None:
        for counter in [c for c in self.quota if c[0] == key]:
            del self.quota[counter]

    def _consume(self, key: str, limits: Limits) -> None:
        now = self.now
        result: LimitResult = self.run(lambda s: s.consume(key, limits, now=now))
        counter = (key, limits.bucket)
        expected = LimitOutcome.ALLOWED
        times = self.admitted.setdefault(counter, [])
        if limits.has_rate:
            in_window = [t for t in times if t > now - limits.per]
            if len(in_window) >= limits.rate:
                expected = LimitOutcome.RATE_LIMITED
            assert result.rate is not None
            assert result.rate.remaining == max(0, int(limits.rate) - len(in_window) - 1) or (
                expected is LimitOutcome.RATE_LIMITED and result.rate.remaining == 0
            )
        if expected is LimitOutcome.ALLOWED and limits.has_quota:
            used, end = self.quota.get(counter, (0, None))
            if limits.quota_renewal_rate > 0 and (end is None or now >= end):
                used, end = 0, now + limits.quota_renewal_rate
            if used >= limits.quota_max:
                expected = LimitOutcome.QUOTA_EXCEEDED
            else:
                used += 1
            self.quota[counter] = (used, end)
            assert result.quota is not None
            assert result.quota.remaining == limits.quota_max - used >= 0
        assert result.outcome is expected
        if limits.has_rate and expected is not LimitOutcome.RATE_LIMITED:
            times.append(now)


def _session_limits(key: str) -> dict[str, Any]:
    p = PROFILES[key]
    return {
        "rate": p.rate,
        "per": p.per,
        "quota_max": p.quota_max,
        "quota_renewal_rate": p.quota_renewal_rate,
    }


class MemoryStoreMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemorySessionStore(hash_keys=self.hash_keys)

    def run(self, afn: Callable[[SessionStore], Awaitable[T]]) -> T:
        async def main() -> T:
            return await afn(self.store)

        return trio.run(main)


class RedisStoreMachine(StoreMachine):
    hash_keys = True

    def __init__(self) -> None:
        super().__init__()
        assert _redis is not None
        _redis.flush()

    def run(self, afn: Callable[[SessionStore], Awaitable[T]]) -> T:
        assert _redis is not None
        server = _redis

        async def main() -> T:
            store = RedisSessionStore(
                RedisClient(host=server.host, port=server.port, pool_size=1), hash_keys=True
            )
            try:
                return await afn(store)
            finally:
                await store.aclose()

        return trio.run(main)


@pytest.fixture(scope="module", autouse=True)
def _redis_for_machine() -> Iterator[None]:
    global _redis
    server = RedisServer()
    server.start()
    _redis = server
    try:
        yield
    finally:
        _redis = None
        server.stop()


_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMemoryStore = MemoryStoreMachine.TestCase
TestMemoryStore.settings = _SETTINGS
TestRedisStore = RedisStoreMachine.TestCase
TestRedisStore.settings = _SETTINGS
