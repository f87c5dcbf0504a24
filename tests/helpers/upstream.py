"""Programmable test upstreams on 127.0.0.1:0, run in the test's own nursery.

:class:`RawUpstream` is a small HTTP/1.1 server whose behaviour the test scripts with a
*responder* (``async def respond(request, reply)``). It counts accepted connections, records every
request it received (head and body), lets a responder hold its answer until a ``trio.Event``,
stream chunks on command, close the connection without answering, and it notices when the gateway
closes a connection (``ServedConnection.closed_by_peer``). Give it an ``ssl.SSLContext`` (see
:func:`tls_server_context`) and it speaks HTTPS.

:class:`WebSocketEchoUpstream` accepts WebSocket upgrades (wsproto) and echoes every message.

Tests synchronise with :meth:`RawUpstream.wait_until` (re-checked on every state change), never
with sleeps.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import httptools  # type: ignore[import-untyped,unused-ignore]
import trio
import trustme
import wsproto
import wsproto.events as ws

Headers = list[tuple[bytes, bytes]]

__all__ = [
    "WAIT_BOUND",
    "Headers",
    "RawUpstream",
    "ReceivedRequest",
    "Reply",
    "Responder",
    "ServedConnection",
    "WebSocketEchoUpstream",
    "echo_responder",
    "start_upstream",
    "start_websocket_echo",
    "tls_server_context",
    "write_ca_file",
]

_RECEIVE_SIZE = 65536
#: Upper bound on any wait in these helpers.
WAIT_BOUND = 20.0


@attrs.define(eq=False)
class ReceivedRequest:
    """One request as the upstream received it."""

    method: str
    #: The request target exactly as it arrived on the request line.
    target: bytes
    http_version: str
    headers: Headers
    #: The body (only when the upstream keeps bodies; see ``RawUpstream.keep_bodies``).
    body: bytearray
    #: Body bytes received, kept or not.
    body_size: int
    #: The connection it came on, and its position there (0 = first request on the connection).
    connection: ServedConnection
    index_on_connection: int
    keep_alive: bool = True

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: bytes) -> list[bytes]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def header_names(self) -> set[bytes]:
        return {key.lower() for key, _ in self.headers}


@attrs.define(eq=False)
class ServedConnection:
    """One connection the upstream accepted."""

    index: int
    stream: trio.abc.Stream
    requests: list[ReceivedRequest] = attrs.field(factory=list)
    #: Set when the peer (the gateway) closed or reset the connection.
    closed_by_peer: trio.Event = attrs.field(factory=trio.Event)
    #: Set when the connection is closed for any reason.
    closed: trio.Event = attrs.field(factory=trio.Event)
    #: True while a request is being answered.
    busy: bool = False


@attrs.define(eq=False)
class Reply:
    """How a responder answers one request: whole, streamed, or not at all."""

    conn: ServedConnection
    request: ReceivedRequest
    upstream: RawUpstream
    #: Close the connection once the responder returns.
    close_after: bool = False
    _chunked: bool = False
    started: bool = False

    async def send_raw(self, data: bytes) -> None:
        """Bytes straight to the connection (for malformed or hand-made responses)."""
        self.started = True
        await self.conn.stream.send_all(data)

    async def respond(
        self, status: int = 200, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        """A complete response framed with Content-Length (the body is left out for HEAD)."""
        await self.start(status, headers, content_length=len(body))
        if body and self.request.method != "HEAD":
            await self.conn.stream.send_all(body)

    async def start(
        self,
        status: int = 200,
        headers: Headers | None = None,
        *,
        content_length: int | None = None,
        close_delimited: bool = False,
    ) -> None:
        """Send the head; then :meth:`send` the body. Without a length the body is chunked."""
        out = list(headers or [])
        if close_delimited:
            self.close_after = True
        elif content_length is not None:
            out.append((b"Content-Length", b"%d" % content_length))
        else:
            self._chunked = True
            out.append((b"Transfer-Encoding", b"chunked"))
        if self.close_after:
            out.append((b"Connection", b"close"))
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Whatever"))]
        lines += [name + b": " + value for name, value in out]
        await self.send_raw(b"\r\n".join(lines) + b"\r\n\r\n")

    async def send(self, data: bytes) -> None:
        """One piece of the body (one chunk, when chunked)."""
        if not data:
            return
        if self._chunked:
            await self.conn.stream.send_all(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            await self.conn.stream.send_all(data)

    async def end(self) -> None:
        if self._chunked:
            await self.conn.stream.send_all(b"0\r\n\r\n")
            self._chunked = False

    async def abort(self) -> None:
        """Close the connection without answering (what a stale keep-alive looks like)."""
        self.close_after = True
        await self.upstream.close_connection(self.conn)


Responder = Callable[[ReceivedRequest, Reply], Awaitable[None]]

_REASONS = {
    101: b"Switching Protocols",
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    304: b"Not Modified",
    404: b"Not Found",
    500: b"Internal Server Error",
}


async def echo_responder(request: ReceivedRequest, reply: Reply) -> None:
    """Answer 200 with a JSON description of what arrived (the default responder)."""
    document = {
        "method": request.method,
        "target": request.target.decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers],
        "body_size": request.body_size,
        "connection": request.connection.index,
    }
    await reply.respond(
        200, [(b"Content-Type", b"application/json")], json.dumps(document).encode()
    )


class _RequestParser:
    """httptools callbacks gathered into ReceivedRequest objects."""

    def __init__(self, upstream: RawUpstream, conn: ServedConnection) -> None:
        self._upstream = upstream
        self._conn = conn
        self._parser = httptools.HttpRequestParser(self)
        self._url = bytearray()
        self._headers: Headers = []
        self._current: ReceivedRequest | None = None
        self.complete: list[ReceivedRequest] = []

    def feed(self, data: bytes | bytearray) -> None:
        self._parser.feed_data(data)

    def on_message_begin(self) -> None:
        self._url = bytearray()
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((bytes(name), bytes(value)))

    def on_headers_complete(self) -> None:
        conn = self._conn
        request = ReceivedRequest(
            method=self._parser.get_method().decode("ascii"),
            target=bytes(self._url),
            http_version=self._parser.get_http_version(),
            headers=self._headers,
            body=bytearray(),
            body_size=0,
            connection=conn,
            index_on_connection=len(conn.requests),
        )
        conn.requests.append(request)
        self._upstream.requests.append(request)
        self._current = request
        self._upstream._changed()

    def on_body(self, body: bytes) -> None:
        request = self._current
        assert request is not None
        request.body_size += len(body)
        if self._upstream.keep_bodies:
            request.body += body

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        request.keep_alive = bool(self._parser.should_keep_alive())
        self.complete.append(request)
        self._current = None


@attrs.define(eq=False)
class RawUpstream:
    """A scriptable HTTP/1.1 upstream (HTTPS with ``tls``). Start it with :meth:`serve`."""

    responder: Responder = echo_responder
    tls: ssl.SSLContext | None = None
    #: Keep request bodies in memory (turn off for huge uploads; ``body_size`` still counts).
    keep_bodies: bool = True
    address: tuple[str, int] = ("", 0)
    connections: list[ServedConnection] = attrs.field(factory=list)
    requests: list[ReceivedRequest] = attrs.field(factory=list)
    #: TLS handshakes that failed (a client refusing our certificate).
    tls_failures: int = 0
    _change: trio.Event = attrs.field(factory=trio.Event)

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        return len(self.connections)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.address[0]}:{self.address[1]}"

    def _changed(self) -> None:
        self._change.set()
        self._change = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after every change we record.

        Bounded (generously, for a loaded machine): a test waiting for something that never
        happens fails with TooSlowError instead of hanging.
        """
        with trio.fail_after(WAIT_BOUND):
            while not predicate():
                await self._change.wait()

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            host, port = listener.getsockname()
            self.address = (host, port)
            async with trio.open_nursery() as nursery:
                task_status.started(self.address)
                while True:
                    sock, _ = await listener.accept()
                    stream = trio.SocketStream(sock)
                    conn = ServedConnection(index=len(self.connections), stream=stream)
                    self.connections.append(conn)
                    self._changed()
                    nursery.start_soon(self._serve_connection, conn)

    async def close_connection(self, conn: ServedConnection) -> None:
        """Close one connection from our side (with a FIN, as a server timing it out would)."""
        await trio.aclose_forcefully(conn.stream)
        if not conn.closed.is_set():
            conn.closed.set()
            self._changed()

    async def close_idle_connections(self) -> int:
        """Close every open connection that is not answering a request; returns how many."""
        idle = [c for c in self.connections if not c.busy and not c.closed.is_set()]
        for conn in idle:
            await self.close_connection(conn)
        return len(idle)

    def open_connections(self) -> list[ServedConnection]:
        return [c for c in self.connections if not c.closed.is_set()]

    async def _serve_connection(self, conn: ServedConnection) -> None:
        if self.tls is not None:
            tls = trio.SSLStream(conn.stream, self.tls, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                self.tls_failures += 1
                await self.close_connection(conn)
                return
            conn.stream = tls
        parser = _RequestParser(self, conn)
        send, receive = trio.open_memory_channel[ReceivedRequest](math.inf)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_loop, conn, parser, send, nursery.cancel_scope)
                async with receive:
                    async for request in receive:
                        if not await self._answer(conn, request):
                            break
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.close_connection(conn)

    async def _read_loop(
        self,
        conn: ServedConnection,
        parser: _RequestParser,
        send: trio.MemorySendChannel[ReceivedRequest],
        scope: trio.CancelScope,
    ) -> None:
        async with send:
            while True:
                try:
                    data = await conn.stream.receive_some(_RECEIVE_SIZE)
                except trio.ClosedResourceError:
                    return  # we closed it ourselves
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    # The gateway closed (or reset) the connection: stop answering on it.
                    conn.closed_by_peer.set()
                    self._changed()
                    scope.cancel()
                    return
                try:
                    parser.feed(data)
                except httptools.HttpParserError:
                    scope.cancel()
                    return
                for request in parser.complete:
                    self._changed()
                    send.send_nowait(request)
                parser.complete.clear()

    async def _answer(self, conn: ServedConnection, request: ReceivedRequest) -> bool:
        """Run the responder; returns whether the connection stays open."""
        reply = Reply(conn=conn, request=request, upstream=self)
        conn.busy = True
        try:
            await self.responder(request, reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        finally:
            conn.busy = False
            self._changed()
        return request.keep_alive and not reply.close_after


async def start_upstream(
    nursery: trio.Nursery,
    responder: Responder = echo_responder,
    *,
    tls: ssl.SSLContext | None = None,
    keep_bodies: bool = True,
) -> RawUpstream:
    """A :class:`RawUpstream` serving in ``nursery``, already listening."""
    upstream = RawUpstream(responder=responder, tls=tls, keep_bodies=keep_bodies)
    await nursery.start(upstream.serve)
    return upstream


# -- TLS -----------------------------------------------------------------------------------------


def tls_server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server context with a certificate from ``ca`` for ``names`` (default 127.0.0.1)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1",))).configure_cert(ctx)
    return ctx


def write_ca_file(ca: trustme.CA, folder: Path) -> Path:
    """The CA's certificate as a PEM file (for ``upstream.ca_file``)."""
    path = folder / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


# -- WebSocket -----------------------------------------------------------------------------------


@attrs.define(eq=False)
class WebSocketEchoUpstream:
    """Accepts WebSocket upgrades and echoes every text and binary message back."""

    address: tuple[str, int] = ("", 0)
    accepted: int = 0
    #: The handshake requests' targets and headers, in arrival order.
    handshakes: list[tuple[str, Headers]] = attrs.field(factory=list)
    messages: list[str | bytes] = attrs.field(factory=list)

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        sockname = listeners[0].socket.getsockname()
        self.address = (sockname[0], sockname[1])
        async with trio.open_nursery() as nursery:
            task_status.started(self.address)
            await trio.serve_listeners(self._serve_connection, listeners, handler_nursery=nursery)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                except trio.BrokenResourceError:
                    return
                conn.receive_data(data or None)
                out: list[bytes] = []
                done = False
                for event in conn.events():
                    if isinstance(event, ws.Request):
                        headers = [(bytes(k), bytes(v)) for k, v in event.extra_headers]
                        self.handshakes.append((event.target, headers))
                        out.append(conn.send(ws.AcceptConnection()))
                    elif isinstance(event, ws.TextMessage):
                        self.messages.append(event.data)
                        out.append(conn.send(ws.TextMessage(data=event.data)))
                    elif isinstance(event, ws.BytesMessage):
                        self.messages.append(bytes(event.data))
                        out.append(conn.send(ws.BytesMessage(data=event.data)))
                    elif isinstance(event, ws.Ping):
                        out.append(conn.send(event.response()))
                    elif isinstance(event, ws.CloseConnection):
                        out.append(conn.send(event.response()))
                        done = True
                try:
                    for chunk in out:
                        await stream.send_all(chunk)
                except trio.BrokenResourceError:
                    return
                if done or not data:
                    return


async def start_websocket_echo(nursery: trio.Nursery) -> WebSocketEchoUpstream:
    upstream = WebSocketEchoUpstream()
    await nursery.start(upstream.serve)
    return upstream
