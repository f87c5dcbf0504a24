"""gRPC driver benchmark: the Trio/h2 client vs. a plain grpcio client, same echo Dispatcher.

Run: ``.venv/bin/python bench/bench_grpc.py [--seconds 3] [--concurrency 1 8]``.

The server (grpcio, echoing the Object) runs in its own process. For each concurrency it measures
calls/s and p50/p95 latency of (a) a grpcio client alone, (b) our channel, on a typical Pre-hook
Object built by ``wire.build_object``. The end-to-end run through the gateway (no hook vs. one
gRPC Pre hook) needs the server's harness and is not here yet.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "plugin_drivers" / "grpc"))

from plugin_drivers.grpc import wire  # noqa: E402
from plugin_drivers.grpc.client import open_grpc_channel  # noqa: E402
from trio_gateway._exchange import Request  # noqa: E402
from trio_gateway.hooks import ApiInfo, Stage  # noqa: E402

METHOD = "/coprocess.Dispatcher/Dispatch"


def sample_message() -> bytes:
    request = Request(
        method="GET",
        path="/bench/item",
        query="a=1",
        headers=[(b"host", b"gw"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        body_bytes=b"",
    )
    api = ApiInfo(api_id="bench", org_id="org", name="bench", config_data=None)
    obj = wire.build_object(stage=Stage.PRE, hook_name="pre", api=api, request=request, body=b"")
    return obj.SerializeToString()


def report(name: str, latencies: list[float], elapsed: float) -> None:
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    print(
        f"{name:28s} {len(latencies) / elapsed:9.0f} calls/s  "
        f"p50 {statistics.median(latencies) * 1e3:6.3f} ms  p95 {p95 * 1e3:6.3f} ms"
    )


def bench_grpcio(target: str, message: bytes, concurrency: int, seconds: float) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        call(message)
        stop = time.monotonic() + seconds

        def worker() -> None:
            mine = []
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                call(message)
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report(f"grpcio client  c={concurrency}", latencies, time.monotonic() - t0)


async def bench_trio(target: str, message: bytes, concurrency: int, seconds: float) -> None:
    latencies: list[float] = []
    async with open_grpc_channel(target) as channel:
        await channel.unary_unary(METHOD, message)
        stop = trio.current_time() + seconds

        async def worker() -> None:
            while trio.current_time() < stop:
                t0 = time.perf_counter()
                await channel.unary_unary(METHOD, message)
                latencies.append(time.perf_counter() - t0)

        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        report(f"trio/h2 client c={concurrency}", latencies, time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    from conftest import free_port

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/plugin_drivers/grpc/grpc_dispatcher_server.py"),
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        target = f"127.0.0.1:{port}"
        message = sample_message()
        for c in args.concurrency:
            bench_grpcio(target, message, c, args.seconds)
            trio.run(bench_trio, target, message, c, args.seconds)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
