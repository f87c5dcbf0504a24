"""One HTTP/2 connection to a gRPC server, multiplexing unary calls (see :mod:`.client`).

The connection's state (stream ids, both sides' windows, the server's settings) and its two
tasks: a reader (socket -> frames -> the waiting caller) and a writer (acks, window updates).
A caller queues its HEADERS and DATA and flushes them itself. Per-stream receive buffers are
bounded by the call's ``recv_max`` (docs/grpc-driver.md).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

import attrs
import hpack
import trio

from trio_gateway.drivers import RawSocketStream

from . import h2codec
from .call import MESSAGE_PREFIX, RESET_CODES, Call, error_code_name
from .common import (
    GrpcError,
    GrpcMessageTooLarge,
    GrpcNotProcessed,
    GrpcUnavailable,
    Keepalive,
    StatusCode,
    error_for,
)
from .h2codec import ErrorCode, Flag, FrameType, Setting

__all__ = ["USER_AGENT", "Connection", "Transport"]

#: Our receive windows: large enough that a multi-megabyte reply does not wait on round trips.
_STREAM_WINDOW: Final = 4 * 1024 * 1024
_CONNECTION_WINDOW: Final = 16 * 1024 * 1024
_MAX_HEADER_LIST: Final = 64 * 1024
_READ_SIZE: Final = 256 * 1024
_DECODED_BLOCKS: Final = 64
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

_MAX_STREAM_ID: Final = 2**31 - 1
_PING: Final = struct.Struct(">Q")


@attrs.define(eq=False)
class Connection:
    """One HTTP/2 connection, run by :mod:`h2codec` framing: callers queue their frames and flush;
    a reader task parses the server's frames and delivers each reply to its waiting caller."""

    stream: Transport
    scheme: bytes
    calls: dict[int, Call] = attrs.field(factory=dict)
    #: No new streams may start (lost, closed, or the server sent GOAWAY).
    unusable: trio.Event = attrs.field(factory=trio.Event)
    graceful: bool = False
    calm_down: bool = False
    closed: bool = False
    #: Frames queued for the socket (sent by whoever flushes next).
    out: bytearray = attrs.field(factory=bytearray)
    parser: h2codec.FrameParser = attrs.field(factory=h2codec.FrameParser)
    decoder: hpack.Decoder = attrs.field(factory=hpack.Decoder)
    next_stream_id: int = 1
    #: The peer's settings we honour, and our connection send window.
    send_window: int = 65_535
    peer_initial_window: int = 65_535
    peer_max_frame: int = h2codec.DEFAULT_MAX_FRAME_SIZE
    peer_max_streams: int = 2**31
    peer_table_size: int = 4_096
    #: A dynamic table size update owed at the start of our next header block (the peer shrank
    #: its HPACK table; RFC 7541 §4.2).
    header_prefix: bytes = b""
    #: Received DATA bytes not yet given back with a connection WINDOW_UPDATE.
    recv_unacked: int = 0
    keepalive: Keepalive = attrs.field(factory=Keepalive)
    #: Reads from the socket so far: the keepalive and suspicion checks compare it over time.
    reads: int = 0
    #: The payload of the keepalive PING awaiting its ACK, and the event the ACK sets.
    _ping_payload: bytes = b""
    _ping_acked: trio.Event = attrs.field(factory=trio.Event)
    _pings: int = 0
    #: Consecutive calls whose deadline passed with nothing read, and ``reads`` when counted.
    _silent_timeouts: int = 0
    _silent_reads: int = -1
    #: Decoded header blocks that did not change the HPACK table (see :meth:`_decode`).
    _decoded: dict[bytes, list[tuple[bytes, bytes]]] = attrs.field(factory=dict)
    _flushing: bool = False
    #: Callers waiting for send window (WINDOW_UPDATE / SETTINGS wake them).
    _senders_waiting: int = 0
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _slot_freed: trio.Event = attrs.field(factory=trio.Event)
    _cancel_scope: trio.CancelScope | None = None

    @classmethod
    def start(
        cls, stream: Transport, scheme: bytes, keepalive: Keepalive | None = None
    ) -> Connection:
        conn = cls(stream=stream, scheme=scheme, keepalive=keepalive or Keepalive())
        conn.out += h2codec.CLIENT_PREFACE
        conn.out += h2codec.settings_frame(
            (
                (Setting.ENABLE_PUSH, 0),
                (Setting.INITIAL_WINDOW_SIZE, _STREAM_WINDOW),
                (Setting.MAX_HEADER_LIST_SIZE, _MAX_HEADER_LIST),
            )
        )
        conn.out += h2codec.window_update_frame(0, _CONNECTION_WINDOW - 65_535)
        return conn

    async def flush(self) -> None:
        """Send what is queued. One flusher at a time: a second caller's bytes are already in
        ``out``, and the running flusher loops until it is empty."""
        if self._flushing or self.closed:
            return
        self._flushing = True
        try:
            stream = self.stream
            if isinstance(stream, RawSocketStream):
                # Let the other ready callers queue their frames first (one write for many
                # calls under load), then usually the socket takes it all at once.
                await trio.lowlevel.cancel_shielded_checkpoint()
                data = self.out
                sent = stream.send_nowait(data)
                self.out = data[sent:] if sent < len(data) else bytearray()
                if not self.out:
                    return
            with trio.CancelScope(shield=True, deadline=trio.current_time() + _WRITE_TIMEOUT):
                while self.out:
                    data, self.out = self.out, bytearray()
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
        for call in list(self.calls.values()):
            call.fail(GrpcUnavailable(why))

    async def _keep_alive(self) -> None:
        """PING a server that has sent nothing for a while though calls wait on it; no ACK in
        time drops the connection (see :class:`Keepalive`)."""
        interval, timeout = self.keepalive.interval, self.keepalive.timeout
        seen = self.reads
        while True:
            await trio.sleep(interval)
            if self.reads != seen or not self.calls:
                seen = self.reads
                continue
            self._pings += 1
            payload = self._ping_payload = _PING.pack(self._pings)
            acked = self._ping_acked = trio.Event()
            self.out += h2codec.ping_frame(payload)
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
        while True:
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            self.reads += 1
            try:
                for received in self.parser.feed(data):
                    self._handle(received)
                if self.recv_unacked >= _CONNECTION_WINDOW // 2:
                    self.out += h2codec.window_update_frame(0, self.recv_unacked)
                    self.recv_unacked = 0
            except h2codec.H2ProtocolError as exc:
                self.out += h2codec.goaway_frame(0, exc.code)
                await self.flush()  # best effort (bounded inside)
                return
            if self.out and not self._flushing:
                self._wake.set()  # acks, window updates, resets the frames caused

    def _handle(self, received: h2codec.Frame) -> None:
        type_, flags, stream_id, payload, flow = received
        if type_ == FrameType.DATA:
            self.recv_unacked += flow
            if self.recv_unacked > _CONNECTION_WINDOW:
                # RFC 9113 §6.9.1: more than our connection window allowed.
                raise h2codec.H2ProtocolError(
                    ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection window"
                )
            call = self.calls.get(stream_id)
            if call is None:
                return  # a stream we already gave up: only the connection window counts it
            call.unacked += flow
            if call.unacked > _STREAM_WINDOW:
                call.fail(GrpcError(StatusCode.INTERNAL, "server sent beyond the stream window"))
                self._reset(call, ErrorCode.FLOW_CONTROL_ERROR)
                return
            if not call.done.is_set():
                # Bounded by recv_max: the prefix says how long the message is, and a reply
                # that runs past it fails at once (nothing more is kept).
                call.data += payload
                if not call.size_checked:
                    if len(call.data) >= 5:
                        self._check_size(call)
                elif len(call.data) > call.expected:
                    self._overrun(call)
            if flags & Flag.END_STREAM:
                call.remote_closed = True
                call.done.set()
                call.window.set()
            elif call.unacked >= _STREAM_WINDOW // 2 and not call.done.is_set():
                # Window given back only to a call still reading its reply.
                self.out += h2codec.window_update_frame(stream_id, call.unacked)
                call.unacked = 0
        elif type_ == FrameType.HEADERS:
            headers = self._decoded.get(payload)
            if headers is None:
                headers = self._decode(payload)
            call = self.calls.get(stream_id)
            if call is not None:
                call.read_headers(headers)
                if flags & Flag.END_STREAM:
                    call.remote_closed = True
                    call.done.set()
                    call.window.set()
        elif type_ == FrameType.RST_STREAM:
            code = h2codec.parse_u32(payload, "RST_STREAM")
            call = self.calls.get(stream_id)
            if call is not None:
                call.remote_closed = call.local_closed = True  # closed: never reset it back
                if code == ErrorCode.REFUSED_STREAM:
                    # RFC 9113 §8.7: a refused stream was not processed at all.
                    call.fail(GrpcNotProcessed("stream refused by the gRPC server"))
                    return
                status = RESET_CODES.get(code, StatusCode.INTERNAL)  # type: ignore[call-overload]
                call.fail(
                    error_for(status, f"stream reset by the server ({error_code_name(code)})")
                )
        elif type_ == FrameType.WINDOW_UPDATE:
            increment = h2codec.parse_u32(payload, "WINDOW_UPDATE") & _MAX_STREAM_ID
            if stream_id:
                call = self.calls.get(stream_id)
                if call is None:
                    if stream_id >= self.next_stream_id:
                        raise h2codec.H2ProtocolError(
                            ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream"
                        )
                    return  # a stream already closed on our side
                # RFC 9113 §6.9 / §6.9.1: stream errors.
                if increment == 0:
                    call.fail(GrpcError(StatusCode.INTERNAL, "WINDOW_UPDATE of 0 on the stream"))
                    self._reset(call, ErrorCode.PROTOCOL_ERROR)
                    return
                call.send_window += increment
                if call.send_window > _MAX_STREAM_ID:
                    call.fail(GrpcError(StatusCode.INTERNAL, "stream window over 2^31-1"))
                    self._reset(call, ErrorCode.FLOW_CONTROL_ERROR)
                    return
                call.window.set()
            else:
                if increment == 0:
                    raise h2codec.H2ProtocolError(
                        ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection"
                    )
                self.send_window += increment
                if self.send_window > _MAX_STREAM_ID:
                    raise h2codec.H2ProtocolError(
                        ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31-1"
                    )
                self._wake_senders()
        elif type_ == FrameType.SETTINGS:
            if stream_id:
                raise h2codec.H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & Flag.ACK:
                return
            self._apply_settings(h2codec.parse_settings(payload))
            self.out += h2codec.settings_frame(ack=True)
        elif type_ == FrameType.PING:
            if not flags & Flag.ACK:
                self.out += h2codec.ping_ack_frame(payload)
            elif payload == self._ping_payload:
                self._ping_acked.set()
        elif type_ == FrameType.GOAWAY:
            # Streams above last_stream_id were never processed and may be retried elsewhere;
            # the others may still finish. No new streams here.
            last, code = h2codec.parse_goaway(payload)
            self.graceful = code == ErrorCode.NO_ERROR
            # grpc servers say ENHANCE_YOUR_CALM ("too_many_pings") to pings they find too
            # frequent: the channel then pings half as often.
            self.calm_down = code == ErrorCode.ENHANCE_YOUR_CALM
            self.unusable.set()
            for call_id, call in list(self.calls.items()):
                if call_id > last:
                    call.fail(GrpcNotProcessed("the gRPC server is going away"))
        elif type_ == FrameType.PUSH_PROMISE:
            raise h2codec.H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE (push is off)")
        # PRIORITY and unknown types: nothing to do.

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            # Stateful: every block is decoded, in order, even for streams we gave up.
            headers: list[tuple[bytes, bytes]] = self.decoder.decode(block, raw=True)  # type: ignore[assignment]
        except hpack.HPACKError as exc:
            raise h2codec.H2ProtocolError(ErrorCode.COMPRESSION_ERROR, str(exc)) from exc
        # A server repeats the same few blocks (all indexed once its table is warm). Those that
        # leave the table alone mean the same until it changes: remember them until then.
        if h2codec.is_table_neutral(block):
            if len(self._decoded) >= _DECODED_BLOCKS:
                self._decoded.clear()
            self._decoded[block] = headers
        else:
            self._decoded.clear()
        return headers

    def _apply_settings(self, settings: Sequence[tuple[int, int]]) -> None:
        for key, value in settings:
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > _MAX_STREAM_ID:
                    raise h2codec.H2ProtocolError(
                        ErrorCode.FLOW_CONTROL_ERROR, "initial window over 2^31-1"
                    )
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self.calls.values():
                    call.send_window += delta
                    if call.send_window > _MAX_STREAM_ID:
                        # RFC 9113 §6.9.2: a connection error.
                        raise h2codec.H2ProtocolError(
                            ErrorCode.FLOW_CONTROL_ERROR, "a stream window over 2^31-1"
                        )
            elif key == Setting.MAX_FRAME_SIZE:
                if not h2codec.DEFAULT_MAX_FRAME_SIZE <= value <= 2**24 - 1:
                    raise h2codec.H2ProtocolError(
                        ErrorCode.PROTOCOL_ERROR, f"bad SETTINGS_MAX_FRAME_SIZE {value}"
                    )
                self.peer_max_frame = value
            elif key == Setting.MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
            elif key == Setting.HEADER_TABLE_SIZE:
                if value < self.peer_table_size:
                    # Our encoder never inserts, so its table is empty; saying so (size 0) at the
                    # start of the next block satisfies a decoder that now expects the update.
                    self.header_prefix = h2codec.table_size_update(0)
                self.peer_table_size = value
        self._wake_senders()
        self._slot_freed.set()

    def _wake_senders(self) -> None:
        # The server gives back connection window after most calls: only look for senders when
        # one is waiting.
        if self._senders_waiting:
            for call in self.calls.values():
                call.window.set()

    def _check_size(self, call: Call) -> None:
        call.size_checked = True
        _, length = MESSAGE_PREFIX.unpack_from(call.data)
        if length > call.recv_max:
            call.fail(
                GrpcMessageTooLarge(
                    f"received message larger than max ({length} vs. {call.recv_max})"
                )
            )
            call.data = bytearray()
            self._reset(call)
            return
        call.expected = 5 + length
        if len(call.data) > call.expected:
            self._overrun(call)

    def _overrun(self, call: Call) -> None:
        """More DATA than the one reply message announced: fail now rather than keep it."""
        call.fail(GrpcError(StatusCode.INTERNAL, "reply is longer than its one message"))
        call.data = bytearray()
        self._reset(call)

    def _reset(self, call: Call, code: ErrorCode = ErrorCode.CANCEL) -> None:
        if not call.reset_sent and not (call.remote_closed and call.local_closed):
            call.reset_sent = True
            self.out += h2codec.rst_stream_frame(call.stream_id, code)

    async def unary(self, block: bytes, message: bytes, recv_max: int) -> bytes:
        """One call on this connection (``block``: its encoded request headers). Cancellation
        resets the stream."""
        while len(self.calls) >= self.peer_max_streams:
            if self.closed:
                raise GrpcUnavailable("connection to the gRPC server lost")
            self._slot_freed = trio.Event()
            await self._slot_freed.wait()
        if self.unusable.is_set():
            raise GrpcNotProcessed("connection to the gRPC server is closing")
        stream_id = self.next_stream_id
        if stream_id > _MAX_STREAM_ID:
            self.graceful = True
            self.unusable.set()
            raise GrpcNotProcessed("connection ran out of stream ids")
        self.next_stream_id = stream_id + 2
        call = Call(stream_id=stream_id, recv_max=recv_max, send_window=self.peer_initial_window)
        self.calls[stream_id] = call
        if self.header_prefix:
            block, self.header_prefix = self.header_prefix + block, b""
        # Ids are taken and HEADERS queued without a checkpoint between: streams open in order.
        self.out += h2codec.headers_frames(
            stream_id, block, end_stream=False, max_frame_size=self.peer_max_frame
        )
        finished = False
        reads_at_start = self.reads
        try:
            if len(message) < _JOIN_LIMIT:
                await self._send_message(call, MESSAGE_PREFIX.pack(0, len(message)) + message)
            else:
                await self._send_message(call, message, MESSAGE_PREFIX.pack(0, len(message)))
            await call.done.wait()
            finished = True
            return call.result()
        except trio.Cancelled:
            if trio.current_time() >= trio.current_effective_deadline():
                self._note_timeout(reads_at_start)
            raise
        finally:
            del self.calls[stream_id]
            if not self.closed and not (finished and call.local_closed):
                # Cancelled or abandoned: RST_STREAM(CANCEL), so the server sees the call end.
                # (Also when the server answered before reading the whole request: it frees the
                # stream on both sides.)
                self._reset(call)
                await self.flush()  # shielded inside: the reset goes out even when cancelled
            self._slot_freed.set()

    async def _send_message(self, call: Call, message: bytes, prefix: bytes = b"") -> None:
        """Queue ``prefix`` + ``message`` within the peer's windows (the whole of a small one
        goes out with the HEADERS in one write); stops early if the call ended first.

        The two are not joined beforehand: for a large message that would copy it whole. The
        prefix rides in the first DATA frame, and the message is copied a piece at a time.
        """
        view = memoryview(message)
        offset, total = 0, len(message)
        while True:
            if call.done.is_set():
                return  # the server answered (or failed) before reading everything
            size = min(self.send_window, call.send_window, _SEND_PIECE) - len(prefix)
            size = min(size, total - offset)
            if size <= 0:
                # A fresh event before flushing: the window may open while the flush runs.
                opened = call.window = trio.Event()
                self._senders_waiting += 1
                try:
                    await self.flush()
                    await opened.wait()
                finally:
                    self._senders_waiting -= 1
                continue
            end = offset + size
            chunk = message if size == total else bytes(view[offset:end])
            if prefix:
                chunk, prefix = prefix + chunk, b""
            self.send_window -= len(chunk)
            call.send_window -= len(chunk)
            self.out += h2codec.data_frames(
                call.stream_id, chunk, end_stream=end == total, max_frame_size=self.peer_max_frame
            )
            offset = end
            if end == total:
                call.local_closed = True
                await self.flush()
                return
            if len(self.out) >= _SEND_PIECE:
                await self.flush()  # what waits for the socket stays a piece, not the window
