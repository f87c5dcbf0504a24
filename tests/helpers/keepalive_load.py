"""Keep-alive load that tells every way a request can end apart (for shutdown tests and
``bench/reliability_shutdown.py``).

Each worker keeps one connection busy: it sends a GET, reads the response (Content-Length framed),
and sends the next one as soon as the last byte arrived; a ``Connection: close`` response or a
clean close makes it reconnect; a refused connect (the listener is closed) ends it. Every request
ends in exactly one outcome:

- ``answered``: a full response (``statuses`` counts them by status);
- ``closed_unanswered``: the server closed the connection (a FIN, no reset) before sending a byte
  of the response. A client may retry such a request on a new connection (RFC 9112 §9.3.1); it
  counts as a *drop* only if it was sent before ``signal_sent_at`` (the server had it before it
  began to shut down, so it had to answer it);
- ``reset`` (ECONNRESET/EPIPE) and ``truncated`` (a close in the middle of a response): drops.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import attrs
import trio

MAX_HEAD = 65536


@attrs.define(eq=False)
class Drop:
    kind: str
    #: Seconds from ``signal_sent_at`` to sending the request (negative: before the signal).
    sent_after_signal: float
    detail: str = ""


class _Reset(Exception):
    pass


@attrs.define(eq=False)
class KeepAliveLoad:
    address: tuple[str, int]
    target: str
    connections: int = 32
    #: Extra header lines, each ending in CRLF (e.g. ``"Authorization: k\r\n"``).
    headers: str = ""
    answered: int = 0
    closed_unanswered: int = 0
    statuses: Counter[int] = attrs.field(factory=Counter)
    drops: list[Drop] = attrs.field(factory=list)
    #: ``time.perf_counter()`` when the shutdown signal was sent (inf: not yet).
    signal_sent_at: float = float("inf")
    #: Called with each answer's status as it arrives.
    on_answer: Callable[[int], None] | None = None
    _progress: trio.Event = attrs.field(factory=trio.Event)

    def mark_signal(self) -> None:
        self.signal_sent_at = time.perf_counter()

    async def wait_for_answers(self, count: int) -> None:
        while self.answered < count:
            await self._progress.wait()

    async def run(self) -> None:
        """Run every worker until its reconnect is refused."""
        async with trio.open_nursery() as nursery:
            for _ in range(self.connections):
                nursery.start_soon(self._worker)

    def _answer(self, status: int) -> None:
        self.answered += 1
        self.statuses[status] += 1
        if self.on_answer is not None:
            self.on_answer(status)
        self._progress.set()
        self._progress = trio.Event()

    async def _worker(self) -> None:
        request = f"GET {self.target} HTTP/1.1\r\nHost: load\r\n{self.headers}\r\n".encode()
        while True:
            try:
                stream = await trio.open_tcp_stream(*self.address)
            except OSError:
                return  # refused: the listener is closed
            async with stream:
                while True:
                    sent_at = time.perf_counter()
                    try:
                        await stream.send_all(request)
                        keep_going = await self._read_response(stream, sent_at)
                    except (trio.BrokenResourceError, _Reset) as exc:
                        self._drop("reset", sent_at, repr(exc))
                        break
                    if not keep_going:
                        break

    async def _read_response(self, stream: trio.SocketStream, sent_at: float) -> bool:
        """Read one response; False when the connection is done (closed or ``close``)."""
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            data = await _receive(stream)
            if not data:
                if buffer:
                    self._drop("truncated", sent_at, bytes(buffer[:80]).decode("latin-1"))
                else:
                    self.closed_unanswered += 1
                    if sent_at < self.signal_sent_at:
                        self._drop("closed before the signal", sent_at)
                return False
            buffer += data
            if len(buffer) > MAX_HEAD:
                raise AssertionError("response head too large")
        head, _, body = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in lines[1:])
        }
        length = int(fields[b"content-length"])
        while len(body) < length:
            data = await _receive(stream)
            if not data:
                self._drop("truncated", sent_at, f"{len(body)} of {length} body bytes")
                return False
            body += data
        self._answer(status)
        return fields.get(b"connection", b"").lower() != b"close"

    def _drop(self, kind: str, sent_at: float, detail: str = "") -> None:
        self.drops.append(Drop(kind, sent_at - self.signal_sent_at, detail))
        self._progress.set()
        self._progress = trio.Event()


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError as exc:
        raise _Reset(str(exc)) from exc
