"""One client connection: read requests, hand them to the handler, write the answers.

The connection task (:meth:`ClientConnection.run`) is started by the listener
(:class:`~trio_gateway._server.HttpServer`), which owns its cancel scope: the listener's hang-up
watcher and timeout sweeper cancel it. This module is the only code that reads from or writes
to a client socket; what the server answers by itself (malformed requests, limits, timeouts) is
decided here, everything else by the handler (``_gateway.py``).
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from ._deadlines import DeadlineGuard, RequestDeadlines
from ._error_body import error_response, gateway_error_response
from ._exchange import Request, Response
from ._net import HangupWatcher, RawSocketStream
from ._proto.events import Data, EndOfMessage, RequestHead, Upgraded
from ._proto.http1 import H1ServerParser
from ._proto.writer import (
    CONTINUE_HEAD,
    LAST_CHUNK,
    Framing,
    InvalidHead,
    frame,
    response_head,
)
from ._upstream.proxy import discard_body
from .errors import ClientProtocolError, GatewayError

if TYPE_CHECKING:
    from ._server import HttpServer

log = logging.getLogger("trio_gateway.server")

#: A connection we close while the client may still be sending (a drain, or an answer that left
#: the request body unread, e.g. an early 413) sends its FIN, then reads (and drops) what the
#: client still sends for up to this long before closing: closing with unread bytes makes the
#: kernel answer with a reset, which can destroy a response the client has not read yet
#: (RFC 9112 §9.6).
LINGER_TIMEOUT = 2.0


class ClientGone(Exception):
    """The client closed or reset the connection."""


class BodyTimeout(Exception):
    """The client stalled while sending a request body."""


@attrs.define(eq=False)
class ClientConnection:
    server: HttpServer
    stream: RawSocketStream
    client_addr: str
    hangups: HangupWatcher
    #: The listener's request deadlines (walks without a scope keep theirs there).
    deadlines: RequestDeadlines
    parser: H1ServerParser = attrs.field(init=False)
    #: This connection's place in ``deadlines``; cancels the scope when a deadline passes.
    guard: DeadlineGuard = attrs.field(init=False)
    #: The run's clock, read directly (``trio.current_time()`` is two more calls, three times
    #: per request); set when the connection starts serving.
    _now: Callable[[], float] = attrs.field(init=False, default=trio.current_time)
    #: True between requests (waiting for the next head), when a drain may close us at once.
    idle: bool = True
    #: When the sweeper cuts this connection off (``math.inf``: no bound right now). Set to the
    #: keep-alive bound while idle, the header-read bound once bytes arrive, and the send bound
    #: while a write to the client waits.
    deadline: float = math.inf
    #: Why the connection's scope was cancelled, if it was: the client left, a deadline passed,
    #: or the drain's ``shutdown_timeout`` did.
    gone: bool = False
    timed_out: bool = False
    cut: bool = False
    #: Some of the current response has gone out (a cut request can no longer get its 503).
    response_started: bool = False
    #: The request a drain cut off before any of its response was sent, and when it started.
    _cut_request: tuple[Request, float] | None = None
    #: The request whose deadline passed (``guard``), and when it started: answered by run().
    _expired_request: tuple[Request, float] | None = None
    #: Closed by a drain, or after an answer that left the request body unread: send a FIN and
    #: read what the client still sends before closing (LINGER_TIMEOUT).
    _lingering: bool = False
    #: Registered with ``hangups`` (from the first request on).
    watched: bool = False
    _scope: trio.CancelScope | None = None
    _upgraded_tail: bytes | None = None

    def __attrs_post_init__(self) -> None:
        limits = self.server.limits
        self.parser = H1ServerParser(
            max_header_bytes=limits.max_header_bytes,
            max_body_bytes=limits.max_request_body_bytes,
        )
        self.guard = self.deadlines.guard(self._request_expired)

    def _request_expired(self) -> None:
        """The request's deadline passed (``guard``): stop it; run() answers its 504."""
        if self._scope is not None:
            self._scope.cancel()

    def close_if_idle(self) -> None:
        """The drain's verdict on a connection between requests: close it unless a request has
        begun to arrive (that one is served, with ``Connection: close``)."""
        if self.idle and self._scope is not None and not self._lingering:
            if self._request_pending():
                return
            self._lingering = True
            self._scope.cancel()

    def cut_off(self) -> None:
        """The drain's ``shutdown_timeout`` passed: stop now (503 if no answer went out yet)."""
        if self._scope is not None and not self.cut:
            self.cut = True
            self._scope.cancel()

    def _request_pending(self) -> bool:
        """Has a byte of another request arrived (in the parser, or unread in the kernel)?"""
        if self.parser.in_head:
            return True
        try:
            return bool(self.stream.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        except OSError:
            return False  # reset: nobody to answer

    def time_out(self) -> None:
        """The sweeper's verdict: the current deadline passed (408 if a head was under way)."""
        if self._scope is not None and not self.timed_out:
            self.timed_out = True
            self._scope.cancel()

    async def run(self) -> None:
        self._now = trio.lowlevel.current_clock().current_time
        self.server.connections.add(self)
        try:
            # The connection's scope is what a hang-up, a timeout or a drain cancels.
            with trio.CancelScope() as scope:
                self._scope = scope
                try:
                    await self._serve_requests()
                except (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the client went away; nothing to answer
                except Exception:
                    # A bug must cost one connection, never the server.
                    log.exception("connection from %s failed", self.client_addr)
            if self.gone:
                pass
            elif self.timed_out and self.parser.in_head:
                await self._send_error(408, "Request Timeout")  # a head that came too slowly
            elif self._expired_request is not None:
                await self._answer_expired_request()
            elif self.cut and (self._cut_request is not None or self.parser.in_head):
                await self._answer_cut_request()
            elif self._lingering:
                await self._linger()
        finally:
            if self.watched:
                self.hangups.unwatch(self.stream.sock)
            self.stream.close()
            self.server._connection_closed(self)

    async def _answer_expired_request(self) -> None:
        """A request whose deadline passed in its upstream call gets its API's 504 (as the walk
        answers it when it keeps the deadline itself), then the connection closes."""
        request, started = self._expired_request  # type: ignore[misc]
        answer = self.guard.expired
        self.guard.expired = None
        assert answer is not None
        response = answer()
        rid = request.request_id
        sent = await self._send_last(
            response, [(b"X-Request-ID", rid.encode("latin-1"))] if rid else None
        )
        self._log_access(request, response.status, sent, started)

    async def _answer_cut_request(self) -> None:
        """A request cut off by the drain, before any of its response went out, gets a 503."""
        sent = await self._send_error(503, "Service Unavailable")
        if self._cut_request is not None:
            request, started = self._cut_request
            self._log_access(request, 503, sent, started)

    async def _linger(self) -> None:
        """Close gracefully: FIN first, then drop what the client still sends until it closes."""
        try:
            self.stream.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        with trio.move_on_after(LINGER_TIMEOUT):
            try:
                while await self.stream.receive_some():
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _hung_up(self) -> None:
        """The client hung up (called by the server's hang-up watcher): end the connection,
        cancelling whatever request is in progress."""
        self.gone = True
        if self._scope is not None:
            self._scope.cancel()

    # -- reading -------------------------------------------------------------------------------

    async def _fill(self) -> None:
        """Read once from the client and feed the parser."""
        data = await self.stream.receive_some()
        if not data:
            raise ClientGone
        self.parser.feed(data)

    async def _next_head(self) -> RequestHead | None:
        """Wait for the next request head (keep-alive idle bound, then the header-read bound).

        None: the connection should close quietly (drain, or the client left). The idle and
        header bounds are deadlines the sweeper enforces by cancelling the connection.
        """
        parser = self.parser
        event = parser.next_event()
        if event is not None:
            # A pipelined request, already read: no system call, so count it as one, or a
            # client pipelining thousands would hold the event loop (_net.FAIR_STREAK).
            await self.stream.count_step()
        else:
            if self.server.draining and not self._request_pending():
                self._lingering = True
                return None
            limits = self.server.limits
            self.idle = True
            self.deadline = self._now() + limits.keepalive_timeout
            try:
                data = await self.stream.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            # First bytes of a request: a drain no longer closes the connection under it.
            self.idle = False
            parser.feed(data)
            event = parser.next_event()
            if event is None:
                # The head came in pieces: from now on all of it has to arrive in time
                # (slowloris bound).
                self.deadline = trio.current_time() + limits.header_read_timeout
                while event is None:
                    await self._fill()
                    event = parser.next_event()
            self.deadline = math.inf
        if isinstance(event, RequestHead):
            return event
        raise ClientProtocolError("Bad Request")

    async def _next_body_event(self) -> Data | EndOfMessage | Upgraded:
        parser = self.parser
        event = parser.next_event()
        if event is None:
            with trio.move_on_after(self.server.limits.body_read_timeout) as sc:
                try:
                    while event is None:
                        await self._fill()
                        event = parser.next_event()
                except ClientGone:
                    await self._client_left_mid_body()
            if sc.cancelled_caught:
                raise BodyTimeout
        if isinstance(event, Data | EndOfMessage | Upgraded):
            return event
        raise ClientProtocolError("Bad Request")

    async def _client_left_mid_body(self) -> None:
        """The client closed its side before the body ended: the request cannot complete.

        Client misbehaviour, not a server error: the connection is closed quietly, as for a
        hang-up (the hang-up watcher sees the same thing unless this read gets there first).
        Raising ``Cancelled`` from here takes everything the request started down with it,
        hooks and the upstream call included, without any of them taking it for a failure.
        """
        log.debug("client %s closed its side mid-body; closing", self.client_addr)
        self.gone = True
        if self._scope is not None:
            self._scope.cancel()
        await trio.lowlevel.checkpoint()  # raises Cancelled: our scope is cancelled
        raise ClientGone  # not reached while serving (a connection always has its scope)

    # -- the request loop ----------------------------------------------------------------------

    async def _serve_requests(self) -> None:
        while True:
            try:
                head = await self._next_head()
            except ClientProtocolError as exc:
                log.info("bad request from %s: %s", self.client_addr, exc.message)
                await self._send_error(exc.status, None)
                return
            if head is None:
                return
            try:
                keep_alive = await self._handle(head)
            except ClientProtocolError as exc:
                # A protocol error while reading the body: the response may already be on its
                # way; all we can do safely is stop.
                log.info("bad request body from %s: %s", self.client_addr, exc.message)
                return
            if not keep_alive:
                return
            if self.server.draining:
                self._lingering = True  # the response said Connection: close
                return

    async def _handle(self, head: RequestHead) -> bool:
        """Serve one request; returns whether the connection may carry another."""
        started = self._now()
        body = ClientBody(self, head) if head.content_length or head.chunked else None
        if body is None:
            # The EndOfMessage of a bodiless request is already queued: take it now.
            event = self.parser.next_event()
            end_keep_alive = isinstance(event, EndOfMessage) and event.keep_alive
            tail = self.parser.next_event() if head.upgrade else None
            if isinstance(tail, Upgraded):
                self._upgraded_tail = tail.trailing
        else:
            end_keep_alive = True
        target = head.target
        path, sep, query = target.partition(b"?")
        request = Request(
            method=head.method.decode("ascii"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1") if sep else "",
            headers=head.headers,
            http_version=head.http_version,
            client_addr=self.client_addr,
            body_source=body,
            content_length=head.content_length,
            deadline_guard=self.guard,
        )
        if not self.watched:
            self.hangups.watch(self.stream.sock, self._hung_up)
            self.watched = True
        response: Response | None = None
        self.response_started = False
        try:
            response = await self._run_handler(request)
            return await self._respond(head, request, body, response, end_keep_alive, started)
        except ClientGone:
            self._log_access(request, 499, -1, started)  # 499: client closed the request
            raise
        except trio.Cancelled:
            # The connection's scope was cancelled: the client hung up (or the server is shutting
            # down). The handler, the hooks, the upstream request and anything they started are
            # being cancelled with it; drop the upstream connection behind an unsent body.
            if response is not None:
                discard_body(response)
            if self.gone:
                self._log_access(request, 499, -1, started)  # 499: client closed the request
            elif self.timed_out:
                log.info("client %s stopped reading the response; closed", self.client_addr)
            elif self.guard.expired is not None:
                self._expired_request = (request, started)  # answered with its 504 by run()
            elif self.cut:
                if self.response_started:
                    status = response.status if response is not None else 503
                    self._log_access(request, status, -1, started)
                else:
                    self._cut_request = (request, started)  # answered with a 503 by run()
            raise

    async def _respond(
        self,
        head: RequestHead,
        request: Request,
        body: ClientBody | None,
        response: Response,
        end_keep_alive: bool,
        started: float,
    ) -> bool:
        """Write ``response``; returns whether the connection may carry another request."""
        keep_alive = head.keep_alive and end_keep_alive and not self.server.draining
        if response.tunnel is not None and response.status == 101:
            await self._tunnel(response)
            return False
        if head.upgrade:
            keep_alive = False  # the parser has switched protocols; it cannot read HTTP again
        if body is not None and not body.done:
            keep_alive = False  # unread request body: closing is cheaper and safer than draining
        if self._upgraded_tail is not None:
            keep_alive = False
        try:
            sent, keep_alive = await self._write_response(
                request, response, keep_alive, head.method == b"HEAD"
            )
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ClientGone,
            # A streamed body ends early: the upstream failed mid-body. The head is already
            # sent, so all we can do is close this connection; the server keeps running.
            GatewayError,
        ):
            discard_body(response)
            self._log_access(request, response.status, -1, started)
            return False
        self._log_access(request, response.status, sent, started)
        if body is not None and not body.done:
            self._lingering = True  # close in stages: see LINGER_TIMEOUT
            return False
        return keep_alive

    async def _run_handler(self, request: Request) -> Response:
        """The handler's response, or the error response for what it raised."""
        try:
            return await self.server.handler(request)
        except ClientProtocolError as exc:
            return gateway_error_response(exc)
        except BodyTimeout:
            return error_response(408, "Request Timeout")
        except ClientGone:
            # The client ended its side while its body was being read: a hang-up (the hang-up
            # watcher may not have run yet), never a handler failure.
            raise
        except GatewayError as exc:
            log.warning("request failed: %s", exc)
            return gateway_error_response(exc)
        except Exception:
            # A bug: the client gets a plain 500 (never the exception text), the log the trace.
            log.exception("unhandled error serving %s %s", request.method, request.path)
            return error_response(500, "Internal Server Error")

    # -- writing -------------------------------------------------------------------------------

    def _log_access(self, request: Request, status: int, sent: int, started: float) -> None:
        sink = self.server.access_log
        if sink is not None and self.server.log_requests:
            sink.record(request, status, sent, self._now() - started)

    async def _write_response(
        self, request: Request, response: Response, keep_alive: bool, head_request: bool
    ) -> tuple[int, bool]:
        """Write the response; returns the body bytes sent and whether the connection may carry
        another request. The writer decides the head and the framing; this only moves bytes."""
        body_bytes = response.body_bytes
        streamed = body_bytes is None
        rid = request.request_id
        extra = [(b"X-Request-ID", rid.encode("latin-1"))] if rid else None
        try:
            head, framing, keep_alive = response_head(
                response.status,
                response.reason,
                response.headers,
                body_length=(
                    response.content_length
                    if body_bytes is None or response.bodiless
                    else len(body_bytes)
                ),
                bodiless=response.bodiless,
                head_request=head_request,
                keep_alive=keep_alive,
                http10=request.http_version == "1.0",
                transfer_coding=response.transfer_coding,
                extra=extra,
            )
        except InvalidHead as exc:
            # Hooks' values were checked after each hook; whatever got past that is not sent.
            # The response becomes Tyk's hook error in place (the access log reads it after us).
            log.error("response head refused (%s %s): %s", request.method, request.path, exc)
            discard_body(response)
            refused = error_response(500, "Middleware error")
            response.status, response.reason, response.headers = 500, b"", refused.headers
            response.body_bytes, response.body_source = refused.body_bytes, None
            response.content_length, response.bodiless, response.transfer_coding = None, False, b""
            return await self._write_response(request, response, False, head_request)
        send = self._send
        if framing is Framing.NONE:
            await send(head)
            discard_body(response)
            return 0, keep_alive
        if not streamed:
            assert body_bytes is not None
            if framing is Framing.CHUNKED:
                await send(head + frame(framing, body_bytes) + LAST_CHUNK)
            else:
                await send(head + body_bytes)
            return len(body_bytes), keep_alive
        source = response.body_source
        assert source is not None
        # Stream as it arrives: each chunk is written as soon as the upstream hands it over, so
        # server-sent events are not held back. The first chunk rides with the head.
        first = await source.receive_some()
        if not first:
            await send(head + LAST_CHUNK if framing is Framing.CHUNKED else head)
            return 0, keep_alive
        sent = len(first)
        await send(head + frame(framing, first))
        while chunk := await source.receive_some():
            sent += len(chunk)
            await send(frame(framing, chunk))
        if framing is Framing.CHUNKED:
            await send(LAST_CHUNK)
        return sent, keep_alive

    async def _send_error(self, status: int, message: str | None) -> int:
        """Send a gateway-made error and close; returns its body's size (-1: not sent)."""
        return await self._send_last(error_response(status, message))

    async def _send_last(
        self, response: Response, extra: list[tuple[bytes, bytes]] | None = None
    ) -> int:
        """Send a whole gateway-made ``response`` with ``Connection: close``, outside the
        connection's scope (bounded by a second); returns its body's size (-1: not sent)."""
        body = response.body_bytes or b""
        head, _, _ = response_head(
            response.status,
            b"",
            response.headers,
            body_length=len(body),
            keep_alive=False,
            extra=extra,
        )
        try:
            with trio.move_on_after(1.0):
                await self.stream.send_all(head + body)
                return len(body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return -1

    async def send_continue(self) -> None:
        await self._send(CONTINUE_HEAD)
        self.response_started = False  # an interim response: the final one can still be a 503

    async def _send(self, data: bytes) -> None:
        """Write to the client, bounded by ``send_timeout`` when the client is not reading.

        The usual write goes out at once and costs nothing more. One that has to wait sets the
        connection's deadline, which the sweeper enforces (cancelling the connection)."""
        stream = self.stream
        self.response_started = True
        sent = stream.send_nowait(data)
        if sent == len(data):
            return
        self.deadline = trio.current_time() + self.server.limits.send_timeout
        try:
            await stream.send_all(memoryview(data)[sent:])
        finally:
            self.deadline = math.inf

    async def _tunnel(self, response: Response) -> None:
        """Relay raw bytes both ways after a 101, until either side closes."""
        tunnel = response.tunnel
        assert tunnel is not None
        head, _, _ = response_head(101, response.reason, response.headers, body_length=None)
        await self._send(head + tunnel.prefix)
        tail = self._upgraded_tail or b""
        client = self.stream

        async def client_to_upstream() -> None:
            if tail:
                await tunnel.send_all(tail)
            while data := await client.receive_some():
                await tunnel.send_all(data)

        async def upstream_to_client() -> None:
            while data := await tunnel.receive_some():
                await self._send(data)

        try:
            async with trio.open_nursery() as nursery:

                async def run(direction: Callable[[], Awaitable[None]]) -> None:
                    try:
                        await direction()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                    nursery.cancel_scope.cancel()  # one side ended: end the tunnel

                nursery.start_soon(run, client_to_upstream)
                nursery.start_soon(run, upstream_to_client)
        finally:
            await tunnel.aclose()


@attrs.define(eq=False)
class ClientBody:
    """The request body as it arrives from the client (a ``BodySource``)."""

    conn: ClientConnection
    head: RequestHead
    done: bool = False
    _continue_sent: bool = False

    async def receive_some(self) -> bytes:
        if self.done:
            return b""
        conn = self.conn
        if self.head.expect_continue and not self._continue_sent:
            # RFC 9110 §10.1.1: the client waits for this before sending the body; we send it
            # only when someone actually wants the body (a hook or the upstream).
            self._continue_sent = True
            await conn.send_continue()
        while True:
            event = await conn._next_body_event()
            if isinstance(event, Data):
                if event.data:
                    return event.data
                continue
            if isinstance(event, Upgraded):
                conn._upgraded_tail = event.trailing
                continue
            self.done = True
            return b""
