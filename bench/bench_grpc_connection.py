"""Microbenchmark: the gRPC driver's HTTP/2 client connection alone, CPU per unary call.

``plugin_drivers.grpc.connection.Connection`` (and under it the HTTP/2 state) against an
in-process fake server on a Trio memory stream pair: the server cuts the request into frames with
``h2codec.FrameParser`` and answers every call with the same canned reply (HEADERS, one DATA
with a 200-byte message, trailers). No grpcio, no sockets, no protobuf: what is measured is the
client's per-call work plus the fake server's (the same in every tree), as CPU time
(``time.process_time``) per call, medians over ``--rounds`` rounds of ``--calls`` calls, with one
caller and with ``--concurrency`` callers. Runs against any checkout whose ``Connection`` has
``start(stream, scheme, keepalive)``, ``run()`` and ``unary(block, message, recv_max)``:

    .venv/bin/python bench/bench_grpc_connection.py [--root CHECKOUT] [--rounds 9] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any


async def main(rounds: int, calls: int, concurrency: int) -> None:
    import trio
    import trio.testing

    from plugin_drivers.grpc import h2codec
    from plugin_drivers.grpc.common import NO_KEEPALIVE
    from plugin_drivers.grpc.connection import Connection

    message = b"m" * 200
    reply_head = h2codec.literal_field(b":status", b"200") + h2codec.literal_field(
        b"content-type", b"application/grpc"
    )
    trailers = h2codec.literal_field(b"grpc-status", b"0")
    reply_data = b"\x00" + len(message).to_bytes(4, "big") + message

    async def server(stream: Any) -> None:
        parser = h2codec.FrameParser()
        await stream.send_all(h2codec.settings_frame())
        preface = b""
        while len(preface) < len(h2codec.CLIENT_PREFACE):
            preface += await stream.receive_some(len(h2codec.CLIENT_PREFACE) - len(preface))
        while data := await stream.receive_some(65536):
            out = bytearray()
            for frame in parser.feed(data):
                if frame.type == h2codec.FrameType.SETTINGS and not frame.flags & h2codec.Flag.ACK:
                    out += h2codec.settings_frame(ack=True)
                elif frame.type == h2codec.FrameType.DATA and frame.flags & h2codec.Flag.END_STREAM:
                    sid = frame.stream_id
                    out += h2codec.window_update_frame(0, frame.flow)  # the connection's window
                    out += h2codec.frame(
                        h2codec.FrameType.HEADERS, h2codec.Flag.END_HEADERS, sid, reply_head
                    )
                    out += h2codec.frame(h2codec.FrameType.DATA, 0, sid, reply_data)
                    flags = h2codec.Flag.END_HEADERS | h2codec.Flag.END_STREAM
                    out += h2codec.frame(h2codec.FrameType.HEADERS, flags, sid, trailers)
            if out:
                await stream.send_all(bytes(out))

    block = h2codec.request_header_block(
        scheme=b"http", authority=b"bench", path=b"/coprocess.Dispatcher/Dispatch", user_agent=b"b"
    ) + h2codec.timeout_field(b"5S")

    async with trio.open_nursery() as nursery:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        nursery.start_soon(server, server_stream)
        conn = Connection.start(client_stream, b"http", NO_KEEPALIVE)
        nursery.start_soon(conn.run)

        async def caller(n: int) -> None:
            for _ in range(n):
                assert await conn.unary(block, message, 1 << 20) == message

        await caller(200)  # warm up (settings exchanged, decoder cache filled)
        print(f"{'callers':>8} {'µs CPU/call':>12}")
        for width in (1, concurrency):
            samples = []
            for _ in range(rounds):
                start = time.process_time_ns()
                async with trio.open_nursery() as inner:
                    for _ in range(width):
                        inner.start_soon(caller, calls // width)
                samples.append((time.process_time_ns() - start) / calls / 1000)
            print(f"{width:>8} {statistics.median(samples):>12.2f}")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    import trio

    trio.run(main, args.rounds, args.calls, args.concurrency)
