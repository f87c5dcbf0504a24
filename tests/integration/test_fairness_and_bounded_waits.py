"""Loops over sockets whose calls succeed at once still let other tasks run and still notice
cancellation; waits that could last forever (an upstream that stops reading a tunnel, a TLS
close the peer never acknowledges) are bounded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from trio_gateway import _net
from trio_gateway._exchange import Request, Response
from trio_gateway._net import RawSocketStream, TlsByteStream
from trio_gateway._server import HttpServer

CHUNK = 1024


def socket_pair() -> tuple[RawSocketStream, socket.socket]:
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return RawSocketStream(ours), theirs


async def test_a_relay_of_data_already_there_lets_other_tasks_run() -> None:
    """A body fully in the socket buffers, relayed to a socket that takes everything at once:
    before, the relay held the event loop until the end of the body."""
    source, feeder = socket_pair()
    sink, drain = socket_pair()
    chunks = 200
    feeder.sendall(b"x" * CHUNK * chunks)
    feeder.shutdown(socket.SHUT_WR)
    relayed = 0
    seen_at: list[int] = []
    started = trio.Event()

    async def relay() -> None:
        nonlocal relayed
        started.set()  # from here on, the other task can run only when the relay yields
        while data := await source.receive_some(CHUNK):
            await sink.send_all(data)
            relayed += 1

    async def other_connection() -> None:
        await started.wait()
        seen_at.append(relayed)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay)
        nursery.start_soon(other_connection)
    assert relayed == chunks
    # The other task ran after a bounded number of chunks, not after the whole body.
    assert seen_at[0] <= _net.FAIR_STREAK
    for sock in (feeder, drain):
        sock.close()
    source.close()
    sink.close()


async def test_thousands_of_pipelined_requests_do_not_hold_the_loop(
    nursery: trio.Nursery,
) -> None:
    """Requests already read and parsed need no system call each: before, a client pipelining
    3,000 of them to a handler that answers at once was served before anything else ran."""
    handled = 0

    async def handler(request: Request) -> Response:
        nonlocal handled
        handled += 1
        return Response(status=200, headers=[], body_bytes=b"ok")

    server = HttpServer(handler=handler, log_requests=False)
    host, port = await nursery.start(server.serve, "127.0.0.1", 0)
    client = socket.create_connection((host, port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3000)
    seen_at: list[int] = []

    async def other_connection() -> None:
        while handled == 0:  # the server is busy with the pipeline from here on
            await trio.lowlevel.checkpoint()
        seen_at.append(handled)

    with trio.fail_after(10):
        await other_connection()
    client.close()
    assert seen_at[0] <= 2 * _net.FAIR_STREAK


@pytest.mark.parametrize("direction", ["receive", "send"])
async def test_cancellation_reaches_a_loop_whose_socket_calls_never_wait(direction: str) -> None:
    stream, peer = socket_pair()
    if direction == "receive":
        peer.sendall(b"x" * CHUNK * 200)
    calls = 0
    with trio.CancelScope() as scope:
        scope.cancel()
        while calls < 200:
            if direction == "receive":
                await stream.receive_some(CHUNK)
            else:
                await stream.send_all(b"x" * CHUNK)
            calls += 1
    assert scope.cancelled_caught
    assert calls <= _net.FAIR_STREAK
    stream.close()
    peer.close()


async def test_an_upstream_that_stops_reading_a_tunnel_ends_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """After a 101 the upstream never reads again: the gateway's write to it is bounded (by
    ``body_read_timeout``) and the tunnel closes, instead of both connections hanging."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    upstream_done = trio.Event()

    async def upstream() -> None:
        conn, _ = await listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await conn.recv(65536)
            await conn.send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            await upstream_done.wait()  # never reads again

    nursery.start_soon(upstream)
    write_keyless_api(
        tmp_path, api_id="ws", listen_path="/ws/", target_url=f"http://127.0.0.1:{port}"
    )
    gw = await start_gateway(nursery, tmp_path, body_read_timeout=0.3)
    client = await trio.open_tcp_stream(*gw.address)
    async with client:
        await client.send_all(
            b"GET /ws/ HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await client.receive_some()
        assert received.startswith(b"HTTP/1.1 101")

        async def flood() -> None:
            block = b"x" * 65536
            try:
                while True:
                    await client.send_all(block)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as flooding:
            flooding.start_soon(flood)
            # The tunnel must end by itself (EOF or reset), long before this bound.
            with trio.fail_after(10):
                try:
                    while await client.receive_some():
                        pass
                except trio.BrokenResourceError:
                    pass
            flooding.cancel_scope.cancel()
    upstream_done.set()
    listener.close()


async def test_a_tls_close_the_peer_never_answers_is_bounded(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """close_notify is a send: to a peer that reads nothing (its buffers full) it would wait
    forever, and callers close shielded."""
    monkeypatch.setattr(_net, "TLS_CLOSE_TIMEOUT", 1.0)

    class StuckTls:
        transport_stream = trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket()))

        async def aclose(self) -> None:
            await trio.sleep_forever()

    stream = TlsByteStream(StuckTls())  # type: ignore[arg-type]
    with trio.CancelScope(shield=True):
        await stream.aclose()
    assert trio.current_time() == pytest.approx(1.0, abs=0.01)
