"""The conformance runner's two ends on loopback sockets: a recording upstream that answers as a
vector scripts, and a one-request HTTP/1.1 client (its own parser, httptools, so a gateway
framing bug cannot hide behind the parser that made it)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import httptools  # type: ignore[import-untyped,unused-ignore]
import trio

from .._exchange import Request, Response
from ._model import SeenRequest, UpstreamReply, echo_upstream
from ._vectors import ScriptedReply, VectorRequest

#: Bounds on what the runner reads: one response, one upstream request body.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_UPSTREAM_BODY = 4 * 1024 * 1024


def _headers_text(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((key.decode("latin-1"), value.decode("latin-1")) for key, value in headers)


@attrs.define(eq=False)
class RecordingUpstream:
    """Records each request; answers with ``reply`` (the kit's JSON echo when None)."""

    reply: ScriptedReply | None = None
    received: list[SeenRequest] = attrs.field(factory=list)

    async def handle(self, request: Request) -> Response:
        seen = SeenRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=_headers_text(request.headers),
            body=await request.read_body(limit=MAX_UPSTREAM_BODY),
        )
        self.received.append(seen)
        if self.reply is None:
            reply = echo_upstream(seen)
        else:
            reply = UpstreamReply(
                status=self.reply.status,
                headers=self.reply.headers,
                body=self.reply.body.encode(),
            )
        return Response(
            status=reply.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers],
            body_bytes=reply.body,
        )


@attrs.frozen(kw_only=True)
class ClientResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@attrs.define(eq=False)
class _ResponseCollector:
    """httptools callbacks: a response head and body, complete at ``on_message_complete``."""

    headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)
    body: bytearray = attrs.field(factory=bytearray)
    complete: bool = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def _request_bytes(request: VectorRequest) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", "Host: conformance.test"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    lines.append("Connection: close")
    body = b"" if request.body is None else request.body.encode()
    if request.body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send_request(address: tuple[str, int], request: VectorRequest) -> ClientResponse:
    """One request on its own connection; the response is read to its end (bounded)."""
    collector = _ResponseCollector()
    parser = httptools.HttpResponseParser(collector)
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(_request_bytes(request))
        received = 0
        while not collector.complete:
            data = await stream.receive_some(65536)
            if not data:
                # The gateway frames every response (Content-Length or chunked), so the end of
                # the stream before the end of the message is a broken response.
                raise ValueError("connection closed before the response was complete")
            received += len(data)
            if received > MAX_RESPONSE_BYTES:
                raise ValueError(f"response longer than {MAX_RESPONSE_BYTES} bytes")
            parser.feed_data(data)
    status: int = parser.get_status_code()
    return ClientResponse(
        status=status, headers=_headers_text(collector.headers), body=bytes(collector.body)
    )
