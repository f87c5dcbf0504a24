"""One HTTP/2 connection to a gRPC server on Trio, multiplexing unary calls (see :mod:`.client`).

The thin shell over :class:`~.h2client.H2ClientConnection`, which holds all the protocol state
(stream ids, windows, settings, per-call receive buffers and their bounds) and never does I/O.
This module owns the socket and two tasks: a reader (socket -> ``receive_data`` -> wake the
callers its events name) and a writer (acks and window updates the reader queued); a caller
queues its HEADERS and DATA and flushes them itself. Timers live here too: the keepalive PING and
the "calls time out in silence" check.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from trio_gateway.drivers import RawSocketStream

from .call import MESSAGE_PREFIX, Call
from .common import GrpcNotProcessed, GrpcUnavailable, Keepalive
from .h2client import (
    ConnectionFailed,
    GoingAway,
    H2ClientConnection,
    PingAcked,
    SettingsChanged,
    WindowOpened,
)

__all__ = ["USER_AGENT", "Connection", "Transport"]

_READ_SIZE: Final = 256 * 1024
#: Bound on one flush of h2's outgoing buffer (shielded from the caller's cancellation, so that a
#: frame is never cut in half): a peer that reads nothing for this long is treated as gone.
_WRITE_TIMEOUT: Final = 10.0
USER_AGENT: Final = b"trio-gateway-grpc/0.1"
#: Messages at least this large are not joined with their 5-byte prefix (a copy of the whole
#: message); the prefix goes out as its own piece of the first DATA frame instead.
_JOIN_LIMIT: Final = 64 * 1024
#: A large message is framed and queued this much at a time (transient copies stay this size).
_SEND_PIECE: Final = 256 * 1024

#: The connection's byte stream: the raw socket stream for plain TCP, a Trio stream otherwise
#: (TLS, unix sockets).
Transport = trio.abc.Stream | RawSocketStream


async def _close_forcefully(stream: Transport) -> None:
    if isinstance(stream, RawSocketStream):
        stream.close()
    else:
        await trio.aclose_forcefully(stream)


# ------------------------------------------------------------------------------------------------
# One HTTP/2 connection


@attrs.define(eq=False)
class Connection:
    """One HTTP/2 connection: callers queue their frames (through :attr:`h2`) and flush; a reader
    task feeds the server's bytes to :attr:`h2` and wakes the callers its events name."""

    stream: Transport
    scheme: bytes
    #: The protocol state (pure); everything owed to the server waits in ``h2.out``.
    h2: H2ClientConnection = attrs.field(factory=H2ClientConnection)
    #: No new streams may start (lost, closed, or the server sent GOAWAY).
    unusable: trio.Event = attrs.field(factory=trio.Event)
    graceful: bool = False
    calm_down: bool = False
    closed: bool = False
    keepalive: Keepalive = attrs.field(factory=Keepalive)
    #: Reads from the socket so far: the keepalive and suspicion checks compare it over time.
    reads: int = 0
    #: Per call waiting for send window: set when the window may have grown.
    _window: dict[int, trio.Event] = attrs.field(factory=dict)
    _ping_acked: trio.Event = attrs.field(factory=trio.Event)
    #: Consecutive calls whose deadline passed with nothing read, and ``reads`` when counted.
    _silent_timeouts: int = 0
    _silent_reads: int = -1
    _flushing: bool = False
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _slot_freed: trio.Event = attrs.field(factory=trio.Event)
    _cancel_scope: trio.CancelScope | None = None

    @classmethod
    def start(
        cls, stream: Transport, scheme: bytes, keepalive: Keepalive | None = None
    ) -> Connection:
        """A connection over ``stream`` with the preface and our settings queued (:meth:`run`
        sends them)."""
        return cls(stream=stream, scheme=scheme, keepalive=keepalive or Keepalive())

    @property
    def calls(self) -> dict[int, Call]:
        """The calls open on this connection, by stream id."""
        return self.h2.calls

    async def flush(self) -> None:
        """Send what is queued. One flusher at a time: a second caller's bytes are already in
        ``h2.out``, and the running flusher loops until it is empty."""
        if self._flushing or self.closed:
            return
        self._flushing = True
        h2 = self.h2
        try:
            stream = self.stream
            if isinstance(stream, RawSocketStream):
                # Let the other ready callers queue their frames first (one write for many
                # calls under load), then usually the socket takes it all at once.
                await trio.lowlevel.cancel_shielded_checkpoint()
                data = h2.out
                sent = stream.send_nowait(data)
                h2.out = data[sent:] if sent < len(data) else bytearray()
                if not h2.out:
                    return
            with trio.CancelScope(shield=True, deadline=trio.current_time() + _WRITE_TIMEOUT):
                while h2.out:
                    data, h2.out = h2.out, bytearray()
                    await self.stream.send_all(data)
                return
            # Only reached when the write deadline passed: the peer stopped reading.
            self._fail_connection("gRPC server stopped reading")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._fail_connection("connection to the gRPC server lost")
        finally:
            self._flushing = False

    async def _writer(self) -> None:
        """Flush what the reader queued (acks, window updates, resets)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()

    def _fail_connection(self, why: str) -> None:
        self._lost(why)
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def run(self) -> None:
        """Read until the connection ends; then fail the calls still on it."""
        try:
            async with trio.open_nursery() as nursery:
                self._cancel_scope = nursery.cancel_scope
                await self.flush()  # the connection preface and our settings
                nursery.start_soon(self._writer)
                if self.keepalive.interval > 0:
                    nursery.start_soon(self._keep_alive)
                await self._reader()
                nursery.cancel_scope.cancel()
        finally:
            self._lost("connection to the gRPC server lost")
            with trio.CancelScope(shield=True):
                await _close_forcefully(self.stream)

    def close(self) -> None:
        """Stop both tasks now (the channel is closing)."""
        self._lost("gRPC channel closed")
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    def _lost(self, why: str) -> None:
        self.closed = True
        self.unusable.set()
        self._slot_freed.set()
        for call in self.h2.fail_all(GrpcUnavailable(why)):
            self._ended(call)

    def _ended(self, call: Call) -> None:
        """Wake the caller of ``call`` (and its sender, if it waits for window)."""
        if call.waiter is not None:
            call.waiter.set()
        window = self._window.get(call.stream_id)
        if window is not None:
            window.set()

    def _wake_senders(self) -> None:
        for window in self._window.values():
            window.set()

    async def _keep_alive(self) -> None:
        """PING a server that has sent nothing for a while though calls wait on it; no ACK in
        time drops the connection (see :class:`Keepalive`)."""
        interval, timeout = self.keepalive.interval, self.keepalive.timeout
        seen = self.reads
        while True:
            await trio.sleep(interval)
            if self.reads != seen or not self.h2.calls:
                seen = self.reads
                continue
            acked = self._ping_acked = trio.Event()
            self.h2.ping()
            await self.flush()
            with trio.move_on_after(timeout):
                await acked.wait()
                seen = self.reads
                continue
            self._fail_connection(
                f"the gRPC server did not answer a keepalive PING within {timeout:g}s"
            )
            return

    def _note_timeout(self, reads_at_start: int) -> None:
        """A call's deadline passed. When nothing at all arrived meanwhile, and this happens
        ``suspect_after`` times in a row, the connection is dropped and the next call waits for
        a fresh one (a server that stopped answering is not waited for until TCP gives up)."""
        limit = self.keepalive.suspect_after
        if not limit or self.reads != reads_at_start or self.closed:
            return
        if self.reads != self._silent_reads:
            self._silent_reads, self._silent_timeouts = self.reads, 0
        self._silent_timeouts += 1
        if self._silent_timeouts >= limit:
            self.graceful = True  # callers wait for the next connection instead of failing
            self._fail_connection(f"the gRPC server did not answer {limit} calls in a row")

    async def _reader(self) -> None:
        h2 = self.h2
        while True:
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            self.reads += 1
            for event in h2.receive_data(data):
                # ``type() is``: cheaper than isinstance, and the common event comes first.
                if type(event) is Call:  # it ended: wake its caller (the common event)
                    if event.waiter is not None:
                        event.waiter.set()
                    if self._window and (window := self._window.get(event.stream_id)) is not None:
                        window.set()  # a sender waiting for window stops sending
                elif type(event) is WindowOpened:
                    call = event.call
                    if call is None:
                        self._wake_senders()
                    elif (window := self._window.get(call.stream_id)) is not None:
                        window.set()
                elif type(event) is SettingsChanged:
                    self._wake_senders()
                    self._slot_freed.set()
                elif type(event) is PingAcked:
                    self._ping_acked.set()
                elif isinstance(event, GoingAway):
                    self.graceful = event.graceful
                    # The channel then pings half as often (see client.py).
                    self.calm_down = event.calm_down
                    self.unusable.set()
                elif isinstance(event, ConnectionFailed):
                    await self.flush()  # the GOAWAY, best effort (bounded inside)
                    return
            if h2.out and not self._flushing:
                self._wake.set()  # acks, window updates, resets the frames caused

    async def unary(self, block: bytes, message: bytes, recv_max: int) -> bytes:
        """One call on this connection (``block``: its encoded request headers). Cancellation
        resets the stream."""
        h2 = self.h2
        while len(h2.calls) >= h2.peer_max_streams:
            if self.closed:
                raise GrpcUnavailable("connection to the gRPC server lost")
            self._slot_freed = trio.Event()
            await self._slot_freed.wait()
        if self.unusable.is_set():
            raise GrpcNotProcessed("connection to the gRPC server is closing")
        try:
            # Ids are taken and HEADERS queued without a checkpoint between: streams open in
            # order.
            call = h2.start_call(block, recv_max)
        except GrpcNotProcessed:
            self.graceful = True  # out of stream ids: the next call takes a new connection
            self.unusable.set()
            raise
        done = call.waiter = trio.Event()  # set when its reply is complete or it failed
        finished = False
        reads_at_start = self.reads
        try:
            if len(message) < _JOIN_LIMIT:
                await self._send_message(call, MESSAGE_PREFIX.pack(0, len(message)) + message)
            else:
                await self._send_message(call, message, MESSAGE_PREFIX.pack(0, len(message)))
            await done.wait()
            finished = True
            return call.result()
        except trio.Cancelled:
            if trio.current_time() >= trio.current_effective_deadline():
                self._note_timeout(reads_at_start)
            raise
        finally:
            h2.end_call(call)  # RST_STREAM(CANCEL) if it was cancelled or abandoned
            if not self.closed and not (finished and call.local_closed):
                await self.flush()  # shielded inside: the reset goes out even when cancelled
            self._slot_freed.set()

    async def _send_message(self, call: Call, message: bytes, prefix: bytes = b"") -> None:
        """Queue ``prefix`` + ``message`` within the peer's windows (the whole of a small one
        goes out with the HEADERS in one write); stops early if the call ended first.

        The two are not joined beforehand: for a large message that would copy it whole. The
        prefix rides in the first DATA frame, and the message is copied a piece at a time.
        """
        h2 = self.h2
        view = memoryview(message)
        offset, total = 0, len(message)
        while True:
            if call.ended:
                return  # the server answered (or failed) before reading everything
            # Both windows (h2.send_allowance, inline: once per call on the hot path).
            size = min(h2.send_window, call.send_window, _SEND_PIECE) - len(prefix)
            size = min(size, total - offset)
            if size <= 0:
                # A fresh event before flushing: the window may open while the flush runs.
                opened = self._window[call.stream_id] = trio.Event()
                try:
                    await self.flush()
                    await opened.wait()
                finally:
                    del self._window[call.stream_id]
                continue
            end = offset + size
            chunk = message if size == total else bytes(view[offset:end])
            if prefix:
                chunk, prefix = prefix + chunk, b""
            h2.send_data(call, chunk, end_stream=end == total)
            offset = end
            if end == total:
                await self.flush()
                return
            if len(h2.out) >= _SEND_PIECE:
                await self.flush()  # what waits for the socket stays a piece, not the window
