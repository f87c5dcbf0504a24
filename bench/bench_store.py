"""Store throughput from Trio: consume() per request, on each store and each Redis client.

Run: ``.venv/bin/python bench/bench_store.py [--seconds 2] [--concurrency 16]``. Starts its own
redis-server. Reports operations per second for:
- memory      MemorySessionStore.consume (rate + quota)
- redis       RedisSessionStore.consume (our RESP client + hiredis, one EVALSHA per request)
- redis-get   RedisSessionStore.get_session + consume (two round trips: a request without a cache)
- redis-cache  the same with a 1 s local session cache (one round trip per request)
- coredis     the same CONSUME script through coredis' EVALSHA (if coredis is installed)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_server import RedisServer
from trio_gateway._ratelimit import Limits
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._session.redis_scripts import CONSUME

LIMITS = Limits(rate=10**9, per=1, quota_max=10**9, quota_renewal_rate=3600)


async def measure(
    name: str, op: Callable[[int], Awaitable[object]], seconds: float, conc: int
) -> None:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await op(w * 10**7 + i)
            i += 1
            done += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for w in range(conc):
            nursery.start_soon(worker, w)
    elapsed = time.perf_counter() - started
    print(f"{name:10s} {done / elapsed:10.0f} ops/s  (concurrency {conc})")


async def main(seconds: float, conc: int, server: RedisServer) -> None:
    memory = MemorySessionStore()
    await measure(
        "memory", lambda i: memory.consume("k", LIMITS, now=1e9 + i * 1e-6), seconds, conc
    )

    redis = RedisSessionStore(RedisClient(host=server.host, port=server.port, pool_size=8))
    await redis.put_session("k", Session(rate=10**9, per=1))
    await measure("redis", lambda i: redis.consume("k", LIMITS, now=1e9 + i * 1e-6), seconds, conc)

    async def get_and_consume(i: int) -> None:
        await redis.get_session("k")
        await redis.consume("k", LIMITS, now=1e9 + i * 1e-6)

    await measure("redis-get", get_and_consume, seconds, conc)
    await redis.aclose()

    cached = RedisSessionStore(
        RedisClient(host=server.host, port=server.port, pool_size=8), session_cache_ttl=1.0
    )

    async def cached_get_and_consume(i: int) -> None:
        await cached.get_session("k")
        await cached.consume("k", LIMITS, now=1e9 + i * 1e-6)

    await measure("redis-cache", cached_get_and_consume, seconds, conc)
    await cached.aclose()

    try:
        import coredis
    except ImportError:
        print("coredis    (not installed)")
        return
    client = coredis.Redis(host=server.host, port=server.port, max_connections=8)
    async with client:
        script = client.register_script(CONSUME.source)

        async def via_coredis(i: int) -> None:
            await script(
                keys=["rate-k-", "quota-k"],
                args=[repr(1e9 + i * 1e-6), 10**9, 1.0, f"m{i}", 10**9, 3600, ""],
            )

        await measure("coredis", via_coredis, seconds, conc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    try:
        trio.run(main, options.seconds, options.concurrency, redis_server)
    finally:
        redis_server.stop()
