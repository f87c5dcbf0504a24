"""The client side of one HTTP/2 connection carrying unary gRPC calls (pure: no I/O, no Trio).

Bytes in, events and bytes out, as h2 and h11 do it: :meth:`H2ClientConnection.receive_data`
takes what the server sent and returns what happened (a :class:`~.call.Call` whose reply is
complete or which failed, :class:`WindowOpened`, ...); everything owed to the server (acks,
window updates, resets, our HEADERS and DATA) is queued in :attr:`H2ClientConnection.out` for
the shell (``connection.py``) to write. The shell
owns the socket, the tasks, the timers and the waiting; this module owns the protocol state:
stream ids, both sides' flow-control windows, the server's settings, HPACK decoding, and each
call's receive buffer.

Bounds (docs/grpc-driver.md, "Receive bounds"): a call keeps at most ``recv_max`` bytes of reply
(the message prefix announces the length; more, or a longer announcement, fails the call and
resets its stream); the server may not send beyond the windows we advertised (stream: the call
fails; connection: the connection ends with GOAWAY(FLOW_CONTROL_ERROR)); a header block is at
most ``h2codec.MAX_HEADER_BLOCK``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

import attrs
import hpack

from . import h2codec
from .call import MESSAGE_PREFIX, RESET_CODES, Call, error_code_name
from .common import GrpcError, GrpcMessageTooLarge, GrpcNotProcessed, StatusCode, error_for
from .h2codec import ErrorCode, Flag, FrameType, Setting

__all__ = [
    "CONNECTION_WINDOW",
    "STREAM_WINDOW",
    "ConnectionFailed",
    "Event",
    "GoingAway",
    "H2ClientConnection",
    "PingAcked",
    "SettingsChanged",
    "WindowOpened",
]

#: Our receive windows: large enough that a multi-megabyte reply does not wait on round trips.
STREAM_WINDOW: Final = 4 * 1024 * 1024
CONNECTION_WINDOW: Final = 16 * 1024 * 1024
_MAX_HEADER_LIST: Final = 64 * 1024
_DECODED_BLOCKS: Final = 64
_MAX_STREAM_ID: Final = 2**31 - 1
_PING: Final = struct.Struct(">Q")


# ------------------------------------------------------------------------------------------------
# Events


@attrs.define(slots=True)
class WindowOpened:
    """The server gave back send window: on ``call``'s stream, or the connection's (None)."""

    call: Call | None


@attrs.define(slots=True)
class SettingsChanged:
    """The server changed its settings: windows, frame size or the concurrent-stream limit."""


@attrs.define(slots=True)
class PingAcked:
    """The server answered our latest :meth:`H2ClientConnection.ping`."""


@attrs.define(slots=True)
class GoingAway:
    """GOAWAY: no new calls here. Calls the server will not process already got
    reported as ended (with :class:`GrpcNotProcessed`); the others may still finish."""

    graceful: bool
    #: ENHANCE_YOUR_CALM: grpc servers say so ("too_many_pings") to pings they find too frequent.
    calm_down: bool


@attrs.define(slots=True)
class ConnectionFailed:
    """The server broke HTTP/2; GOAWAY(``code``) is queued and the connection must end."""

    code: ErrorCode
    reason: str


#: What :meth:`H2ClientConnection.receive_data` reports. A call that ended (its reply complete, or
#: failed: ``call.error``; its caller may read :meth:`Call.result`) is reported as the
#: :class:`Call` itself, so that the common event costs no allocation.
Event = Call | WindowOpened | SettingsChanged | PingAcked | GoingAway | ConnectionFailed

_SETTINGS_CHANGED: Final = SettingsChanged()
_PING_ACKED: Final = PingAcked()
_CONNECTION_WINDOW_OPENED: Final = WindowOpened(None)


# ------------------------------------------------------------------------------------------------
# The connection


@attrs.define(eq=False)
class H2ClientConnection:
    """One client HTTP/2 connection's state. Create it, write :attr:`out`, and feed what the
    server sends to :meth:`receive_data`."""

    calls: dict[int, Call] = attrs.field(factory=dict)
    #: Bytes owed to the server, oldest first (the shell writes and clears them).
    out: bytearray = attrs.field(factory=bytearray)
    parser: h2codec.FrameParser = attrs.field(factory=h2codec.FrameParser)
    decoder: hpack.Decoder = attrs.field(factory=hpack.Decoder)
    next_stream_id: int = 1
    #: No new calls may start (the server sent GOAWAY, or the stream ids ran out).
    going_away: bool = False
    #: Our connection send window, and the server's settings we honour.
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
    #: The payload of the PING awaiting its ACK.
    _ping_payload: bytes = b""
    _pings: int = 0
    #: Decoded header blocks that did not change the HPACK table (see :meth:`_decode`).
    _decoded: dict[bytes, list[tuple[bytes, bytes]]] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.out += h2codec.CLIENT_PREFACE
        self.out += h2codec.settings_frame(
            (
                (Setting.ENABLE_PUSH, 0),
                (Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (Setting.MAX_HEADER_LIST_SIZE, _MAX_HEADER_LIST),
            )
        )
        self.out += h2codec.window_update_frame(0, CONNECTION_WINDOW - 65_535)

    # --------------------------------------------------------------------------------------------
    # Our side

    def start_call(self, block: bytes, recv_max: int) -> Call:
        """Open a stream for one call and queue its HEADERS (``block``: the encoded request
        headers). Raises :class:`GrpcNotProcessed` when no new stream may start here."""
        if self.going_away:
            raise GrpcNotProcessed("connection to the gRPC server is closing")
        stream_id = self.next_stream_id
        if stream_id > _MAX_STREAM_ID:
            self.going_away = True
            raise GrpcNotProcessed("connection ran out of stream ids")
        self.next_stream_id = stream_id + 2
        call = Call(stream_id=stream_id, recv_max=recv_max, send_window=self.peer_initial_window)
        self.calls[stream_id] = call
        if self.header_prefix:
            block, self.header_prefix = self.header_prefix + block, b""
        self.out += h2codec.headers_frames(
            stream_id, block, end_stream=False, max_frame_size=self.peer_max_frame
        )
        return call

    def send_allowance(self, call: Call) -> int:
        """How many bytes of DATA ``call`` may send now (both windows)."""
        return min(self.send_window, call.send_window)

    def send_data(self, call: Call, chunk: bytes, *, end_stream: bool) -> None:
        """Queue ``chunk`` (within :meth:`send_allowance`) as DATA frames on ``call``'s stream."""
        size = len(chunk)
        if size > self.send_window or size > call.send_window:
            raise ValueError("DATA beyond the server's window")
        self.send_window -= size
        call.send_window -= size
        self.out += h2codec.data_frames(
            call.stream_id, chunk, end_stream=end_stream, max_frame_size=self.peer_max_frame
        )
        if end_stream:
            call.local_closed = True

    def end_call(self, call: Call) -> None:
        """The caller is done with ``call``: forget its stream, and reset it (CANCEL) unless it
        ended and we sent the whole request: the caller was cancelled or gave up, or the server
        answered before reading everything (the reset frees the stream on both sides)."""
        del self.calls[call.stream_id]
        if not (call.ended and call.local_closed):
            self.reset(call)

    def reset(self, call: Call, code: ErrorCode = ErrorCode.CANCEL) -> None:
        """Queue RST_STREAM(``code``) for ``call``, once, if its stream is still open."""
        if not call.reset_sent and not (call.remote_closed and call.local_closed):
            call.reset_sent = True
            self.out += h2codec.rst_stream_frame(call.stream_id, code)

    def ping(self) -> None:
        """Queue a PING; :class:`PingAcked` reports its ACK (an older PING's ACK does not)."""
        self._pings += 1
        self._ping_payload = _PING.pack(self._pings)
        self.out += h2codec.ping_frame(self._ping_payload)

    def fail_all(self, error: GrpcError) -> list[Call]:
        """Fail every call still open (the connection is gone); returns them."""
        calls = list(self.calls.values())
        for call in calls:
            call.fail(error)
        return calls

    # --------------------------------------------------------------------------------------------
    # The server's side

    def receive_data(self, data: bytes | bytearray) -> list[Event]:
        """Feed bytes from the server; returns what happened, in order. After
        :class:`ConnectionFailed` (always last) nothing more is read."""
        events: list[Event] = []
        try:
            for received in self.parser.feed(data):
                # DATA first, straight to its handler: most frames are.
                if received[0] == FrameType.DATA:
                    self._data(received, events)
                else:
                    self._handle(received, events)
            if self.recv_unacked >= CONNECTION_WINDOW // 2:
                self.out += h2codec.window_update_frame(0, self.recv_unacked)
                self.recv_unacked = 0
        except h2codec.H2ProtocolError as exc:
            self.going_away = True
            self.out += h2codec.goaway_frame(0, exc.code)
            events.append(ConnectionFailed(exc.code, str(exc)))
        return events

    def _handle(self, received: h2codec.Frame, events: list[Event]) -> None:
        type_, flags, stream_id, payload, _ = received
        if type_ == FrameType.HEADERS:
            headers = self._decoded.get(payload)
            if headers is None:
                headers = self._decode(payload)
            call = self.calls.get(stream_id)
            if call is not None:
                call.read_headers(headers)
                if flags & Flag.END_STREAM:
                    call.remote_closed = True
                    if not call.ended:
                        call.ended = True
                        events.append(call)
        elif type_ == FrameType.RST_STREAM:
            code = h2codec.parse_u32(payload, "RST_STREAM")
            call = self.calls.get(stream_id)
            if call is not None:
                call.remote_closed = call.local_closed = True  # closed: never reset it back
                if code == ErrorCode.REFUSED_STREAM:
                    # RFC 9113 §8.7: a refused stream was not processed at all.
                    self._fail(call, GrpcNotProcessed("stream refused by the gRPC server"), events)
                    return
                status = RESET_CODES.get(code, StatusCode.INTERNAL)  # type: ignore[call-overload]
                reason = f"stream reset by the server ({error_code_name(code)})"
                self._fail(call, error_for(status, reason), events)
        elif type_ == FrameType.WINDOW_UPDATE:
            self._window_update(stream_id, payload, events)
        elif type_ == FrameType.SETTINGS:
            if stream_id:
                raise h2codec.H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & Flag.ACK:
                return
            self._apply_settings(h2codec.parse_settings(payload))
            self.out += h2codec.settings_frame(ack=True)
            events.append(_SETTINGS_CHANGED)
        elif type_ == FrameType.PING:
            if not flags & Flag.ACK:
                self.out += h2codec.ping_ack_frame(payload)
            elif payload == self._ping_payload:
                events.append(_PING_ACKED)
        elif type_ == FrameType.GOAWAY:
            # Streams above last_stream_id were never processed and may be retried elsewhere;
            # the others may still finish. No new streams here.
            last, code = h2codec.parse_goaway(payload)
            self.going_away = True
            for call_id, call in list(self.calls.items()):
                if call_id > last:
                    self._fail(call, GrpcNotProcessed("the gRPC server is going away"), events)
            events.append(
                GoingAway(
                    graceful=code == ErrorCode.NO_ERROR,
                    calm_down=code == ErrorCode.ENHANCE_YOUR_CALM,
                )
            )
        elif type_ == FrameType.PUSH_PROMISE:
            raise h2codec.H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE (push is off)")
        # PRIORITY and unknown types: nothing to do.

    def _data(self, received: h2codec.Frame, events: list[Event]) -> None:
        _, flags, stream_id, payload, flow = received
        self.recv_unacked += flow
        if self.recv_unacked > CONNECTION_WINDOW:
            # RFC 9113 §6.9.1: more than our connection window allowed.
            raise h2codec.H2ProtocolError(
                ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection window"
            )
        call = self.calls.get(stream_id)
        if call is None:
            return  # a stream we already gave up: only the connection window counts it
        call.unacked += flow
        if call.unacked > STREAM_WINDOW:
            why = "server sent beyond the stream window"
            self._stream_error(call, ErrorCode.FLOW_CONTROL_ERROR, why, events)
            return
        if not call.ended:
            # Bounded by recv_max: the prefix says how long the message is, and a reply that runs
            # past it fails at once (nothing more is kept).
            call.data += payload
            if not call.size_checked:
                if len(call.data) >= 5:
                    self._check_size(call, events)
            elif len(call.data) > call.expected:
                self._overrun(call, events)
        if flags & Flag.END_STREAM:
            call.remote_closed = True
            if not call.ended:
                call.ended = True
                events.append(call)
        elif call.unacked >= STREAM_WINDOW // 2 and not call.ended:
            # Window given back only to a call still reading its reply.
            self.out += h2codec.window_update_frame(stream_id, call.unacked)
            call.unacked = 0

    def _window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        increment = h2codec.parse_u32(payload, "WINDOW_UPDATE") & _MAX_STREAM_ID
        if not stream_id:
            if increment == 0:
                raise h2codec.H2ProtocolError(
                    ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection"
                )
            self.send_window += increment
            if self.send_window > _MAX_STREAM_ID:
                raise h2codec.H2ProtocolError(
                    ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31-1"
                )
            events.append(_CONNECTION_WINDOW_OPENED)
            return
        call = self.calls.get(stream_id)
        if call is None:
            if stream_id >= self.next_stream_id:
                raise h2codec.H2ProtocolError(
                    ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream"
                )
            return  # a stream already closed on our side
        # RFC 9113 §6.9 / §6.9.1: stream errors.
        if increment == 0:
            why = "WINDOW_UPDATE of 0 on the stream"
            self._stream_error(call, ErrorCode.PROTOCOL_ERROR, why, events)
            return
        call.send_window += increment
        if call.send_window > _MAX_STREAM_ID:
            why = "stream window over 2^31-1"
            self._stream_error(call, ErrorCode.FLOW_CONTROL_ERROR, why, events)
            return
        events.append(WindowOpened(call))

    def _stream_error(self, call: Call, code: ErrorCode, why: str, events: list[Event]) -> None:
        """The server broke the rules on one stream (RFC 9113 §5.4.2): that call fails and its
        stream is reset with ``code``; the connection goes on."""
        self._fail(call, GrpcError(StatusCode.INTERNAL, why), events)
        self.reset(call, code)

    def _fail(self, call: Call, error: GrpcError, events: list[Event]) -> None:
        """Fail ``call`` (the first error wins) and report it, once."""
        if not call.ended:
            call.fail(error)
            events.append(call)

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

    def _check_size(self, call: Call, events: list[Event]) -> None:
        call.size_checked = True
        _, length = MESSAGE_PREFIX.unpack_from(call.data)
        if length > call.recv_max:
            self._fail(
                call,
                GrpcMessageTooLarge(
                    f"received message larger than max ({length} vs. {call.recv_max})"
                ),
                events,
            )
            call.data = bytearray()
            self.reset(call)
            return
        call.expected = 5 + length
        if len(call.data) > call.expected:
            self._overrun(call, events)

    def _overrun(self, call: Call, events: list[Event]) -> None:
        """More DATA than the one reply message announced: fail now rather than keep it."""
        error = GrpcError(StatusCode.INTERNAL, "reply is longer than its one message")
        self._fail(call, error, events)
        call.data = bytearray()
        self.reset(call)
