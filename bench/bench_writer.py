"""Microbenchmark: the cost of the HTTP/1.1 send side per message head (issue 9).

Times, per call, for a typical proxied exchange (7 request fields, 6 response fields):

* ``request head``: ``_upstream.proxy.build_request_head`` (hop-by-hop removal, validation,
  framing) against the head building it replaced (kept below as ``_old_request_head``);
* ``response head``: ``_proto.writer.response_head`` against the old inline code
  (``_old_response_head``: appends to the header list, no validation, no framing ownership);
* ``hook check``: ``check_request``, which the pipeline runs after each hook.

Prints medians of ``--rounds`` rounds of ``--calls`` calls each, in µs per call.

    .venv/bin/python bench/bench_writer.py [--rounds 15] [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trio_gateway._exchange import Request
from trio_gateway._proto.writer import check_request, response_head, status_line
from trio_gateway._upstream.connection import Origin
from trio_gateway._upstream.headers import strip_hop_by_hop
from trio_gateway._upstream.proxy import UpstreamRequest, build_request_head

Headers = list[tuple[bytes, bytes]]

REQUEST_HEADERS: Headers = [
    (b"Host", b"gateway.example:8080"),
    (b"User-Agent", b"wrk/4.2.0 (bench)"),
    (b"Accept", b"*/*"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"Authorization", b"Bearer 0123456789abcdef0123456789abcdef"),
    (b"X-Custom-Thing", b"some value"),
    (b"Connection", b"keep-alive"),
]
RESPONSE_HEADERS: Headers = [
    (b"Content-Type", b"application/json"),
    (b"Date", b"Mon, 30 Nov 2026 15:00:00 GMT"),
    (b"Server", b"upstream/1.0"),
    (b"Cache-Control", b"no-cache"),
    (b"ETag", b'"abc123"'),
    (b"X-Upstream-Thing", b"value"),
]


def _old_serialise(first_line: bytes, headers: Headers) -> bytes:
    parts = [first_line]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _old_request_head(request: Request, up: UpstreamRequest) -> bytes:
    headers = strip_hop_by_hop(request.headers)
    override = {name.lower() for name, _ in up.forwarded}
    override.add(b"host")
    override.add(b"expect")
    out: Headers = [(b"Host", up.host)]
    out.extend((n, v) for n, v in headers if n.lower() not in override)
    out.extend(up.forwarded)
    first = request.method.encode("ascii") + b" " + up.target + b" HTTP/1.1\r\n"
    return _old_serialise(first, out)


def _old_response_head(headers: Headers, length: int) -> bytes:
    headers = list(headers)  # the old code appended to the response's own list
    headers.append((b"X-Request-ID", b"0123456789abcdef"))
    headers.append((b"Content-Length", b"%d" % length))
    return _old_serialise(status_line(200), headers)


def _time(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    request = Request(method="GET", path="/api/items", query="page=2", headers=REQUEST_HEADERS)
    up = UpstreamRequest(
        origin=Origin("http", "127.0.0.1", 8000),
        target=b"/items?page=2",
        host=b"127.0.0.1:8000",
        forwarded=[
            (b"X-Forwarded-For", b"127.0.0.1"),
            (b"X-Forwarded-Proto", b"http"),
            (b"X-Request-ID", b"0123456789abcdef"),
            (b"X-Forwarded-Host", b"gateway.example:8080"),
        ],
    )
    rid = [(b"X-Request-ID", b"0123456789abcdef")]
    cases: dict[str, Callable[[], object]] = {
        "request head, before": lambda: _old_request_head(request, up),
        "request head, writer": lambda: build_request_head(request, up, upgrade=False),
        "response head, before": lambda: _old_response_head(RESPONSE_HEADERS, 512),
        "response head, writer": lambda: response_head(
            200, b"", RESPONSE_HEADERS, body_length=512, extra=rid
        ),
        "hook check (per hook)": lambda: check_request(
            "GET", "/api/items", "page=2", REQUEST_HEADERS
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():  # interleaved, so drift hits every case alike
            results[name].append(_time(fn, args.calls))
    for name, samples in results.items():
        print(f"{name:24} {statistics.median(samples):6.2f} µs")


if __name__ == "__main__":
    main()
