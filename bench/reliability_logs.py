"""Logs under faults: a log reader that stalls, and the log volume of plugin-server and Redis
outages. Each mode runs a real gateway process (``--src`` picks the checkout).

    .venv/bin/python bench/reliability_logs.py slow-reader  [--requests 3000]
    .venv/bin/python bench/reliability_logs.py grpc-outage  [--outage 5]
    .venv/bin/python bench/reliability_logs.py redis-outage [--outage 5]
    ... --src /tmp/old          # an older checkout: git archive <commit> | tar -x -C /tmp/old

slow-reader: stdout and stderr are pipes nobody reads (stderr only up to the "listening" line);
10 keep-alive clients send ``--requests`` requests, every third one malformed (a 400 and an
INFO line on stderr). Prints how many were answered before the first one that got no answer
within 5 s.

grpc-outage: a grpcio Dispatcher (pre hook on one API); 8 keep-alive clients run for 1 s, the
server stops for ``--outage`` seconds, comes back on the same port, 1 s more. Prints the
requests by status and what the gateway wrote to stderr (lines, bytes).

redis-outage: a redis-server on a free port, a keyed API (token auth) with a key made through
the admin API; the same load pattern with redis-server stopped (SIGSTOP-free: killed and
started again on the same port) for ``--outage`` seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from _reliability import (
    ROOT,
    Connection,
    drain,
    serve_json_upstream,
    start_gateway,
    stop,
    write_api,
)

GRPC_TESTS = ROOT / "tests" / "plugin_drivers" / "grpc"
MALFORMED = b"GET /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n"


# -- slow reader ----------------------------------------------------------------------------


async def slow_reader(src: Path, requests: int, read_at_shutdown: bool) -> None:
    async with trio.open_nursery() as nursery:
        upstream_port = await nursery.start(serve_json_upstream)
        with tempfile.TemporaryDirectory() as tmp:
            apps = Path(tmp) / "apps"
            write_api(apps, "api", f"http://127.0.0.1:{upstream_port}/", None)
            gateway = await start_gateway(
                src, ["--apps", str(apps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            answered = 0
            stalled = False

            async def client(offset: int) -> None:
                nonlocal answered, stalled
                conn = await Connection.open(gateway.address)
                try:
                    for n in range(offset, requests, 10):
                        if stalled:
                            return
                        with trio.move_on_after(5) as scope:
                            if n % 3 == 0:
                                bad = await trio.open_tcp_stream(*gateway.address)
                                async with bad:
                                    await bad.send_all(MALFORMED)
                                    await bad.receive_some()
                            else:
                                await conn.get(f"/api/{n}")
                        if scope.cancelled_caught:
                            stalled = True
                            return
                        answered += 1
                finally:
                    await conn.aclose()

            start = time.monotonic()
            async with trio.open_nursery() as clients:
                for offset in range(10):
                    clients.start_soon(client, offset)
            wall = time.monotonic() - start
            print(
                f"answered {answered}/{requests}"
                + (" (stalled: a request got no answer within 5 s)" if stalled else "")
                + f"  wall={wall:.1f}s"
            )
            # Shutdown with the readers back: how long, and whether the lines arrived (or with
            # nobody reading still: how long the bounded flush takes).
            out, err = bytearray(), bytearray()
            async with trio.open_nursery() as readers:
                if read_at_shutdown:
                    readers.start_soon(drain, gateway.process.stdout, out)
                    readers.start_soon(drain, gateway.process.stderr, err)
                took = await stop(gateway.process)
            print(
                f"SIGTERM -> exit {gateway.process.returncode} in {took:.1f}s; "
                f"stdout {len(out.splitlines())} access lines, stderr {len(err.splitlines())} lines"
            )
        nursery.cancel_scope.cancel()


# -- outages --------------------------------------------------------------------------------


async def run_load(
    address: tuple[str, int],
    path: str,
    seconds: float,
    statuses: collections.Counter[str],
    headers: str = "",
) -> None:
    deadline = trio.current_time() + seconds

    async def client() -> None:
        conn: Connection | None = None
        while trio.current_time() < deadline:
            try:
                if conn is None:
                    conn = await Connection.open(address)
                if headers:
                    await conn.stream.send_all(
                        f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode()
                    )
                    statuses[str(await _read_status(conn))] += 1
                else:
                    statuses[str(await conn.get(path))] += 1
            except (OSError, ConnectionError, trio.BrokenResourceError):
                statuses["client error"] += 1
                if conn is not None:
                    await conn.aclose()
                conn = None
        if conn is not None:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(client)


async def _read_status(conn: Connection) -> int:
    # Connection.get, minus the send (the request carries extra headers).
    original = conn.stream.send_all

    async def no_send(data: bytes) -> None:
        return None

    conn.stream.send_all = no_send  # type: ignore[method-assign]
    try:
        return await conn.get("")
    finally:
        conn.stream.send_all = original  # type: ignore[method-assign]


def report(name: str, statuses: collections.Counter[str], stderr: bytes, outage: float) -> None:
    lines = stderr.splitlines()
    print(f"{name}: {outage:g} s outage; requests by status: {dict(sorted(statuses.items()))}")
    print(f"stderr during the run: {len(lines)} lines, {len(stderr)} bytes")
    warnings = [line for line in lines if b" WARNING " in line]
    print(f"  of which WARNING lines: {len(warnings)}")
    for line in warnings[:8]:
        print("   ", line.decode(errors="replace")[:240])


async def grpc_outage(src: Path, outage: float) -> None:
    sys.path.insert(0, str(GRPC_TESTS))
    from grpc_dispatcher_server import start_server

    server, port = start_server("127.0.0.1:0")
    async with trio.open_nursery() as nursery:
        upstream_port = await nursery.start(serve_json_upstream)
        with tempfile.TemporaryDirectory() as tmp:
            apps = Path(tmp) / "apps"
            write_api(
                apps,
                "api",
                f"http://127.0.0.1:{upstream_port}/",
                {"driver": "grpc", "pre": [{"name": "echo"}]},
            )
            env = {
                "TRIO_GATEWAY_COPROCESS_ENABLE": "true",
                "TRIO_GATEWAY_COPROCESS_GRPC_SERVER": f"tcp://127.0.0.1:{port}",
            }
            gateway = await start_gateway(src, ["--apps", str(apps)], env=env)
            stderr = bytearray()
            nursery.start_soon(drain, gateway.process.stderr, stderr)
            statuses: collections.Counter[str] = collections.Counter()
            await run_load(gateway.address, "/api/x", 1.0, statuses)
            await trio.to_thread.run_sync(lambda: server.stop(0).wait(5))
            await run_load(gateway.address, "/api/x", outage, statuses)
            server, _ = start_server(f"127.0.0.1:{port}")
            await run_load(gateway.address, "/api/x", 1.0, statuses)
            await stop(gateway.process)
        nursery.cancel_scope.cancel()
    server.stop(0)
    report("grpc-outage", statuses, bytes(stderr), outage)


async def redis_outage(src: Path, outage: float) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.redis_server import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        async with trio.open_nursery() as nursery:
            upstream_port = await nursery.start(serve_json_upstream)
            with tempfile.TemporaryDirectory() as tmp:
                apps = Path(tmp) / "apps"
                write_api(apps, "api", f"http://127.0.0.1:{upstream_port}/", None)
                doc = json.loads((apps / "api.json").read_text())
                doc["use_keyless"] = False
                (apps / "api.json").write_text(json.dumps(doc))
                env = {
                    "TRIO_GATEWAY_SECRET": "bench-secret",
                    "TRIO_GATEWAY_STORAGE_TYPE": "redis",
                    "TRIO_GATEWAY_STORAGE_HOST": "127.0.0.1",
                    "TRIO_GATEWAY_STORAGE_PORT": str(redis.port),
                }
                gateway = await start_gateway(src, ["--apps", str(apps)], env=env)
                stderr = bytearray()
                nursery.start_soon(drain, gateway.process.stderr, stderr)
                key = await create_key(gateway.address)
                statuses: collections.Counter[str] = collections.Counter()
                auth = f"Authorization: {key}\r\n"
                await run_load(gateway.address, "/api/x", 1.0, statuses, auth)
                await trio.to_thread.run_sync(redis.stop)
                await run_load(gateway.address, "/api/x", outage, statuses, auth)
                await trio.to_thread.run_sync(redis.start)
                await run_load(gateway.address, "/api/x", 1.0, statuses, auth)
                await stop(gateway.process)
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()
    report("redis-outage", statuses, bytes(stderr), outage)


async def create_key(address: tuple[str, int]) -> str:
    body = json.dumps(
        {
            "rate": 1e9,
            "per": 1,
            "quota_max": -1,
            "access_rights": {"api": {"api_id": "api", "versions": ["Default"]}},
        }
    ).encode()
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(
            b"POST /tyk/keys/create HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
            b"X-Tyk-Authorization: bench-secret\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    key: str = json.loads(data.partition(b"\r\n\r\n")[2])["key"]
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["slow-reader", "grpc-outage", "redis-outage"])
    parser.add_argument(
        "--src", type=Path, default=ROOT, help="checkout to run (default: this one)"
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds")
    parser.add_argument(
        "--no-reader-at-shutdown",
        action="store_true",
        help="slow-reader: keep the pipes unread through SIGTERM too",
    )
    args = parser.parse_args()
    if args.mode == "slow-reader":
        trio.run(slow_reader, args.src, args.requests, not args.no_reader_at_shutdown)
    elif args.mode == "grpc-outage":
        trio.run(grpc_outage, args.src, args.outage)
    else:
        trio.run(redis_outage, args.src, args.outage)


if __name__ == "__main__":
    main()
