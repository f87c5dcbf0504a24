"""One keep-alive HTTP/1.1 connection to an upstream, and the pool that keeps them."""

from __future__ import annotations

import ssl
from collections import deque

import attrs
import trio

from .._net import ByteStream, RawSocketStream, TlsByteStream, open_raw_tcp_stream
from .._proto.events import Event
from .._proto.http1 import H1ClientParser
from ..errors import UpstreamConnectError, UpstreamProtocolError

#: Idle time after which a pooled connection is checked for a close by the upstream before reuse.
_PEEK_AFTER = 0.25


@attrs.frozen(slots=True)
class Origin:
    """Where an upstream connection goes: scheme, host and port (the pool's key)."""

    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> bytes:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode("ascii")


@attrs.define(eq=False, slots=True)
class OpenCount:
    """Upstream connections open now, in use or idle (read by /metrics at scrape time).

    Kept by the connections themselves, once when opened and once when closed, because a
    connection in use (a streaming body, a WebSocket tunnel) is closed away from the pool.
    """

    value: int = 0


@attrs.define(eq=False, slots=True)
class UpstreamConnection:
    origin: Origin
    stream: ByteStream
    #: The pool's count of open connections (None for a connection made outside a pool).
    open_count: OpenCount | None = None
    parser: H1ClientParser = attrs.field(factory=H1ClientParser)
    #: True once a response has been received in full and the upstream allows another request.
    reusable: bool = False
    #: How many requests this connection has carried (0 = fresh).
    uses: int = 0
    idle_since: float = 0.0

    async def next_event(self) -> Event:
        """The next response event, reading from the upstream as needed."""
        parser = self.parser
        while True:
            event = parser.next_event()
            if event is not None:
                return event
            data = await self.stream.receive_some()
            if data:
                parser.feed(data)
            else:
                parser.feed_eof()
                event = parser.next_event()
                if event is None:
                    raise UpstreamProtocolError("Upstream closed the connection")
                return event

    def reset_parser(self) -> None:
        """A fresh parser: after a HEAD response, whose body llhttp would otherwise wait for."""
        self.parser = H1ClientParser()

    def mark_closed(self) -> None:
        """Leave the open count (once, however many times the connection is closed)."""
        count = self.open_count
        if count is not None:
            self.open_count = None
            count.value -= 1

    async def aclose(self) -> None:
        self.reusable = False
        self.mark_closed()
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


@attrs.define(eq=False)
class UpstreamPool:
    """Keep-alive connections per origin.

    No background task: idle connections older than ``idle_timeout`` are dropped when next looked
    at, and a connection the upstream closed while idle is noticed by a non-blocking peek before
    reuse (the proxy still retries once, for idempotent requests, if the upstream closes it at the
    same moment we reuse it).
    """

    ssl_context: ssl.SSLContext
    connect_timeout: float = 5.0
    max_idle_per_host: int = 100
    idle_timeout: float = 60.0
    _idle: dict[Origin, deque[UpstreamConnection]] = attrs.field(factory=dict)
    #: New connections opened, per origin (tests and statistics read it).
    opened: dict[Origin, int] = attrs.field(factory=dict)
    #: Connection attempts that failed or timed out (for /metrics).
    connect_errors: int = 0
    #: Connections open now, in use or idle (for /metrics).
    open_count: OpenCount = attrs.field(factory=OpenCount)

    async def acquire(
        self, origin: Origin, *, fresh: bool = False, retryable: bool = False
    ) -> UpstreamConnection:
        """A connection to ``origin``: an idle one when possible, else a new one.

        ``retryable`` says the caller can resend the request on a fresh connection if this one
        turns out closed; then a connection used a moment ago is taken without the peek.
        """
        if not fresh:
            idle = self._idle.get(origin)
            if idle:
                now = trio.current_time()
                while idle:
                    conn = idle.pop()
                    stream = conn.stream
                    idle_for = now - conn.idle_since
                    # The peek costs a system call: skip it when the connection was released
                    # a moment ago and the request can be retried if it was closed after all.
                    if idle_for > self.idle_timeout or (
                        (idle_for > _PEEK_AFTER or not retryable)
                        and isinstance(stream, RawSocketStream)
                        and stream.peer_closed()
                    ):
                        await conn.aclose()
                        continue
                    conn.reusable = False
                    return conn
        return await self._connect(origin)

    def release(self, conn: UpstreamConnection) -> None:
        """Give a connection back after a complete exchange; it is closed if not reusable."""
        if conn.reusable:
            idle = self._idle.setdefault(conn.origin, deque())
            if len(idle) < self.max_idle_per_host:
                conn.uses += 1
                conn.idle_since = trio.current_time()
                idle.append(conn)
                return
        _close_now(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        conn.reusable = False
        _close_now(conn)

    async def _connect(self, origin: Origin) -> UpstreamConnection:
        stream: ByteStream
        try:
            with trio.fail_after(self.connect_timeout):
                if origin.scheme == "https":
                    tcp = await trio.open_tcp_stream(origin.host, origin.port)
                    tls = trio.SSLStream(
                        tcp, self.ssl_context, server_hostname=origin.host, https_compatible=True
                    )
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(tcp)
                        raise
                    stream = TlsByteStream(tls)
                else:
                    stream = await open_raw_tcp_stream(origin.host, origin.port)
        except trio.TooSlowError as exc:
            self.connect_errors += 1
            raise UpstreamConnectError(f"connect to {origin.host}:{origin.port} timed out") from exc
        except (OSError, trio.BrokenResourceError) as exc:
            self.connect_errors += 1
            raise UpstreamConnectError(f"connect to {origin.host}:{origin.port}: {exc}") from exc
        self.opened[origin] = self.opened.get(origin, 0) + 1
        self.open_count.value += 1
        return UpstreamConnection(origin=origin, stream=stream, open_count=self.open_count)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                await idle.pop().aclose()
        self._idle.clear()


def _close_now(conn: UpstreamConnection) -> None:
    conn.reusable = False
    conn.mark_closed()
    stream = conn.stream
    if isinstance(stream, RawSocketStream | TlsByteStream):
        stream.close()
