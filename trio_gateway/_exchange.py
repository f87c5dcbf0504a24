"""The request and response objects one proxied exchange carries through the gateway.

The server builds a :class:`Request` from the client's bytes; the pipeline's hooks read and change
it; the proxy sends it upstream. Header names and values stay ``bytes`` as they arrived (the hot
path never decodes them); the plugin-facing views in ``trio_gateway.hooks`` decode on demand.

The request body is a stream by default. Nothing reads it whole unless a hook asks for it
(:meth:`Request.read_body`), so an upload with no body-reading hook streams through in constant
memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from ._tracecontext import TraceContext
from .errors import ClientProtocolError, UpstreamProtocolError

if TYPE_CHECKING:
    from ._apidef.model import Stage
    from ._deadlines import DeadlineGuard

Headers = list[tuple[bytes, bytes]]


class TunnelEnd(Protocol):
    """The upstream side of a protocol switch (WebSocket): raw bytes both ways."""

    prefix: bytes

    async def receive_some(self) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


class BodySource(Protocol):
    """A body that arrives in chunks. ``receive_some`` returns ``b""`` once, at the end."""

    async def receive_some(self) -> bytes: ...


@attrs.define(eq=False, slots=True)
class BytesBody:
    """A body that is already in memory (replaced by a hook, or read whole)."""

    data: bytes
    _sent: bool = False

    async def receive_some(self) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        return self.data


#: Bodies at least this large are joined in a worker thread: ``bytes.join`` releases the GIL
#: from 1 MiB on, and a join of tens of megabytes on the event loop stalls every connection.
OFF_LOOP_JOIN = 1 << 20


async def _read_whole(
    source: BodySource | None, limit: int, too_large: Callable[[], Exception]
) -> bytes:
    """Everything ``source`` yields (``b""`` for no source); beyond ``limit`` > 0, too_large().

    The chunks are kept as they arrive and joined once (one copy of the body); the sources yield
    to other tasks between chunks (the streams' checkpoints, ``_net.FAIR_STREAK``).
    """
    if source is None:
        return b""
    parts: list[bytes] = []
    total = 0
    while chunk := await source.receive_some():
        total += len(chunk)
        if limit and total > limit:
            raise too_large()
        parts.append(chunk)
    if len(parts) == 1:
        return parts[0]
    if total >= OFF_LOOP_JOIN:
        return await trio.to_thread.run_sync(b"".join, parts)
    return b"".join(parts)


@attrs.define(eq=False, slots=True)
class Request:
    """One client request as the gateway sees it (mutable by hooks).

    ``path`` is the normalised path, still percent-encoded (``%2F`` stays encoded); ``query`` is the
    raw query string without ``?``, kept byte for byte (decoded as latin-1 so it round-trips).
    """

    method: str
    path: str
    query: str
    headers: Headers
    http_version: str = "1.1"
    scheme: str = "http"
    client_addr: str = ""
    request_id: str = ""
    #: The API that served the request (for the access log), once routed.
    api_id: str = ""
    #: The body still to be read from the client, or None when the request has none.
    body_source: BodySource | None = None
    #: The whole body once read or replaced; wins over ``body_source``.
    body_bytes: bytes | None = None
    #: Length announced by the client (Content-Length), None for chunked or no body.
    content_length: int | None = None
    #: The bound on a body read whole when the reader names none (``read_body(0)``): the
    #: gateway sets it for APIs with plugin hooks (``hooks.max_body_bytes``); 0 = unbounded.
    body_limit: int = 0
    #: For analytics and metrics: the key the request was authenticated with, and the seconds
    #: the upstream took to answer (-1: not asked).
    api_key: str = ""
    key_alias: str = ""
    upstream_latency: float = -1.0
    #: Detailed analytics recording for this request: the response, kept for the record.
    record_detail: bool = False
    response: Response | None = None
    #: The W3C trace context the request carries upstream (``_tracecontext.py``), once routed.
    trace: TraceContext | None = None
    #: Where the request's deadline is kept while its walk runs, when the walk needs no scope
    #: (``_deadlines``; the server's connection sets it). None: the walk opens a scope.
    deadline_guard: DeadlineGuard | None = None
    #: Seconds spent in each hook stage's plugins (stage name -> total), for the access log;
    #: None until a hook ran.
    stage_times: dict[Stage, float] | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def has_body(self) -> bool:
        return self.body_bytes is not None or self.body_source is not None

    async def read_body(self, limit: int = 0) -> bytes:
        """Read the whole body into memory (once) and return it.

        ``limit`` > 0 bounds it (0: ``body_limit``): a longer body raises
        ``ClientProtocolError`` (413) -- before anything is read when its Content-Length says so,
        as soon as the limit is passed for a chunked one.
        """
        if self.body_bytes is None:
            source, limit = self.body_source, limit or self.body_limit
            if source is not None and self.content_length is not None and limit:
                if self.content_length > limit:
                    raise ClientProtocolError("Request body too large", 413)
            self.body_bytes = await _read_whole(
                source, limit, lambda: ClientProtocolError("Request body too large", 413)
            )
            self.body_source = None
        return self.body_bytes

    def set_body(self, data: bytes) -> None:
        """Replace the body. The stream from the client (if not read) is discarded by the server."""
        self.body_bytes = data
        self.content_length = len(data)


@attrs.define(eq=False, slots=True)
class Response:
    """A response on its way to the client: from the upstream, a hook, or the gateway itself."""

    status: int
    headers: Headers
    reason: bytes = b""
    #: The whole body when in memory; None when it streams from ``body_source``.
    body_bytes: bytes | None = b""
    body_source: BodySource | None = None
    #: Length of a streamed body when known in advance (the upstream sent Content-Length).
    content_length: int | None = None
    #: The response has no body whatever its headers say (HEAD, 204, 304).
    bodiless: bool = False
    #: Transfer codings other than chunked the upstream applied to the body (``b"gzip"``); the
    #: body is passed on coded, under ``Transfer-Encoding: <these>, chunked``.
    transfer_coding: bytes = b""
    #: For a 101 from the upstream: the upstream stream to tunnel to, and bytes it already sent.
    tunnel: TunnelEnd | None = None
    #: The absolute URL the request was sent to (set only when Response hooks will run: Tyk's
    #: plugins see it as ``request.url`` there).
    upstream_url: str = ""

    async def read_body(self, limit: int = 0) -> bytes:
        """Read a streamed body whole (once); ``limit`` > 0 bounds it (502 beyond it)."""
        if self.body_bytes is None:
            self.body_bytes = await _read_whole(
                self.body_source,
                limit,
                lambda: UpstreamProtocolError("Upstream response body too large"),
            )
            self.body_source = None
            self.content_length = None
        return self.body_bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None
