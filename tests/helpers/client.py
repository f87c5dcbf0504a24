"""An async raw HTTP/1.1 client over Trio sockets, for tests that need to see the wire.

Tests send exactly the bytes they want (malformed heads, smuggling shapes, a head without its
body…) and read responses back one at a time. The response reader is written independently of the
gateway's parser, on purpose: a parser bug should not hide itself by being on both sides.

Every read is bounded: by the caller's cancel scope, and by ``timeout`` (default
:data:`DEFAULT_TIMEOUT`) so a test that expects bytes that never come fails instead of hanging.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

Headers = list[tuple[bytes, bytes]]

#: Generous bound for one read on a loaded two-core machine.
DEFAULT_TIMEOUT = 10.0


class ProtocolViolation(AssertionError):
    """The server's bytes are not a valid HTTP/1.1 response (fails the test)."""


@attrs.frozen(kw_only=True)
class RawResponse:
    """One response as read off the wire."""

    status: int
    reason: bytes
    http_version: bytes
    headers: Headers
    body: bytes
    #: The body was chunked on the wire (Transfer-Encoding: chunked).
    chunked: bool = False

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str | bytes) -> list[bytes]:
        wanted = (name.encode() if isinstance(name, str) else name).lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def has_header(self, name: str | bytes) -> bool:
        return bool(self.header_values(name))

    @property
    def closes(self) -> bool:
        """The server announced it will close the connection after this response."""
        connection = self.header(b"connection") or b""
        return b"close" in connection.lower()

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    *,
    host: str | None = "test.local",
) -> bytes:
    """A request's bytes. ``body`` given: Content-Length is added unless ``headers`` sets one
    (or sets Transfer-Encoding, in which case ``body`` must already be framed)."""
    headers = list(headers)
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(*parts: bytes, trailers: bytes = b"") -> bytes:
    """``parts`` framed as a chunked body (empty parts are skipped: they would end it)."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n" + trailers + b"\r\n"


@attrs.define(eq=False)
class RawHttpClient:
    """One client connection. Build it with :func:`open_client`."""

    stream: trio.SocketStream
    timeout: float = DEFAULT_TIMEOUT
    _buffer: bytearray = attrs.field(factory=bytearray)
    _eof: bool = False

    # -- writing ---------------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        with trio.fail_after(self.timeout):
            await self.stream.send_all(data)

    async def send_eof(self) -> None:
        """Half-close: the server sees end of stream, we can still read."""
        await self.stream.send_eof()

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> RawResponse:
        """Send one request and read its response."""
        await self.send(build_request(method, target, headers, body))
        return await self.read_response(head_request=method == "HEAD")

    # -- reading ---------------------------------------------------------------------------------

    async def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream (or a reset)."""
        if self._eof:
            return False
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""  # a reset ends the stream as surely as a FIN
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    async def _read_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if not await self._fill():
                raise ProtocolViolation(f"connection closed mid-line: {bytes(self._buffer)!r}")

    async def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not await self._fill():
                raise ProtocolViolation(
                    f"connection closed after {len(self._buffer)} of {n} body bytes"
                )
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def read_response(self, *, head_request: bool = False) -> RawResponse:
        """Read one response (a 1xx interim response counts as one)."""
        with trio.fail_after(self.timeout):
            return await self._read_response(head_request)

    async def _read_response(self, head_request: bool) -> RawResponse:
        status_line = await self._read_line()
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolViolation(f"bad status line {status_line!r}")
        status = int(code)
        headers: Headers = []
        while line := await self._read_line():
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in b" \t":
                raise ProtocolViolation(f"bad header line {line!r}")
            headers.append((name, value.strip(b" \t")))
        response = RawResponse(
            status=status, reason=reason, http_version=version, headers=headers, body=b""
        )
        lengths = set(response.header_values(b"content-length"))
        if len(lengths) > 1:
            raise ProtocolViolation(f"conflicting Content-Length headers {lengths}")
        te = response.header(b"transfer-encoding")
        if te is not None and lengths:
            raise ProtocolViolation("both Transfer-Encoding and Content-Length")
        if head_request or status < 200 or status in (204, 304):
            return response
        if te is not None:
            # Other codings are passed on as they are (the test reads them); chunked is last.
            if te.lower().rsplit(b",", 1)[-1].strip() != b"chunked":
                raise ProtocolViolation(f"unexpected Transfer-Encoding {te!r}")
            return attrs.evolve(response, body=await self._read_chunked(), chunked=True)
        if lengths:
            return attrs.evolve(response, body=await self._read_exactly(int(lengths.pop())))
        return attrs.evolve(response, body=await self._read_rest())

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self._read_line()
            size = int(size_line.partition(b";")[0], 16)
            if size == 0:
                while await self._read_line():
                    pass  # trailers
                return b"".join(parts)
            parts.append(await self._read_exactly(size))
            if await self._read_line():
                raise ProtocolViolation("chunk data longer than its size")

    async def _read_rest(self) -> bytes:
        while await self._fill():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    async def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes (or resets) the connection."""
        with trio.fail_after(self.timeout):
            return await self._read_rest()

    async def is_closed_by_server(self) -> bool:
        """Wait until the server closes; True if it sent nothing more before closing.

        Fails the test (TooSlowError) if the server neither closes nor sends within the timeout.
        """
        return await self.read_until_closed() == b""

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet consumed by a read."""
        return bytes(self._buffer)

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def open_client(
    address: tuple[str, int], *, read_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[RawHttpClient]:
    """Connect to ``address`` (host, port); the connection is closed on exit.

    ``read_timeout`` bounds each send and each read (and the connect).
    """
    with trio.fail_after(read_timeout):
        stream = await trio.open_tcp_stream(*address)
    client = RawHttpClient(stream, timeout=read_timeout)
    try:
        yield client
    finally:
        await client.aclose()


async def fetch(
    address: tuple[str, int],
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
) -> RawResponse:
    """One request on a fresh connection."""
    async with open_client(address) as client:
        return await client.request(method, target, headers, body)
