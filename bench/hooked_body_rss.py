"""Peak RSS of a real gateway process while large request bodies go through hooked APIs.

Starts, on 127.0.0.1: a gateway (``python -m trio_gateway run`` from ``--src``), the test suite's
grpcio echo Dispatcher (its own process), and a sink upstream (in this process). Then, per
scenario, sends ``--size-mb`` of body (Content-Length or chunked) to

* ``/native/`` -- a native Pre hook that calls ``ctx.request.read_body()``,
* ``/grpc/``   -- a gRPC Pre hook (the Object carries the body),
* ``/plain/``  -- no hooks (the body streams through),

one request or ``--parallel`` at once, while sampling the gateway's RSS (``/proc/PID/status``,
every 5 ms) and timing small GETs to ``/plain/`` on another connection (the longest one shows
how long the event loop was held). Prints one row per scenario.

    .venv/bin/python bench/hooked_body_rss.py                  # this tree, default settings
    .venv/bin/python bench/hooked_body_rss.py --src /tmp/old --no-limit-key   # an older tree

``--no-limit-key`` leaves ``hooks.max_body_bytes`` out of the config (trees before it existed).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from variants import keyless_api  # noqa: E402

from trio_gateway._exchange import Request, Response  # noqa: E402
from trio_gateway._server import HttpServer  # noqa: E402

BLOCK = 256 * 1024
HOOK = """
async def reads(ctx):
    body = await ctx.request.read_body()
    ctx.request.set_header("x-body-length", str(len(body)))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(api_id: str, target: str, middleware: Mapping[str, object] | None) -> str:
    extra: dict[str, object] = {"custom_middleware": middleware} if middleware else {}
    proxy = {"listen_path": f"/{api_id}/", "target_url": target, "strip_listen_path": True}
    return json.dumps(keyless_api(api_id, target, proxy=proxy, **extra))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def sink(request: Request) -> Response:
    size = 0
    if request.body_source is not None:
        while chunk := await request.body_source.receive_some():
            size += len(chunk)
    return Response(status=200, headers=[], body_bytes=b"%d" % size)


async def send_one(port: int, path: str, size: int, chunked: bool) -> str:
    """POST ``size`` bytes; the status the gateway answered (or how the connection ended)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    status = "no answer"
    async with stream:
        head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        head += (
            "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
        )
        block = b"x" * BLOCK
        framed = b"%x\r\n" % BLOCK + block + b"\r\n" if chunked else block

        async def send_body() -> None:
            try:
                await stream.send_all(head.encode())
                for _ in range(size // BLOCK):
                    await stream.send_all(framed)
                if chunked:
                    await stream.send_all(b"0\r\n\r\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_body)
            received = b""
            try:
                while b"\r\n" not in received:
                    data = await stream.receive_some()
                    if not data:
                        break
                    received += data
            except trio.BrokenResourceError:
                status = "reset"
            if received:
                status = received.split(b" ", 2)[1].decode()
            nursery.cancel_scope.cancel()
    return status


async def probe(port: int, stop: trio.Event, worst: list[float]) -> None:
    """GET /plain/ on one keep-alive connection, again and again: the longest answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        while not stop.is_set():
            started = time.perf_counter()
            await stream.send_all(b"GET /plain/ HTTP/1.1\r\nHost: bench\r\n\r\n")
            received = b""
            while not received.endswith(b"\r\n\r\n1") and not received.endswith(b"\r\n\r\n0"):
                received += await stream.receive_some()
            worst[0] = max(worst[0], time.perf_counter() - started)
            await trio.sleep(0.002)


async def scenario(
    pid: int, port: int, name: str, path: str, size: int, chunked: bool, parallel: int
) -> None:
    peak = [rss_kb(pid)]
    before = peak[0]
    stop = trio.Event()
    worst = [0.0]
    statuses: list[str] = []

    async def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            await trio.sleep(0.005)

    started = time.perf_counter()
    async with trio.open_nursery() as watchers:
        watchers.start_soon(sample)
        watchers.start_soon(probe, port, stop, worst)
        async with trio.open_nursery() as clients:
            for _ in range(parallel):

                async def one() -> None:
                    statuses.append(await send_one(port, path, size, chunked))

                clients.start_soon(one)
        elapsed = time.perf_counter() - started
        await trio.sleep(0.5)  # let memory settle before the "after" figure
        stop.set()
    after = rss_kb(pid)
    print(
        f"| {name} | {parallel} | {', '.join(sorted(statuses))} | {elapsed:.2f} s "
        f"| {before / 1024:.0f} MB | **{peak[0] / 1024:.0f} MB** | {after / 1024:.0f} MB "
        f"| {worst[0] * 1000:.0f} ms |",
        flush=True,
    )


def write_setup(work: Path, args: argparse.Namespace, up_port: int, grpc_port: int) -> Path:
    """The APIs folder and gateway.toml; returns the config's path."""
    target = f"http://127.0.0.1:{up_port}/"
    apps = work / "apps"
    apps.mkdir()
    (apps / "hooks.py").write_text(HOOK)
    native = {"driver": "python", "pre": [{"name": "reads", "path": "hooks.py"}]}
    (apps / "native.json").write_text(api("native", target, native))
    grpc = {"driver": "grpc", "pre": [{"name": "pre"}]}
    (apps / "grpc.json").write_text(api("grpc", target, grpc))
    (apps / "plain.json").write_text(api("plain", target, None))
    lines = ["[hooks]", "timeout = 60.0"]
    if not args.no_limit_key and args.limit is not None:
        lines.append(f"max_body_bytes = {args.limit}")
    lines += [
        "[coprocess]",
        "enable = true",
        f'grpc_server = "tcp://127.0.0.1:{grpc_port}"',
        f"grpc_recv_max_size = {64 * 1024 * 1024}",
    ]
    config = work / "gateway.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def start_ready(argv: list[str]) -> subprocess.Popen[str]:
    """A helper process that prints ``ready`` once it serves."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("ready")
    return proc


async def measure(args: argparse.Namespace, pid: int, port: int) -> None:
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.aclose()
                break
            except OSError:
                await trio.sleep(0.1)
    size = args.size_mb * 1024 * 1024
    print(f"gateway pid {pid}, body {args.size_mb} MB, src {args.src}")
    print(
        "| scenario | at once | answers | time | RSS before | RSS peak | RSS after | longest GET |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    hooked = (("/native/", "native hook"), ("/grpc/", "gRPC hook"))
    for path, name in (*hooked, ("/plain/", "no hook")):
        for chunked in (False, True):
            for parallel in sorted({1, args.parallel}):
                label = f"{name}, {'chunked' if chunked else 'Content-Length'}"
                await scenario(pid, port, label, path, size, chunked, parallel)
    if args.within_mb:
        for path, name in hooked:
            label = f"{name}, {args.within_mb} MB (within the limit)"
            within = args.within_mb * 1024 * 1024
            await scenario(pid, port, label, path, within, False, args.parallel)


def run(args: argparse.Namespace) -> None:
    procs: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hooked-body-") as tmp:
            up_port, grpc_port, gw_port = free_port(), free_port(), free_port()
            config = write_setup(Path(tmp), args, up_port, grpc_port)
            # The sink upstream in its own process: the probe's timings show the gateway alone.
            procs.append(start_ready([args.python, __file__, "--sink-port", str(up_port)]))
            server = str(REPO / "tests/plugin_drivers/grpc/grpc_dispatcher_server.py")
            procs.append(start_ready([args.python, server, str(grpc_port)]))
            argv = [args.python, "-m", "trio_gateway", "run", "--config", str(config)]
            argv += ["--apps", str(Path(tmp) / "apps"), "--listen", f"127.0.0.1:{gw_port}"]
            argv += ["--log-level", "error"]
            gateway = subprocess.Popen(
                argv,
                cwd=args.src,
                env={**os.environ, "PYTHONPATH": args.src},
                stdout=subprocess.DEVNULL,
                text=True,
            )
            procs.append(gateway)
            trio.run(measure, args, gateway.pid, gw_port)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", default=str(REPO), help="source tree whose gateway runs")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="hooks.max_body_bytes to set")
    parser.add_argument("--no-limit-key", action="store_true")
    parser.add_argument("--within-mb", type=int, default=0, help="also send bodies of this size")
    parser.add_argument("--sink-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink_port:
        trio.run(serve_sink, args.sink_port)
    else:
        run(args)


async def serve_sink(port: int) -> None:
    server = HttpServer(handler=sink, log_requests=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, "127.0.0.1", port)
        print("ready", flush=True)


if __name__ == "__main__":
    main()
