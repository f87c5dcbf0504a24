"""gRPC driver benchmark: our Trio client vs. a plain grpcio client, same echo Dispatcher.

Client only: ``.venv/bin/python bench/bench_grpc.py [--seconds 3] [--concurrency 1 8]``.
The server (grpcio, echoing the Object) runs in its own process. For each concurrency it measures
calls/s and p50/p95 latency of (a) a grpcio client alone, (b) our channel, on a typical Pre-hook
Object built by ``wire.build_object``, and our client's CPU time per call (``time.process_time``;
steadier than calls/s on a shared machine, though it grows when fewer replies share a wakeup).

End to end (issue 5's targets): ``.venv/bin/python bench/bench_grpc.py --e2e [--duration 10]``.
For 32 connections and for 1 it runs, in one invocation: ``bench/proxy.py`` with the ``keyless``
and ``grpc-pre`` variants (wrk -> gateway -> nginx upstream, the hook on a grpcio echo server in
its own process on the load CPU), then the same grpcio server on the same CPU driven alone by a
grpcio client (on the gateway's CPU) at the same concurrency. It prints the throughput ratio
``grpc-pre / min(keyless, server alone)`` (target >= 0.8) and, at one connection, the added
latency ``p50(grpc-pre) - p50(keyless) - p50(server alone)`` (target <= 0.5 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "plugin_drivers" / "grpc"))

from plugin_drivers.coprocess import wire  # noqa: E402
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


def report(name: str, latencies: list[float], elapsed: float) -> tuple[float, float]:
    """Print and return (calls/s, p50 in seconds)."""
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    rate, p50 = len(latencies) / elapsed, statistics.median(latencies)
    print(f"{name:28s} {rate:9.0f} calls/s  p50 {p50 * 1e3:6.3f} ms  p95 {p95 * 1e3:6.3f} ms")
    return rate, p50


def bench_grpcio(
    target: str, message: bytes, concurrency: int, seconds: float
) -> tuple[float, float]:
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
        return report(f"grpcio client  c={concurrency}", latencies, time.monotonic() - t0)


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

        t0, cpu0 = time.monotonic(), time.process_time()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        cpu = (time.process_time() - cpu0) / max(1, len(latencies))
        report(f"trio client     c={concurrency}", latencies, time.monotonic() - t0)
        print(f"{'':28s} client CPU {cpu * 1e6:6.1f} us/call")


def start_server(port: int, cpus: str | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, str(ROOT / "tests/plugin_drivers/grpc/grpc_dispatcher_server.py")]
    if cpus is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
    server = subprocess.Popen([*argv, str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    server.stdout.readline()  # "ready": it listens
    return server


def gateway_run(
    connections: int, duration: float, warmup: float, rounds: int = 1
) -> dict[str, dict[str, float]]:
    """bench/proxy.py with the keyless and grpc-pre variants: variant -> median figures."""
    sys.path.insert(0, str(ROOT / "bench"))
    import proxy

    with tempfile.TemporaryDirectory() as results:
        argv = ["--variant", "keyless", "--variant", "grpc-pre", "--connections", str(connections)]
        argv += ["--duration", str(duration), "--warmup", str(warmup), "--results-dir", results]
        argv += ["--rounds", str(rounds)]
        proxy.main(argv)
        (path,) = Path(results).glob("proxy-*.json")
        doc = json.loads(path.read_text())
    figures: dict[str, dict[str, float]] = {"cpu_plan": doc["cpu_plan"]}
    for target in doc["targets"]:
        if target["variant"] is not None and target["error"] is None:
            figures[target["variant"]] = target["median"]
    return figures


def e2e(duration: float, warmup: float, rounds: int = 1) -> None:
    """Per concurrency: the gateway variants over ``rounds`` interleaved rounds (medians), then
    the server alone ``rounds`` times (median): this machine's figures drift between runs."""
    from conftest import free_port  # type: ignore[import-not-found]

    message = sample_message()
    summary: list[str] = []
    for connections in (32, 1):
        figures = gateway_run(connections, duration, warmup, rounds)
        plan = figures.pop("cpu_plan")
        port = free_port()
        load = plan.get("load")  # where the grpc-pre variant put it (a CPU list)
        server = start_server(port, None if load is None else str(load))
        try:
            if plan.get("sut") is not None:
                os.sched_setaffinity(0, {int(c) for c in str(plan["sut"]).split(",")})
            bench_grpcio(f"127.0.0.1:{port}", message, connections, warmup)  # warm-up
            alone = [
                bench_grpcio(f"127.0.0.1:{port}", message, connections, duration)
                for _ in range(rounds)
            ]
            alone_rate = statistics.median(rate for rate, _ in alone)
            alone_p50 = statistics.median(p50 for _, p50 in alone)
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            server.kill()
            server.wait()
        keyless, hooked = figures.get("keyless"), figures.get("grpc-pre")
        if keyless is None or hooked is None:
            summary.append(f"c={connections}: a gateway variant failed (see above)")
            continue
        lesser = min(keyless["rps"], alone_rate)
        summary.append(
            f"c={connections}: keyless {keyless['rps']:.0f} req/s p50 {keyless['p50_us'] / 1e3:.2f}"
            f" ms | grpc-pre {hooked['rps']:.0f} req/s p50 {hooked['p50_us'] / 1e3:.2f} ms |"
            f" server alone {alone_rate:.0f} calls/s p50 {alone_p50 * 1e3:.2f} ms"
        )
        summary.append(
            f"    throughput grpc-pre / min(keyless, server alone) = {hooked['rps'] / lesser:.2f}"
            " (target >= 0.80)"
        )
        if connections == 1:
            added = (hooked["p50_us"] - keyless["p50_us"]) / 1e3 - alone_p50 * 1e3
            summary.append(
                f"    added p50 over the server's own call = {added:.2f} ms (target <= 0.50 ms)"
            )
    print("\n".join(["", "gRPC Pre hook, end to end:", *summary]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--e2e", action="store_true", help="through the gateway (see above)")
    parser.add_argument("--duration", type=float, default=10.0, help="--e2e: seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="--e2e: seconds of warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="--e2e: rounds (medians shown)")
    args = parser.parse_args()
    if args.e2e:
        e2e(args.duration, args.warmup, args.rounds)
        return
    from conftest import free_port

    port = free_port()
    server = start_server(port)
    try:
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
