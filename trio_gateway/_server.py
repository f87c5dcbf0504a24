"""The Trio shell around the HTTP/1.1 core: listeners, one task per connection, timeouts.

This module owns the listeners and the connections' lifetimes (accept, hang-up watcher, timeout
sweeper, graceful drain); each connection's task, which reads and writes the client's socket,
is :class:`~trio_gateway._connection.ClientConnection`.

Per request, the cost we pay on top of parsing is kept small on purpose (docs/decisions.md): no
cancel scope and no task of the server's own. Each connection runs in a cancel scope, the only
thing the server cancels: the listener's hang-up watcher (one task and one epoll set for all its
connections) cancels it when the client goes away, taking the handler and everything it started
with it; the listener's timeout sweeper cancels it when the connection's current deadline
(keep-alive idle, header read, a stalled write) has passed, so a request pays for its deadlines
with one float assignment instead of a cancel scope of its own.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import attrs
import trio

from ._accesslog import AccessLog, LoggingAccessLog
from ._connection import ClientConnection
from ._deadlines import RequestDeadlines
from ._exchange import Request, Response
from ._net import HangupWatcher, RawSocketStream

log = logging.getLogger("trio_gateway.server")

Handler = Callable[[Request], Awaitable[Response]]

#: Connections the sweeper cuts off (or the listener accepts) per scheduler batch. Each one wakes
#: or starts a task (a 408 and a close, or a first read); hundreds in one batch stalled every other
#: connection for tens of ms.
SWEEP_BATCH = 8
#: Out of file descriptors (or kernel memory) at accept: how long to stop accepting, and how
#: often to say so. The connections already open keep being served meanwhile.
ACCEPT_PAUSE = 0.1
ACCEPT_WARN_INTERVAL = 10.0
_ACCEPT_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: After ``shutdown_timeout``: how long the connections still busy get to send their 503.
CUT_GRACE = 1.0


@attrs.frozen(kw_only=True)
class ServerLimits:
    max_header_bytes: int = 65536
    max_request_body_bytes: int = 0  # 0 = unlimited
    header_read_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    body_read_timeout: float = 30.0
    #: A client must accept each piece of a response (up to one upstream read, 64 KiB) within
    #: this; one that stops reading is cut off instead of holding its connection forever.
    send_timeout: float = 30.0
    shutdown_timeout: float = 10.0


@attrs.define(eq=False)
class HttpServer:
    """Serves HTTP/1.1 on one or more listening sockets, answering each request with ``handler``."""

    handler: Handler
    limits: ServerLimits = attrs.field(factory=ServerLimits)
    #: Write one access-log line per request (the demo upstream turns it off).
    log_requests: bool = True
    #: Where access-log lines go (None: nowhere).
    access_log: AccessLog | None = attrs.field(factory=LoggingAccessLog)
    #: Connections currently open (for statistics and graceful shutdown).
    connections: set[ClientConnection] = attrs.field(factory=set)
    _draining: bool = False
    _listeners: list[socket.socket] = attrs.field(factory=list)
    _drained: trio.Event = attrs.field(factory=trio.Event)
    #: Set when :meth:`serve` has returned (after a drain, or when cancelled).
    stopped: trio.Event = attrs.field(factory=trio.Event)

    def _sweep_interval(self) -> float:
        """How often the sweeper checks deadlines: a timeout fires at most this much late."""
        limits = self.limits
        return min(
            1.0,
            limits.header_read_timeout / 8,
            limits.keepalive_timeout / 8,
            limits.send_timeout / 8,
        )

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and serve until cancelled or :meth:`shutdown`.

        Reports the bound ``(host, port)`` through ``task_status`` (port 0 picks a free one).
        """
        listener = _open_listener(host, port)
        self._listeners.append(listener)
        bound = listener.getsockname()
        hangups = HangupWatcher()
        deadlines = RequestDeadlines()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sweep_timeouts)
                nursery.start_soon(hangups.run)
                nursery.start_soon(deadlines.run)
                task_status.started((bound[0], bound[1]))
                await self._accept_loop(listener, nursery, hangups, deadlines)
                await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            listener.close()
            self.stopped.set()

    def shutdown(self) -> None:
        """Stop accepting; let in-flight requests finish (bounded by ``shutdown_timeout``)."""
        if self._draining:
            return
        self._draining = True
        for listener in self._listeners:
            trio.lowlevel.notify_closing(listener)
            listener.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        self._drained.set()

    @property
    def draining(self) -> bool:
        return self._draining

    async def _drain(self) -> None:
        """After the listener closed: let the connections finish within ``shutdown_timeout``,
        then cut off the ones still busy (each request cut gets a 503, and is logged)."""
        with trio.move_on_after(self.limits.shutdown_timeout):
            await self._wait_connections_closed(close_idle=True)
        if not self.connections:
            return
        log.warning(
            "shutdown_timeout (%g s) passed: cutting off %d connection(s) still busy (503)",
            self.limits.shutdown_timeout,
            len(self.connections),
        )
        for conn in list(self.connections):
            conn.cut_off()
        with trio.move_on_after(CUT_GRACE):
            await self._wait_connections_closed(close_idle=False)

    async def _wait_connections_closed(self, *, close_idle: bool) -> None:
        while self.connections:
            if close_idle:
                for conn in list(self.connections):
                    conn.close_if_idle()
            await self._drained.wait()
            self._drained = trio.Event()

    async def _accept_loop(
        self,
        listener: socket.socket,
        nursery: trio.Nursery,
        hangups: HangupWatcher,
        deadlines: RequestDeadlines,
    ) -> None:
        exhausted = 0  # accepts refused for lack of resources since the last warning
        warned_at = -math.inf
        in_a_row = 0
        while not self._draining:
            if in_a_row == SWEEP_BATCH:
                # A burst of hundreds of connections (a reconnect storm) must not hold the loop:
                # let the ones accepted so far, and everyone else, run first.
                in_a_row = 0
                await trio.lowlevel.checkpoint()
            try:
                sock, addr = listener.accept()
                in_a_row += 1
            except BlockingIOError:
                in_a_row = 0
                try:
                    await trio.lowlevel.wait_readable(listener)
                except trio.ClosedResourceError:
                    return
                continue
            except OSError as exc:
                if self._draining or exc.errno == errno.EBADF:
                    return
                if exc.errno in _ACCEPT_EXHAUSTED:
                    # Out of descriptors: an operating condition, not a bug. Say so once per
                    # interval (with a count), leave new clients waiting in the backlog for a
                    # moment, and keep serving the connections already open.
                    exhausted += 1
                    now = trio.current_time()
                    if now - warned_at >= ACCEPT_WARN_INTERVAL:
                        log.warning(
                            "cannot accept connections: %s (%d time(s) since the last warning);"
                            " pausing accepts %.1f s at a time",
                            exc.strerror or exc,
                            exhausted,
                            ACCEPT_PAUSE,
                        )
                        warned_at, exhausted = now, 0
                    await trio.sleep(ACCEPT_PAUSE)
                    continue
                continue  # e.g. ECONNABORTED: the peer gave up before we accepted
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = f"{addr[0]}" if isinstance(addr, tuple) else ""
            conn = ClientConnection(self, RawSocketStream(sock), client, hangups, deadlines)
            nursery.start_soon(conn.run)

    async def _sweep_timeouts(self) -> None:
        """Cancel each connection whose deadline has passed (runs until the listener stops).

        Cheaper than a cancel scope with a deadline per request: the scan is a few attribute reads
        per connection per interval, whatever the request rate. Connections accepted by another
        listener of this server are swept too; cancelling one twice is harmless.
        """
        interval = self._sweep_interval()
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            expired = [conn for conn in self.connections if conn.deadline <= now]
            for done, conn in enumerate(expired):
                if done and done % SWEEP_BATCH == 0:
                    # Let the connections cut so far (and everyone else) run before the next.
                    await trio.lowlevel.checkpoint()
                if conn.deadline <= now:  # it may have moved on meanwhile
                    conn.time_out()

    def _connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self._draining:
            self._drained.set()


#: True in a ``run --workers N`` worker process (set before ``trio.run``): its listeners share the
#: port with the sibling workers' (SO_REUSEPORT; the kernel spreads connections among them). A
#: context variable because ``serve_gateway`` builds the server. Off by default, so that a second
#: gateway started on a busy port fails loudly instead of quietly taking half the traffic.
SHARE_LISTENING_PORT: ContextVar[bool] = ContextVar("SHARE_LISTENING_PORT", default=False)


def _open_listener(host: str, port: int, *, reuse_port: bool | None = None) -> socket.socket:
    if reuse_port is None:
        reuse_port = SHARE_LISTENING_PORT.get()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
