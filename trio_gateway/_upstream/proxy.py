"""Forwarding one request to its upstream and streaming the response back.

Error mapping happens once, here: connection failures become ``UpstreamConnectError`` (502),
malformed responses ``UpstreamProtocolError`` (502). The request deadline (504) is the caller's
cancel scope; a stalled body is bounded by ``body_timeout`` per read.
"""

from __future__ import annotations

import attrs
import trio

from .._exchange import Request, Response
from .._net import RawSocketStream
from .._proto.events import Data, EndOfMessage, ResponseHead, Upgraded
from .._proto.writer import LAST_CHUNK, Framing, InvalidHead, frame, request_head, request_skip
from ..errors import HookError, UpstreamConnectError, UpstreamProtocolError
from .connection import Origin, UpstreamConnection, UpstreamPool
from .headers import HOP_BY_HOP, connection_tokens, strip_hop_by_hop

Headers = list[tuple[bytes, bytes]]

#: Methods safe to send twice when a reused keep-alive connection turns out to be closed
#: (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Request bodies smaller than this are sent in the same write as the head.
_COALESCE_LIMIT = 16384


@attrs.frozen(kw_only=True)
class UpstreamRequest:
    """What the proxy sends: the request after hooks, addressed to its upstream."""

    origin: Origin
    #: Path and query as sent on the request line (already joined under the target's base path).
    target: bytes
    #: Host header to send (the target's, or the client's with preserve_host_header).
    host: bytes
    #: Extra headers to set (X-Forwarded-*, X-Request-ID), replacing any the client sent.
    forwarded: Headers


class _StaleConnection(Exception):
    """A reused connection was closed by the upstream before it answered."""


@attrs.define(eq=False, slots=True)
class UpstreamBody:
    """The upstream response body as a stream; gives the connection back to the pool at the end."""

    conn: UpstreamConnection | None
    pool: UpstreamPool
    body_timeout: float

    async def receive_some(self) -> bytes:
        conn = self.conn
        if conn is None:
            return b""
        try:
            while True:
                event = conn.parser.next_event()
                if event is None:
                    with trio.fail_after(self.body_timeout):
                        event = await conn.next_event()
                if isinstance(event, Data):
                    if event.data:
                        return event.data
                    continue
                if isinstance(event, EndOfMessage):
                    conn.reusable = event.keep_alive
                    self.conn = None
                    self.pool.release(conn)
                    return b""
                raise UpstreamProtocolError(f"unexpected {type(event).__name__} in body")
        except trio.TooSlowError:
            self.discard()
            raise UpstreamProtocolError("Upstream stalled while sending the body") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.discard()
            raise UpstreamProtocolError("Upstream connection lost mid-body") from exc
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the connection (the client went away, or the body failed)."""
        if self.conn is not None:
            self.pool.discard(self.conn)
            self.conn = None


@attrs.define(eq=False, slots=True)
class UpstreamTunnel:
    """The upstream end of a WebSocket (or other) protocol switch."""

    conn: UpstreamConnection
    prefix: bytes
    #: Bound on one write to an upstream that stopped reading (the tunnel ends).
    send_timeout: float

    async def receive_some(self) -> bytes:
        return await self.conn.stream.receive_some()

    async def send_all(self, data: bytes) -> None:
        stream = self.conn.stream
        if isinstance(stream, RawSocketStream):
            sent = stream.send_nowait(data)  # the usual case: no cancel scope per message
            if sent == len(data):
                return
            data = data[sent:]
        try:
            with trio.fail_after(self.send_timeout):
                await stream.send_all(data)
        except trio.TooSlowError:
            raise trio.BrokenResourceError("upstream stopped reading the tunnel") from None

    async def aclose(self) -> None:
        await self.conn.aclose()


#: Request fields never passed on: hop-by-hop ones, ``Expect`` (we answered 100-continue
#: ourselves; the body is already flowing) and the ones the gateway sets (``forwarded``).
_SKIP: frozenset[bytes] = request_skip(
    HOP_BY_HOP
    | {
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
    }
)


def build_request_head(request: Request, up: UpstreamRequest, *, upgrade: bool) -> bytes:
    """The request head for the upstream (the writer validates and frames it)."""
    headers = request.headers
    skip = _SKIP
    named = connection_tokens(headers)
    if named and not named <= skip:
        skip = skip | named  # rare: a client naming its own hop-by-hop fields
    extra = up.forwarded
    if upgrade:
        value = request.header(b"upgrade")
        if value is not None:
            extra = [*extra, (b"Connection", b"upgrade"), (b"Upgrade", value)]
    body_length: int | None = None
    chunked = False
    if request.body_bytes is not None:
        if request.body_bytes or request.method not in ("GET", "HEAD"):
            body_length = len(request.body_bytes)
    elif request.body_source is not None:
        body_length = request.content_length
        chunked = body_length is None
    try:
        method = request.method.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidHead(f"non-ASCII method {request.method!r}") from None
    head, _ = request_head(
        method,
        up.target,
        up.host,
        headers,
        skip=skip,
        extra=extra,
        body_length=body_length,
        chunked=chunked,
    )
    return head


async def _send_request(conn: UpstreamConnection, request: Request, head: bytes) -> None:
    stream = conn.stream
    body = request.body_bytes
    if body is not None:
        if len(body) <= _COALESCE_LIMIT:
            await stream.send_all(head + body)
        else:
            await stream.send_all(head)
            await stream.send_all(body)
        return
    await stream.send_all(head)
    source = request.body_source
    if source is None:
        return
    framing = Framing.CHUNKED if request.content_length is None else Framing.LENGTH
    while True:
        chunk = await source.receive_some()
        if not chunk:
            break
        await stream.send_all(frame(framing, chunk))
    if framing is Framing.CHUNKED:
        await stream.send_all(LAST_CHUNK)


async def _exchange_once(
    conn: UpstreamConnection, request: Request, head: bytes, *, head_request: bool
) -> ResponseHead | Upgraded:
    reused = conn.uses > 0
    try:
        await _send_request(conn, request, head)
        while True:
            event = await conn.next_event()
            if isinstance(event, ResponseHead):
                if 100 <= event.status < 200 and event.status != 101:
                    continue  # interim responses are not forwarded (we do not send Expect)
                return event
            if isinstance(event, EndOfMessage):
                continue  # the end of an interim response
            if isinstance(event, Upgraded):
                return event
            raise UpstreamProtocolError("response body before its head")
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        if reused:
            raise _StaleConnection from exc
        raise UpstreamConnectError(f"upstream connection lost: {exc}") from exc
    except UpstreamProtocolError:
        if reused and conn.parser.next_event() is None:
            raise _StaleConnection from None
        raise


async def forward(
    request: Request, up: UpstreamRequest, pool: UpstreamPool, *, body_timeout: float
) -> Response:
    """Send ``request`` upstream and return the response, its body streaming from the upstream.

    Runs under the caller's deadline. A reused connection that the upstream had closed is retried
    once on a fresh connection when the method is idempotent and the body can be sent again.
    """
    upgrade = request.header(b"upgrade") is not None
    try:
        head = build_request_head(request, up, upgrade=upgrade)
    except InvalidHead as exc:
        # Hooks' values are checked after each hook (pipeline runner); reaching this means a value
        # got past that check. It is still a plugin's doing: answered as a hook error, not sent.
        raise HookError(f"request head refused: {exc}") from None
    head_request = request.method == "HEAD"
    replayable = request.method in IDEMPOTENT and request.body_source is None
    conn = await pool.acquire(up.origin, retryable=replayable)
    try:
        try:
            event = await _exchange_once(conn, request, head, head_request=head_request)
        except _StaleConnection:
            pool.discard(conn)
            if not replayable:
                raise UpstreamConnectError("upstream closed a reused connection") from None
            conn = await pool.acquire(up.origin, fresh=True)
            try:
                event = await _exchange_once(conn, request, head, head_request=head_request)
            except _StaleConnection as exc:
                raise UpstreamConnectError("upstream closed the connection") from exc
    except BaseException:
        pool.discard(conn)
        raise
    if isinstance(event, Upgraded) or (event.transfer_coding and request.http_version != "1.1"):
        pool.discard(conn)  # never handed on: drop it here, or it leaks
        if isinstance(event, Upgraded):
            raise UpstreamProtocolError("upstream switched protocols without a response head")
        # RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client, and we do not decode.
        raise UpstreamProtocolError("transfer-coded response for an HTTP/1.0 client")
    headers = strip_hop_by_hop(event.headers)
    if event.status == 101:
        # The parser stops right after the head of a 101; what follows is the new protocol.
        tail = conn.parser.next_event()
        prefix = tail.trailing if isinstance(tail, Upgraded) else b""
        upgrade_value = _first(event.headers, b"upgrade") or b"websocket"
        headers += [(b"Connection", b"upgrade"), (b"Upgrade", upgrade_value)]
        return Response(
            status=101,
            reason=event.reason,
            headers=headers,
            body_bytes=b"",
            bodiless=True,
            tunnel=UpstreamTunnel(conn, prefix, body_timeout),
        )
    bodiless = head_request or event.status in (204, 304)
    if bodiless:
        if head_request:
            conn.reset_parser()  # llhttp would wait for the body a HEAD response never has
            conn.reusable = event.keep_alive
            pool.release(conn)
        else:
            body = UpstreamBody(conn, pool, body_timeout)
            await body.receive_some()
        return Response(
            status=event.status,
            reason=event.reason,
            headers=headers,
            body_bytes=b"",
            content_length=event.content_length,
            bodiless=True,
        )
    return Response(
        status=event.status,
        reason=event.reason,
        headers=headers,
        body_bytes=None,
        body_source=UpstreamBody(conn, pool, body_timeout),
        content_length=event.content_length,
        transfer_coding=event.transfer_coding,
    )


def _first(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def discard_body(response: Response) -> None:
    """Drop the upstream connection behind a streamed body that will not be read."""
    source = response.body_source
    if isinstance(source, UpstreamBody):
        source.discard()
