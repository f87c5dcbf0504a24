"""The recording upstream the harness points an API at: it answers with the test's script and
keeps what it received, over in-memory streams (the in-process transport: the gateway's real
request writer and response parser run on them) or a loopback HTTP server (``sockets=True``)."""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Awaitable, Callable

import attrs
import trio
import trio.testing

from .._exchange import Request, Response
from .._proto.events import Data, EndOfMessage, RequestHead
from .._proto.http1 import H1ServerParser
from .._proto.writer import response_head
from .._server import HttpServer
from .._upstream.connection import Origin, UpstreamConnection, UpstreamPool
from ._model import SeenRequest, UpstreamReply

__all__ = ["RecordingUpstream", "UpstreamScript", "start_upstream"]

#: A scripted upstream: gets what the upstream received, returns its answer (sync or async).
UpstreamScript = Callable[[SeenRequest], UpstreamReply | Awaitable[UpstreamReply]]

#: Where the in-process upstream pretends to live.
_IN_PROCESS_UPSTREAM = "upstream.test"


@attrs.define(eq=False)
class RecordingUpstream:
    """Answers every request with ``script`` and keeps what it received."""

    script: UpstreamScript
    seen: list[SeenRequest] = attrs.field(factory=list)

    async def answer(self, seen: SeenRequest) -> UpstreamReply:
        self.seen.append(seen)
        reply = self.script(seen)
        if inspect.isawaitable(reply):
            reply = await reply
        assert isinstance(reply, UpstreamReply), "an upstream script returns an UpstreamReply"
        return reply

    def wire_response(self, reply: UpstreamReply, *, head_request: bool) -> bytes:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        head, _, _ = response_head(
            reply.status, b"", headers, body_length=len(reply.body), head_request=head_request
        )
        return head if head_request or reply.status in (204, 304) else head + reply.body


def _seen(head: RequestHead, body: bytes) -> SeenRequest:
    path, sep, query = head.target.partition(b"?")
    return SeenRequest(
        method=head.method.decode("ascii"),
        path=path.decode("latin-1"),
        query=query.decode("latin-1") if sep else "",
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers),
        body=body,
    )


async def _serve_memory_upstream(stream: trio.abc.Stream, upstream: RecordingUpstream) -> None:
    """One in-process upstream connection: parse requests, record them, answer."""
    parser = H1ServerParser()
    async with stream:
        while True:
            head: RequestHead | None = None
            body: list[bytes] = []
            while True:
                event = parser.next_event()
                if event is None:
                    try:
                        data = await stream.receive_some()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                    if not data:
                        return
                    parser.feed(bytes(data))
                elif isinstance(event, RequestHead):
                    head = event
                elif isinstance(event, Data):
                    body.append(event.data)
                elif isinstance(event, EndOfMessage):
                    break
            assert head is not None
            reply = await upstream.answer(_seen(head, b"".join(body)))
            data = upstream.wire_response(reply, head_request=head.method == b"HEAD")
            try:
                await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return


@attrs.define(eq=False)
class _MemoryPool(UpstreamPool):
    """The upstream pool, its connections in-memory streams to the recording upstream."""

    nursery: trio.Nursery | None = None
    upstream: RecordingUpstream | None = None

    async def _connect(self, origin: Origin) -> UpstreamConnection:
        assert self.nursery is not None
        assert self.upstream is not None
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(_serve_memory_upstream, theirs, self.upstream)
        self.open_count.value += 1
        return UpstreamConnection(
            origin=origin, stream=_BytesStream(ours), open_count=self.open_count
        )


@attrs.define(eq=False)
class _BytesStream:
    """A Trio stream that hands out ``bytes`` (what the gateway's parsers take)."""

    stream: trio.abc.Stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def start_upstream(
    nursery: trio.Nursery, recorder: RecordingUpstream, *, sockets: bool
) -> tuple[UpstreamPool, str]:
    """The recording upstream, and the pool and address the gateway reaches it with."""
    if sockets:
        server = HttpServer(handler=_recording_handler(recorder), access_log=None)
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        return UpstreamPool(ssl_context=ssl.create_default_context()), f"{host}:{port}"
    pool = _MemoryPool(ssl_context=ssl.create_default_context(), nursery=nursery, upstream=recorder)
    return pool, _IN_PROCESS_UPSTREAM


def _recording_handler(recorder: RecordingUpstream) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        body = await request.read_body()
        head = RequestHead(
            method=request.method.encode("ascii"),
            target=(request.path + ("?" + request.query if request.query else "")).encode(
                "latin-1"
            ),
            headers=request.headers,
            http_version="1.1",
            keep_alive=True,
            content_length=None,
            chunked=False,
            expect_continue=False,
            upgrade=False,
        )
        reply = await recorder.answer(_seen(head, body))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        return Response(status=reply.status, headers=headers, body_bytes=reply.body)

    return handle
