"""Redis going away and coming back, against a real redis-server stopped and restarted on the
same port: keyed traffic is back quickly, and an outage sees one connect attempt at a time."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing

from tests.redis_server import RedisServer
from trio_gateway._ratelimit import Limits
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._session.store import SessionStoreError

T0 = 1_700_000_000.0
LIMITS = Limits(rate=1_000_000, per=1)


def accepts_connections(server: RedisServer) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=1):
            return True
    except OSError:
        return False


async def test_keyed_traffic_is_back_within_half_a_second_of_redis(
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    server = redis_server_factory()
    store = RedisSessionStore(RedisClient(host=server.host, port=server.port))
    try:
        assert (await store.consume("k", LIMITS, now=T0)).allowed
        server.stop()
        # Many requests fail together when Redis goes away; none of them may push the retry
        # further out than one short backoff window.
        failures = 0

        async def one_call() -> None:
            nonlocal failures
            try:
                await store.consume("k", LIMITS, now=T0)
            except SessionStoreError:
                failures += 1

        async with trio.open_nursery() as nursery:
            for _ in range(32):
                nursery.start_soon(one_call)
        assert failures == 32

        restarted = RedisServer(port=server.port)
        restarted.start()  # returns once redis-server says it accepts connections
        try:
            while not accepts_connections(restarted):
                await trio.lowlevel.checkpoint()
            up_at = time.perf_counter()
            while True:
                try:
                    await store.consume("k", LIMITS, now=T0)
                    break
                except SessionStoreError:
                    # Traffic's own pace (a request every millisecond), not a synchronisation.
                    await trio.sleep(0.001)
            back_after = time.perf_counter() - up_at
        finally:
            restarted.stop()
    finally:
        await store.aclose()
    assert back_after < 0.5, f"keyed traffic back {back_after:.3f} s after Redis"


async def test_outage_sees_one_connect_attempt_at_a_time(
    redis_server_factory: Callable[[], RedisServer], mock_clock: trio.testing.MockClock
) -> None:
    server = redis_server_factory()
    attempts = 0
    in_flight = 0
    most_in_flight = 0

    async def counting_open(host: str, port: int) -> trio.SocketStream:
        nonlocal attempts, in_flight, most_in_flight
        attempts += 1
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await trio.lowlevel.checkpoint()  # a connect takes a moment: let others overlap
            return await trio.open_tcp_stream(host, port)
        finally:
            in_flight -= 1

    client = RedisClient(host=server.host, port=server.port, open_stream=counting_open)
    store = RedisSessionStore(client)
    try:
        assert (await store.consume("k", LIMITS, now=T0)).allowed
        server.stop()
        with pytest.raises(SessionStoreError):
            await store.consume("k", LIMITS, now=T0)  # Redis is now known to be down
        attempts = most_in_flight = 0

        # 50 callers, each calling every 10 ms for 2 s of outage. The clock is moved by hand
        # (a real socket wait must not let it jump past the client's own timeout).
        async def caller() -> None:
            while True:
                try:
                    await store.consume("k", LIMITS, now=T0)
                except SessionStoreError:
                    pass
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(caller)
            for _ in range(200):
                await trio.testing.wait_all_tasks_blocked()
                mock_clock.jump(0.01)
            nursery.cancel_scope.cancel()
        # One attempt at a time, and few of them: one per backoff window (0.05 s doubling to
        # a 0.25 s cap over 2 s), not one per caller.
        assert most_in_flight == 1
        assert attempts <= 12, attempts

        restarted = RedisServer(port=server.port)
        restarted.start()
        try:
            mock_clock.jump(client.backoff_max)
            assert (await store.consume("k", LIMITS, now=T0)).allowed
        finally:
            restarted.stop()
    finally:
        await store.aclose()
