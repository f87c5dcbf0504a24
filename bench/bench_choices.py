"""Measurements behind docs/decisions.md: the HTTP/1.1 parser and the upstream client.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_choices.py [--upstream http://127.0.0.1:PORT/] [--requests N]

1. Parsers: the same keep-alive request parsed N times by h11 and by httptools (llhttp) through
   our ``H1ServerParser``; CPU microseconds per request, median of 5 rounds.
2. Upstream clients, from Trio, 32 concurrent tasks: ``httpx.AsyncClient`` against our pooled
   ``UpstreamPool`` + ``forward``, each doing N GETs to the same upstream in the same run;
   requests/s and CPU microseconds per request. Without ``--upstream`` it starts nginx (a fixed
   100-byte body) on a free loopback port, as ``bench/proxy.py`` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_gateway._exchange import Request
from trio_gateway._proto.http1 import H1ServerParser
from trio_gateway._upstream.connection import Origin, UpstreamPool
from trio_gateway._upstream.proxy import UpstreamRequest, forward

REQUEST = (
    b"GET /orders/123?expand=items HTTP/1.1\r\nHost: api.example.com\r\n"
    b"User-Agent: bench/1.0\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n"
    b"Authorization: Bearer abcdef0123456789\r\nX-Request-ID: 0123456789abcdef\r\n\r\n"
)


def bench_h11(n: int) -> float:
    import h11

    conn = h11.Connection(h11.SERVER)
    start = time.process_time()
    for _ in range(n):
        conn.receive_data(REQUEST)
        while True:
            event = conn.next_event()
            if isinstance(event, h11.EndOfMessage):
                break
        conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()
    return (time.process_time() - start) / n * 1e6


def bench_httptools(n: int) -> float:
    parser = H1ServerParser()
    start = time.process_time()
    for _ in range(n):
        parser.feed(REQUEST)
        while parser.next_event() is not None:
            pass
    return (time.process_time() - start) / n * 1e6


async def drive(n: int, concurrency: int, one: object) -> tuple[float, float]:
    per_task = n // concurrency
    wall = time.perf_counter()
    cpu = time.process_time()

    async def worker() -> None:
        for _ in range(per_task):
            await one()  # type: ignore[operator]

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    done = per_task * concurrency
    return done / (time.perf_counter() - wall), (time.process_time() - cpu) / done * 1e6


async def bench_clients(url: str, n: int, concurrency: int) -> dict[str, tuple[float, float]]:
    import httpx

    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    results: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_keepalive_connections=concurrency)
    ) as client:

        async def httpx_one() -> None:
            response = await client.get(url)
            assert response.status_code == 200

        results["httpx.AsyncClient"] = await drive(n // 4, concurrency, httpx_one)

    pool = UpstreamPool(ssl_context=ssl.create_default_context())
    origin = Origin(scheme="http", host=host, port=int(port))
    up = UpstreamRequest(origin=origin, target=b"/", host=f"{host}:{port}".encode(), forwarded=[])

    async def ours_one() -> None:
        request = Request(method="GET", path="/", query="", headers=[])
        response = await forward(request, up, pool, body_timeout=10)
        await response.read_body()
        assert response.status == 200

    results["trio-gateway UpstreamPool"] = await drive(n, concurrency, ours_one)
    await pool.aclose()
    return results


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1; daemon off; pid {workdir}/nginx.pid; error_log {workdir}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};
  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  keepalive_requests 10000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{"x" * 100}"; }} }} }}
"""
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)  # waiting for a child process to listen, not synchronising tests
    return proc, f"http://127.0.0.1:{port}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", help="an upstream URL answering GET / with 200")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} ({sys.executable}), pid {os.getpid()}")

    h11_us = statistics.median(bench_h11(args.requests) for _ in range(5))
    ht_us = statistics.median(bench_httptools(args.requests) for _ in range(5))
    print(f"parse+events per request: h11 {h11_us:.1f} us, httptools {ht_us:.1f} us "
          f"({h11_us / ht_us:.1f}x)")

    proc = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-choices-"))
    url = args.upstream
    try:
        if url is None:
            if shutil.which("nginx") is None:
                sys.exit("nginx not found: apt-get install nginx, or pass --upstream")
            proc, url = start_nginx(workdir)
        results = trio.run(bench_clients, url, args.requests, args.concurrency)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    for name, (rps, cpu_us) in results.items():
        print(f"{name:28} {rps:8.0f} req/s  {cpu_us:7.1f} us CPU per request")


if __name__ == "__main__":
    main()
