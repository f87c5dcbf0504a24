"""Microbenchmark: the pure per-request work of a keyless proxied request, stage by stage.

What one keyless GET costs in Python before and after the sockets, with a curl-like request and
the response of the benchmark's static nginx upstream, in the order the gateway does it:

* ``parse request``: ``H1ServerParser.feed`` of the request bytes, its events taken (one parser
  for all requests, as on a keep-alive connection; the same for responses);
* ``request``: the ``Request`` the server builds, the gateway's header lookups (request id, Host,
  X-Forwarded-For, Upgrade) and the ``UpstreamRequest`` it addresses;
* ``hook checks``: what the pipeline runs after each of two native hooks that change nothing
  (Pre and Post; trees before issue 9 had no such check: 0);
* ``request head``: ``_upstream.proxy.build_request_head``;
* ``parse response``: ``H1ClientParser.feed`` of nginx's response, its events taken;
* ``response head``: ``strip_hop_by_hop`` of the upstream's fields and the head for the client
  (``_proto.writer.response_head``; before issue 9 the inline code of ``_server._write_response``,
  reproduced here).

Every stage uses the functions of the tree it imports, so one script compares commits: run it
with another tree's interpreter and ``--src installed`` (that venv's own copy of trio_gateway), or
with ``--src PATH`` for a source tree. Stages run interleaved, ``--calls`` requests per round, and
the medians over ``--rounds`` rounds are printed in µs of CPU time (``time.process_time``) per
request; ``--json`` prints them as one JSON object instead.

    .venv/bin/python bench/bench_request_path.py
    /work/main/bench/.work/rev-7f8dcf614d96/venv/bin/python bench/bench_request_path.py \\
        --src installed
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: curl's request (wrk sends the request line and Host only).
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
RESPONSE_BODY = b"x" * 100
#: What the benchmark's nginx upstream (bench/_nginx.py, server_tokens off) answers.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx\r\n"
    b"Date: Mon, 30 Nov 2026 16:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 100\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + RESPONSE_BODY
)


def _import_tree(src: str) -> None:
    if src != "installed":
        sys.path.insert(0, str(Path(src).resolve()))


def build_stages() -> dict[str, Callable[[Any], Any]]:
    """One function per stage; each takes the previous stage's output."""
    from trio_gateway._exchange import Request, Response
    from trio_gateway._proto.events import EndOfMessage, RequestHead, ResponseHead
    from trio_gateway._proto.http1 import H1ClientParser, H1ServerParser
    from trio_gateway._upstream.connection import Origin
    from trio_gateway._upstream.headers import strip_hop_by_hop
    from trio_gateway._upstream.proxy import UpstreamRequest, build_request_head

    origin = Origin("http", "127.0.0.1", 8081)

    # One parser each way for every request, as on a keep-alive connection (a parser per request
    # would time its creation and the garbage collection of its reference cycle instead).
    server_parser = H1ServerParser()
    client_parser = H1ClientParser()

    def parse_request(_: object) -> RequestHead:
        parser = server_parser
        parser.feed(REQUEST)
        head = parser.next_event()
        end = parser.next_event()
        assert isinstance(head, RequestHead)
        assert isinstance(end, EndOfMessage)
        return head

    def make_request(head: RequestHead) -> tuple[Request, UpstreamRequest]:
        path, sep, query = head.target.partition(b"?")
        request = Request(
            method=head.method.decode("ascii"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1") if sep else "",
            headers=head.headers,
            http_version=head.http_version,
            client_addr="127.0.0.1",
            body_source=None,
            content_length=head.content_length,
        )
        rid = request.header(b"x-request-id")
        request.request_id = rid.decode("latin-1") if rid else "0123456789ab000000000001"
        host_header = request.header(b"host")
        xff = request.header(b"x-forwarded-for")
        client = request.client_addr.encode("latin-1")
        forwarded = [
            (b"X-Forwarded-For", xff + b", " + client if xff else client),
            (b"X-Forwarded-Proto", b"http"),
            (b"X-Request-ID", request.request_id.encode("latin-1")),
        ]
        if host_header:
            forwarded.append((b"X-Forwarded-Host", host_header))
        target = request.path + ("?" + request.query if request.query else "")
        up = UpstreamRequest(
            origin=origin,
            target=target.encode("latin-1"),
            host=b"127.0.0.1:8081",
            forwarded=forwarded,
        )
        return request, up

    from trio_gateway._apidef.model import Stage

    checks: Callable[[Request], None] | None = None
    try:  # the walk's checks after each hook (steps.py since issue 12's last split)
        try:
            from trio_gateway._pipeline.steps import _check_fields, _known_good
        except ImportError:
            from trio_gateway._pipeline.runner import _check_fields, _known_good

        def checks(request: Request) -> None:
            checked = _known_good(request, None)
            checked = _check_fields(Stage.PRE, request, None, checked)
            _check_fields(Stage.POST, request, None, checked)

    except ImportError:
        try:  # as merged with issue 9
            from trio_gateway._pipeline.runner import _checked_outcome

            def checks(request: Request) -> None:
                _checked_outcome(Stage.PRE, None, request, None)
                _checked_outcome(Stage.POST, None, request, None)

        except ImportError:  # before issue 9: no check after a hook
            pass

    def hook_checks(pair: tuple[Request, UpstreamRequest]) -> tuple[Request, UpstreamRequest]:
        if checks is not None:
            checks(pair[0])
        return pair

    def request_head(pair: tuple[Request, UpstreamRequest]) -> tuple[Request, bytes]:
        request, up = pair
        upgrade = request.header(b"upgrade") is not None
        return request, build_request_head(request, up, upgrade=upgrade)

    def parse_response(pair: tuple[Request, bytes]) -> tuple[Request, ResponseHead]:
        parser = client_parser
        parser.feed(RESPONSE)
        head = parser.next_event()
        assert isinstance(head, ResponseHead)
        while not isinstance(parser.next_event(), EndOfMessage):
            pass
        return pair[0], head

    try:
        from trio_gateway._proto.writer import response_head as writer_response_head
    except ImportError:
        writer_response_head = None
        from trio_gateway._proto.http1 import (  # type: ignore[attr-defined,no-redef]
            serialise_head,
            status_line,
        )

    def response_head(pair: tuple[Request, ResponseHead]) -> bytes:
        request, event = pair
        # As in _upstream/proxy.forward and _server._write_response (streamed body).
        response = Response(
            status=event.status,
            reason=event.reason,
            headers=strip_hop_by_hop(event.headers),
            body_bytes=None,
            content_length=event.content_length,
        )
        rid = request.request_id
        if writer_response_head is not None:
            extra = [(b"X-Request-ID", rid.encode("latin-1"))] if rid else None
            head, _, _ = writer_response_head(
                response.status,
                response.reason,
                response.headers,
                body_length=response.content_length,
                bodiless=response.bodiless,
                head_request=False,
                keep_alive=True,
                http10=request.http_version == "1.0",
                transfer_coding=getattr(response, "transfer_coding", b""),
                extra=extra,
            )
            return head
        # The inline code of _server._write_response before issue 9 (streamed, keep-alive).
        headers = response.headers
        if rid:
            headers.append((b"X-Request-ID", rid.encode("latin-1")))
        bodiless = response.bodiless or response.status in (204, 304) or response.status < 200
        if not bodiless and response.content_length is not None:
            headers.append((b"Content-Length", b"%d" % response.content_length))
        if request.http_version == "1.0":
            headers.append((b"Connection", b"keep-alive"))
        return serialise_head(status_line(response.status, response.reason), headers)  # type: ignore[no-any-return]

    return {
        "parse request": parse_request,
        "request": make_request,
        "hook checks": hook_checks,
        "request head": request_head,
        "parse response": parse_response,
        "response head": response_head,
    }


def run(rounds: int, calls: int) -> dict[str, float]:
    stages = build_stages()
    names = list(stages)
    funcs = list(stages.values())
    # Each stage timed on its own over ``calls`` requests, on the inputs the stage before made.
    inputs: list[list[Any]] = []
    values: list[Any] = [None] * calls
    for func in funcs:
        inputs.append(values)
        values = [func(v) for v in values]
    samples: dict[str, list[float]] = {name: [] for name in [*names, "total"]}
    # The collector as `trio-gateway run` sets it (_cli._tune_gc): startup heap frozen, the
    # first threshold at 20,000 (with the default 700 the whole path pays for collections).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    for _ in range(rounds):
        total = 0.0
        for name, func, args in zip(names, funcs, inputs, strict=True):
            start = time.process_time()
            for arg in args:
                func(arg)
            spent = (time.process_time() - start) / calls * 1e6
            samples[name].append(spent)
            total += spent
        # The whole path in one go, too (cache effects between stages included).
        start = time.process_time()
        for _ in range(calls):
            value: Any = None
            for func in funcs:
                value = func(value)
        samples["total"].append((time.process_time() - start) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _import_tree(args.src)
    result = run(args.rounds, args.calls)
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        print(f"{name:>15}: {value:7.2f} µs")


if __name__ == "__main__":
    main()
