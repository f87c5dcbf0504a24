"""The shared SessionStore suite: the in-memory store and the Redis store (a real redis-server)
must behave the same. Plus Redis-only checks: two clients share limits; outages and recovery."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from tests.redis_server import RedisServer
from trio_gateway._ratelimit import LimitOutcome, Limits
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import AccessDefinition, AccessLimit, Session
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._session.store import SessionStore, SessionStoreError, hash_key

T0 = 1_700_000_000.0



@pytest.fixture(params=["memory", "memory-hashed", "redis", "redis-hashed"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    hashed = request.param.endswith("hashed")
    result: SessionStore
    if request.param.startswith("memory"):
        result = MemorySessionStore(hash_keys=hashed)
    else:
        server: RedisServer = request.getfixturevalue("redis_db")
        result = RedisSessionStore(
            RedisClient(host=server.host, port=server.port), hash_keys=hashed
        )
    yield result
    await result.aclose()


async def test_put_get_round_trip(store: SessionStore) -> None:
    session = Session(rate=5, per=1, tags=["a"], meta_data={"user": "ann", "n": 3}, expires=9)
    await store.put_session("k1", session)
    got = await store.get_session("k1")
    assert got == session
    assert await store.get_session("missing") is None


async def test_returned_session_owns_its_meta_data(store: SessionStore) -> None:
    await store.put_session("k1", Session(meta_data={"a": 1}))
    got = await store.get_session("k1")
    assert got is not None
    got.meta_data["a"] = 2
    again = await store.get_session("k1")
    assert again is not None
    assert again.meta_data == {"a": 1}


async def test_list_keys_and_hashing(store: SessionStore) -> None:
    await store.put_session("k1", Session())
    await store.put_session("k2", Session())
    expected = {"k1", "k2"}
    if store.hash_keys:
        expected = {hash_key("k1"), hash_key("k2")}
    assert set(await store.list_keys()) == expected


async def test_delete(store: SessionStore) -> None:
    await store.put_session("k1", Session())
    assert await store.delete_session("k1") is True
    assert await store.get_session("k1") is None
    assert await store.delete_session("k1") is False


async def test_update_meta_data_is_persisted(store: SessionStore) -> None:
    await store.put_session("k1", Session(rate=3, meta_data={"a": 1}))
    assert await store.update_meta_data("k1", {"b": [1, 2]}) is True
    got = await store.get_session("k1")
    assert got is not None
    assert got.meta_data == {"b": [1, 2]}
    assert got.rate == 3
    assert await store.update_meta_data("gone", {"x": 1}) is False
    assert await store.get_session("gone") is None


async def test_rate_limit_sliding_window(store: SessionStore) -> None:
    limits = Limits(rate=3, per=10)
    outcomes = [(await store.consume("k", limits, now=T0 + i)).outcome for i in range(4)]
    assert outcomes == [LimitOutcome.ALLOWED] * 3 + [LimitOutcome.RATE_LIMITED]
    limited = await store.consume("k", limits, now=T0 + 9.5)
    assert limited.rate is not None
    assert (limited.rate.limit, limited.rate.remaining) == (3, 0)
    assert limited.rate.reset == pytest.approx(0.5)
    # At T0 + 10 the first admission leaves the half-open window (now - per, now].
    freed = await store.consume("k", limits, now=T0 + 10)
    assert freed.allowed
    assert freed.rate is not None
    assert freed.rate.remaining == 0


async def test_fractional_rate_rounds_down(store: SessionStore) -> None:
    limits = Limits(rate=2.5, per=10)
    allowed = [(await store.consume("k", limits, now=T0)).allowed for _ in range(3)]
    assert allowed == [True, True, False]


async def test_quota_blocks_then_renews(store: SessionStore) -> None:
    limits = Limits(quota_max=2, quota_renewal_rate=60)
    first = await store.consume("k", limits, now=T0 + 0.25)
    assert first.quota is not None
    assert (first.quota.remaining, first.quota.renews) == (1, int(T0) + 60)
    second = await store.consume("k", limits, now=T0 + 1)
    third = await store.consume("k", limits, now=T0 + 2)
    assert second.allowed
    assert third.outcome is LimitOutcome.QUOTA_EXCEEDED
    assert third.quota is not None
    assert third.quota.remaining == 0
    renewed = await store.consume("k", limits, now=T0 + 60.25)
    assert renewed.allowed
    assert renewed.quota is not None
    assert renewed.quota.remaining == 1


async def test_quota_without_renewal_never_resets(store: SessionStore) -> None:
    limits = Limits(quota_max=1)
    assert (await store.consume("k", limits, now=T0)).allowed
    later = await store.consume("k", limits, now=T0 + 10**7)
    assert later.outcome is LimitOutcome.QUOTA_EXCEEDED
    assert later.quota is not None
    assert later.quota.renews == 0


async def test_rate_limited_request_uses_no_quota(store: SessionStore) -> None:
    limits = Limits(rate=1, per=10, quota_max=5, quota_renewal_rate=100)
    assert (await store.consume("k", limits, now=T0)).allowed
    limited = await store.consume("k", limits, now=T0 + 1)
    assert limited.outcome is LimitOutcome.RATE_LIMITED
    assert limited.quota is None
    after = await store.consume("k", limits, now=T0 + 20)
    assert after.quota is not None
    assert after.quota.remaining == 3


async def test_buckets_and_keys_are_separate(store: SessionStore) -> None:
    limits = Limits(rate=1, per=10, quota_max=1)
    assert (await store.consume("a", limits, now=T0)).allowed
    assert (await store.consume("b", limits, now=T0)).allowed
    per_api = Limits(rate=1, per=10, quota_max=1, bucket="api1")
    assert (await store.consume("a", per_api, now=T0)).allowed
    assert not (await store.consume("a", per_api, now=T0)).allowed


async def test_session_reports_quota_counters(store: SessionStore) -> None:
    session = Session(quota_max=3, quota_renewal_rate=60)
    await store.put_session("k", session)
    limits = Limits(quota_max=3, quota_renewal_rate=60)
    await store.consume("k", limits, now=T0)
    got = await store.get_session("k")
    assert got is not None
    assert (got.quota_remaining, got.quota_renews) == (2, int(T0) + 60)


async def test_put_resets_quota_unless_told_not_to(store: SessionStore) -> None:
    limits = Limits(quota_max=1)
    await store.put_session("k", Session(quota_max=1))
    assert (await store.consume("k", limits, now=T0)).allowed
    await store.put_session("k", Session(quota_max=1, alias="x"), reset_quota=False)
    assert not (await store.consume("k", limits, now=T0)).allowed
    await store.put_session("k", Session(quota_max=1))
    assert (await store.consume("k", limits, now=T0)).allowed
    await store.delete_session("k")
    assert (await store.consume("k", limits, now=T0)).allowed


async def test_per_api_limit_session_round_trip(store: SessionStore) -> None:
    session = Session(
        access_rights={"api1": AccessDefinition(api_id="api1", limit=AccessLimit(rate=2, per=1))}
    )
    await store.put_session("k", session)
    assert await store.get_session("k") == session


# Redis only ------------------------------------------------------------------------------------


async def test_two_clients_never_exceed_the_limit_together(redis_db: RedisServer) -> None:
    stores = [
        RedisSessionStore(RedisClient(host=redis_db.host, port=redis_db.port, pool_size=4))
        for _ in range(2)
    ]
    limits = Limits(rate=10, per=60, quota_max=25, quota_renewal_rate=60)
    allowed = 0

    async def hit(s: RedisSessionStore, i: int) -> None:
        nonlocal allowed
        if (await s.consume("shared", limits, now=T0 + i * 0.001)).allowed:
            allowed += 1

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(hit, stores[i % 2], i)
    assert allowed == 10
    for s in stores:
        await s.aclose()


async def test_outage_fails_fast_and_recovers(
    redis_server_factory: Callable[[], RedisServer], mock_clock: trio.testing.MockClock
) -> None:
    server = redis_server_factory()
    client = RedisClient(host=server.host, port=server.port, backoff_initial=5, backoff_max=5)
    s = RedisSessionStore(client)
    limits = Limits(rate=100, per=1)
    assert (await s.consume("k", limits, now=T0)).allowed
    server.stop()
    started = time.perf_counter()
    with pytest.raises(SessionStoreError):
        await s.consume("k", limits, now=T0)
    # Inside the backoff window calls fail without touching the network, even once Redis is back.
    restarted = RedisServer(port=server.port)
    restarted.start()
    try:
        with pytest.raises(SessionStoreError):
            await s.get_session("k")
        assert time.perf_counter() - started < 1.0
        mock_clock.jump(5)
        assert (await s.consume("k", limits, now=T0)).allowed
        assert (await s.consume("k", limits, now=T0 + 1)).allowed
    finally:
        await s.aclose()
        restarted.stop()


async def test_unreachable_redis_is_a_store_error(mock_clock: trio.testing.MockClock) -> None:
    port = RedisServer().port  # a free port nobody listens on
    s = RedisSessionStore(RedisClient(port=port))
    with pytest.raises(SessionStoreError):
        await s.put_session("k", Session())
    await s.aclose()


async def test_script_reloaded_after_script_flush(redis_db: RedisServer) -> None:
    s = RedisSessionStore(RedisClient(host=redis_db.host, port=redis_db.port))
    assert (await s.consume("k", Limits(rate=2, per=1), now=T0)).allowed
    assert redis_db.command("SCRIPT", "FLUSH").startswith(b"+OK")
    assert (await s.consume("k", Limits(rate=2, per=1), now=T0)).allowed
    assert not (await s.consume("k", Limits(rate=2, per=1), now=T0)).allowed
    await s.aclose()


async def test_session_cache_serves_own_writes_and_expires(
    redis_db: RedisServer, mock_clock: trio.testing.MockClock
) -> None:
    cached = RedisSessionStore(
        RedisClient(host=redis_db.host, port=redis_db.port), session_cache_ttl=2.0
    )
    other = RedisSessionStore(RedisClient(host=redis_db.host, port=redis_db.port))
    await cached.put_session("k", Session(alias="one"))
    assert (await cached.get_session("k")) == Session(alias="one")
    await other.put_session("k", Session(alias="two"))
    stale = await cached.get_session("k")
    assert stale is not None
    assert stale.alias == "one"
    mock_clock.jump(2)
    fresh = await cached.get_session("k")
    assert fresh is not None
    assert fresh.alias == "two"
    await cached.update_meta_data("k", {"m": 1})
    mine = await cached.get_session("k")
    assert mine is not None
    assert mine.meta_data == {"m": 1}
    await cached.aclose()
    await other.aclose()


async def test_plugin_data_round_trip(store: SessionStore) -> None:
    # Tyk's tyk.store_data / tyk.get_data, which Tyk-style Python plugins call.
    assert await store.get_data("counter") is None
    await store.store_data("counter", b"\x00seven", 0)
    assert await store.get_data("counter") == b"\x00seven"
    await store.store_data("counter", b"eight", 60)
    assert await store.get_data("counter") == b"eight"
    assert await store.get_session("counter") is None  # plugin data is not a key


async def test_plugin_data_lives_where_tyk_keeps_it_with_its_ttl(redis_db: RedisServer) -> None:
    client = RedisClient(host=redis_db.host, port=redis_db.port)
    store = RedisSessionStore(client)
    try:
        await store.store_data("k", b"v", 30)
        await store.store_data("forever", b"v", 0)
        assert await client.execute("GET", "coprocess-data:k") == b"v"
        assert 0 < await client.execute("TTL", "coprocess-data:k") <= 30
        assert await client.execute("TTL", "coprocess-data:forever") == -1
    finally:
        await store.aclose()


async def test_plugin_data_expires_after_its_ttl_in_memory() -> None:
    now = [100.0]
    store = MemorySessionStore(clock=lambda: now[0])
    await store.store_data("k", b"v", 5)
    now[0] = 104.9
    assert await store.get_data("k") == b"v"
    now[0] = 105.0
    assert await store.get_data("k") is None
