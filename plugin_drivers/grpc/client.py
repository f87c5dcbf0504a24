"""A small gRPC client on Trio: unary calls, multiplexed on one HTTP/2 connection.

Only what the coprocess protocol needs: unary-unary calls with raw (already serialised) messages.
grpcio is not used at run time (it runs its own threads and event loop, which Trio cannot cancel).

Shape of the machinery:

* :class:`GrpcChannel` owns one target. A *maintainer* task (owned by the nursery the channel was
  started in) keeps one :class:`_Connection` up: connect, serve until the connection is lost, back
  off with jitter, connect again. The backoff is capped at ``backoff_max`` (0.4 s by default, with
  ±20 % jitter), so traffic flows again well under a second after the server returns.
* While there is no connection because the last attempt failed, calls fail *at once* with
  :class:`GrpcUnavailable` instead of waiting for a server that is not there. Only the very first
  connect (and a reconnect after a graceful GOAWAY) makes calls wait, bounded by their deadline.
* HTTP/2 is spoken with :mod:`.h2codec` (frames and a pre-encoded request header block; a
  generic state machine such as ``h2`` cost more than half of a call's CPU). The connection's
  state (stream ids, both sides' windows, the server's settings) lives in :class:`_Connection`.
* Each connection runs a reader task (socket -> frames -> the waiting caller) and a writer task.
  A caller queues its HEADERS and DATA together and flushes them itself (one flusher at a time,
  inside a shielded scope with its own deadline), so a call costs one write and no task switch
  to get its request out, and a caller that is cancelled half-way never leaves a half-written
  frame on the socket. What the reader causes (acks, window updates) goes through the writer
  task, only when there is something to send: the reader must never block on a send, or a peer
  blocked sending to us could deadlock with it.
* A call whose caller is cancelled (client gone, deadline passed) resets its stream with
  ``RST_STREAM(CANCEL)``; the server sees the call cancelled. ``grpc-timeout`` carries the call's
  deadline, which is the enclosing Trio cancel scopes' deadline (no separate timeout argument).
"""

from __future__ import annotations

import enum
import math
import random
import ssl
import struct
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import attrs
import hpack
import trio

from trio_gateway.drivers import RawSocketStream, open_raw_tcp_stream

from . import h2codec
from .h2codec import ErrorCode, Flag, FrameType, Setting

__all__ = [
    "DEFAULT_RECV_MAX",
    "ChannelState",
    "GrpcChannel",
    "GrpcDeadlineExceeded",
    "GrpcError",
    "GrpcMessageTooLarge",
    "GrpcNotProcessed",
    "GrpcUnavailable",
    "Keepalive",
    "StatusCode",
    "Target",
    "open_grpc_channel",
    "parse_target",
    "start_grpc_channel",
]

#: gRPC's default limit for a received message (Tyk's ``grpc_recv_max_size`` = 0).
DEFAULT_RECV_MAX: Final = 4 * 1024 * 1024
#: Our receive windows: large enough that a multi-megabyte reply does not wait on round trips.
_STREAM_WINDOW: Final = 4 * 1024 * 1024
_CONNECTION_WINDOW: Final = 16 * 1024 * 1024
_MAX_HEADER_LIST: Final = 64 * 1024
_READ_SIZE: Final = 256 * 1024
_DECODED_BLOCKS: Final = 64
#: Bound on one flush of h2's outgoing buffer (shielded from the caller's cancellation, so that a
#: frame is never cut in half): a peer that reads nothing for this long is treated as gone.
_WRITE_TIMEOUT: Final = 10.0
_USER_AGENT: Final = b"trio-gateway-grpc/0.1"
_HEADER: Final = struct.Struct(">BI")  # gRPC message prefix: compressed flag, length
#: Messages at least this large are not joined with their 5-byte prefix (a copy of the whole
#: message); the prefix goes out as its own piece of the first DATA frame instead.
_JOIN_LIMIT: Final = 64 * 1024
#: A large message is framed and queued this much at a time (transient copies stay this size).
_SEND_PIECE: Final = 256 * 1024


@attrs.frozen(kw_only=True)
class Keepalive:
    """How a dead server is noticed without waiting for TCP (which can take minutes).

    While calls are in flight and nothing has arrived from the server for ``interval`` seconds,
    the client sends an HTTP/2 PING; no ACK within ``timeout`` drops the connection (its calls
    fail as unavailable, the channel reconnects). Idle connections are not pinged: gRPC servers
    answer pings without calls, or too frequent ones, with GOAWAY ``too_many_pings`` (their
    default policy allows one per 5 minutes while they send nothing). ``interval`` 0 turns pings
    off. Independently, ``suspect_after`` calls in a row whose deadline passed while nothing at
    all arrived on the connection mark it suspect: it is dropped and the next call waits for a
    fresh connection. 0 turns that off.
    """

    interval: float = 10.0
    timeout: float = 5.0
    suspect_after: int = 3


#: No keepalive pings and no suspicion (for tests of other things).
NO_KEEPALIVE: Final = Keepalive(interval=0.0, suspect_after=0)


class StatusCode(enum.IntEnum):
    """gRPC status codes (the ones a client meets, all of them listed for messages)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """A call ended without a reply: the server's status, or one the client decided."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class GrpcUnavailable(GrpcError):
    """No connection to the server (down, refused, lost mid-call, or the channel is closed)."""

    def __init__(self, message: str) -> None:
        super().__init__(StatusCode.UNAVAILABLE, message)


class GrpcNotProcessed(GrpcUnavailable):
    """The server did not process the call (GOAWAY below its stream, REFUSED_STREAM, or the
    connection began closing before the call was sent): safe to send again."""


class GrpcDeadlineExceeded(GrpcError):
    """The call's own ``timeout`` passed (or the server said its deadline passed)."""

    def __init__(self, message: str) -> None:
        super().__init__(StatusCode.DEADLINE_EXCEEDED, message)


class GrpcMessageTooLarge(GrpcError):
    """A message over ``send_max`` or ``recv_max`` (gRPC's RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str) -> None:
        super().__init__(StatusCode.RESOURCE_EXHAUSTED, message)


def _error_for(code: StatusCode, message: str) -> GrpcError:
    if code is StatusCode.UNAVAILABLE:
        return GrpcUnavailable(message)
    if code is StatusCode.DEADLINE_EXCEEDED:
        return GrpcDeadlineExceeded(message)
    return GrpcError(code, message)


# ------------------------------------------------------------------------------------------------
# Targets


@attrs.frozen(kw_only=True)
class Target:
    """Where the server listens: TCP ``host``/``port`` or a unix socket ``path``."""

    host: str = ""
    port: int = 0
    path: str = ""
    #: The default ``:authority``: ``host:port``, or ``localhost`` for a unix socket (as grpc-go).
    authority: str = ""


def parse_target(target: str) -> Target:
    """Parse ``tcp://host:port``, bare ``host:port`` or ``unix:///path`` (also ``unix:path``)."""
    if target.startswith("unix://"):
        path = target[len("unix://") :]
        if not path:
            raise ValueError(f"gRPC target has no socket path: {target!r}")
        return Target(path=path, authority="localhost")
    if target.startswith("unix:"):
        return Target(path=target[len("unix:") :], authority="localhost")
    rest = target[len("tcp://") :] if target.startswith("tcp://") else target
    rest = rest.rstrip("/")
    if "://" in rest:
        raise ValueError(f"unsupported gRPC target scheme: {target!r} (use tcp:// or unix://)")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"gRPC target must be host:port: {target!r}")
    bare_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return Target(host=bare_host, port=int(port_text), authority=rest)


def _encode_timeout(seconds: float) -> bytes:
    """``grpc-timeout``: at most 8 digits and a unit; rounded up so the server never cuts short."""
    micros = max(1, math.ceil(seconds * 1_000_000))
    for unit, scale in ((b"u", 1), (b"m", 1_000), (b"S", 1_000_000), (b"M", 60_000_000)):
        value = -(-micros // scale)
        if value < 100_000_000:
            return str(value).encode() + unit
    return b"99999999H"


#: The connection's byte stream: the raw socket stream for plain TCP, a Trio stream otherwise
#: (TLS, unix sockets).
Transport = trio.abc.Stream | RawSocketStream


async def _close_forcefully(stream: Transport) -> None:
    if isinstance(stream, RawSocketStream):
        stream.close()
    else:
        await trio.aclose_forcefully(stream)


# ------------------------------------------------------------------------------------------------
# One call (one HTTP/2 stream)


@attrs.define(eq=False, slots=True)
class _Call:
    stream_id: int
    recv_max: int
    #: What we may still send on this stream (the peer's stream window).
    send_window: int
    data: bytearray = attrs.field(factory=bytearray)
    http_status: bytes = b""
    grpc_status: bytes | None = None
    grpc_message: bytes = b""
    done: trio.Event = attrs.field(factory=trio.Event)
    error: GrpcError | None = None
    #: Set when the send window may have grown (replaced each time a sender waits on it).
    window: trio.Event = attrs.field(factory=trio.Event)
    #: Received bytes not yet given back with a stream WINDOW_UPDATE.
    unacked: int = 0
    size_checked: bool = False
    #: Once the message prefix is in: the bytes the whole reply may take (prefix + message).
    expected: int = 0
    #: Stream state for the final RST_STREAM decision: the peer ended or reset its side, we sent
    #: END_STREAM, we sent RST_STREAM.
    remote_closed: bool = False
    local_closed: bool = False
    reset_sent: bool = False

    def fail(self, error: GrpcError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()
        self.window.set()

    def read_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b":status":
                self.http_status = value
            elif name == b"grpc-status":
                self.grpc_status = value
            elif name == b"grpc-message":
                self.grpc_message = value

    def result(self) -> bytes:
        """The reply message, or the call's error (after ``done``)."""
        if self.error is not None:
            raise self.error
        if self.http_status != b"200":
            code = _http_status_code(self.http_status)
            raise GrpcError(code, f"HTTP status {self.http_status.decode('latin-1')}")
        if self.grpc_status is None:
            raise GrpcError(StatusCode.INTERNAL, "server sent no grpc-status")
        if self.grpc_status != b"0":
            try:
                code = StatusCode(int(self.grpc_status))
            except ValueError:
                code = StatusCode.UNKNOWN
            if code is not StatusCode.OK:
                message = urllib.parse.unquote(self.grpc_message.decode("latin-1"))
                raise _error_for(code, message or code.name)
        data = self.data
        if len(data) < 5:
            raise GrpcError(StatusCode.INTERNAL, "server sent no reply message")
        compressed, length = _HEADER.unpack_from(data)
        if compressed:
            raise GrpcError(StatusCode.INTERNAL, "compressed reply (no encoding was offered)")
        if len(data) != 5 + length:
            raise GrpcError(StatusCode.INTERNAL, "reply is not exactly one message")
        self.data = bytearray()
        return bytes(memoryview(data)[5:])  # one copy (``data[5:]`` would make two)


def _http_status_code(status: bytes) -> StatusCode:
    # gRPC's mapping of HTTP statuses seen where a gRPC response was expected.
    return {
        b"400": StatusCode.INTERNAL,
        b"401": StatusCode.UNAUTHENTICATED,
        b"403": StatusCode.PERMISSION_DENIED,
        b"404": StatusCode.UNIMPLEMENTED,
        b"429": StatusCode.UNAVAILABLE,
        b"502": StatusCode.UNAVAILABLE,
        b"503": StatusCode.UNAVAILABLE,
        b"504": StatusCode.UNAVAILABLE,
    }.get(status, StatusCode.UNKNOWN)


_RESET_CODES: Final = {
    ErrorCode.CANCEL: StatusCode.CANCELLED,
    ErrorCode.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    ErrorCode.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def _error_code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"


# ------------------------------------------------------------------------------------------------
# One HTTP/2 connection

_MAX_STREAM_ID: Final = 2**31 - 1
_PING: Final = struct.Struct(">Q")


@attrs.define(eq=False)
class _Connection:
    """One HTTP/2 connection, run by :mod:`h2codec` framing: callers queue their frames and flush;
    a reader task parses the server's frames and delivers each reply to its waiting caller."""

    stream: Transport
    scheme: bytes
    calls: dict[int, _Call] = attrs.field(factory=dict)
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
    ) -> _Connection:
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
                status = _RESET_CODES.get(code, StatusCode.INTERNAL)  # type: ignore[call-overload]
                call.fail(
                    _error_for(status, f"stream reset by the server ({_error_code_name(code)})")
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

    def _check_size(self, call: _Call) -> None:
        call.size_checked = True
        _, length = _HEADER.unpack_from(call.data)
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

    def _overrun(self, call: _Call) -> None:
        """More DATA than the one reply message announced: fail now rather than keep it."""
        call.fail(GrpcError(StatusCode.INTERNAL, "reply is longer than its one message"))
        call.data = bytearray()
        self._reset(call)

    def _reset(self, call: _Call, code: ErrorCode = ErrorCode.CANCEL) -> None:
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
        call = _Call(stream_id=stream_id, recv_max=recv_max, send_window=self.peer_initial_window)
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
                await self._send_message(call, _HEADER.pack(0, len(message)) + message)
            else:
                await self._send_message(call, message, _HEADER.pack(0, len(message)))
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

    async def _send_message(self, call: _Call, message: bytes, prefix: bytes = b"") -> None:
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


# ------------------------------------------------------------------------------------------------
# The channel


class ChannelState(enum.Enum):
    CONNECTING = "connecting"  # the first attempt (or after GOAWAY): calls wait for it
    READY = "ready"
    DOWN = "down"  # the last attempt failed or the connection broke: calls fail at once
    CLOSED = "closed"


@attrs.define(eq=False)
class GrpcChannel:
    """Unary gRPC calls to one target over one multiplexed HTTP/2 connection.

    Build one with :func:`open_grpc_channel` or :func:`start_grpc_channel`.
    """

    target: Target
    authority: bytes
    ssl_context: ssl.SSLContext | None = None
    recv_max: int = DEFAULT_RECV_MAX
    send_max: int = 0  # 0 = unlimited
    connect_timeout: float = 2.0
    backoff_initial: float = 0.02
    backoff_max: float = 0.4
    keepalive: Keepalive = attrs.field(factory=Keepalive)
    state: ChannelState = ChannelState.CONNECTING
    #: Why the last connection attempt failed (for messages).
    last_error: str = ""
    _conn: _Connection | None = None
    _state_changed: trio.Event = attrs.field(factory=trio.Event)
    _cancel_scope: trio.CancelScope | None = None
    _connects: int = 0
    _retries: int = 0
    _header_blocks: dict[str, bytes] = attrs.field(factory=dict)

    @property
    def connects(self) -> int:
        """How many connections were established so far (for tests and statistics)."""
        return self._connects

    def _set_state(self, state: ChannelState) -> None:
        if self.state is ChannelState.CLOSED:
            return  # final
        self.state = state
        self._state_changed.set()
        self._state_changed = trio.Event()

    async def unary_unary(
        self,
        method: str,
        message: bytes,
        *,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        """Call ``method`` (``/package.Service/Method``) with a serialised request message.

        The deadline is the enclosing cancel scopes' (Trio style: ``with trio.fail_after(t):``);
        it travels as ``grpc-timeout``. When a scope is cancelled, the stream is reset
        (``RST_STREAM(CANCEL)``) and ``trio.Cancelled`` propagates.

        A call the server did not process (it sent GOAWAY below the call's stream, or refused the
        stream) is sent once more, on the next connection, within the same deadline.
        """
        if self.send_max and len(message) > self.send_max:
            raise GrpcMessageTooLarge(
                f"sent message larger than max ({len(message)} vs. {self.send_max})"
            )
        try:
            return await self._call_once(method, message, metadata)
        except GrpcNotProcessed:
            self._retries += 1
            return await self._call_once(method, message, metadata)

    @property
    def retries(self) -> int:
        """Calls sent again because the server had not processed them (GOAWAY, refused)."""
        return self._retries

    async def _call_once(
        self, method: str, message: bytes, metadata: Sequence[tuple[str, str]]
    ) -> bytes:
        conn = await self._ready_connection()
        block = self._header_blocks.get(method)
        if block is None:
            # The fields that never change, encoded once per method (scheme and authority are
            # the channel's).
            block = self._header_blocks[method] = h2codec.request_header_block(
                scheme=b"https" if self.ssl_context is not None else b"http",
                authority=self.authority,
                path=method.encode(),
                user_agent=_USER_AGENT,
            )
        deadline = trio.current_effective_deadline()
        if deadline != math.inf:
            block += h2codec.timeout_field(_encode_timeout(deadline - trio.current_time()))
        for key, value in metadata:
            block += h2codec.literal_field(key.lower().encode(), value.encode())
        return await conn.unary(block, message, self.recv_max)

    async def _ready_connection(self) -> _Connection:
        while True:
            state = self.state
            if state is ChannelState.READY and self._conn is not None:
                if not self._conn.unusable.is_set():
                    return self._conn
            elif state is ChannelState.DOWN:
                raise GrpcUnavailable(f"gRPC server unavailable: {self.last_error}")
            elif state is ChannelState.CLOSED:
                raise GrpcUnavailable("gRPC channel closed")
            # CONNECTING, or READY with a connection on its way out: wait for the maintainer.
            # Bounded: the maintainer changes state within connect_timeout, and callers run under
            # their deadline.
            with trio.move_on_after(self.connect_timeout + 1):
                await self._state_changed.wait()
                continue
            raise GrpcUnavailable("gRPC connection attempt did not finish")

    async def aclose(self) -> None:
        """Close the connection and stop the maintainer; in-flight calls fail as unavailable."""
        self._set_state(ChannelState.CLOSED)
        if self._conn is not None:
            self._conn.close()
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        await trio.lowlevel.checkpoint()

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._cancel_scope = nursery.cancel_scope
            task_status.started()
            await self._maintain(nursery)

    async def _maintain(self, nursery: trio.Nursery) -> None:
        failures = 0
        while self.state is not ChannelState.CLOSED:
            try:
                conn = await self._connect()
            except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                # trio wraps TLS failures (a certificate refused...): the cause says why.
                reason = exc.__cause__ if exc.__cause__ is not None else exc
                self.last_error = str(reason) or type(reason).__name__
                self._set_state(ChannelState.DOWN)
                await trio.sleep(self._backoff(failures))
                failures += 1
                continue
            failures = 0
            self._connects += 1
            self._conn = conn
            nursery.start_soon(conn.run)
            self._set_state(ChannelState.READY)
            await conn.unusable.wait()
            self._conn = None
            if conn.calm_down and self.keepalive.interval:
                self.keepalive = attrs.evolve(self.keepalive, interval=self.keepalive.interval * 2)
            if conn.graceful:
                # GOAWAY (a server restarting or draining, usually closing the socket right after):
                # connect again at once; calls wait for that attempt instead of failing.
                self._set_state(ChannelState.CONNECTING)
            else:
                self.last_error = "connection lost"
                self._set_state(ChannelState.DOWN)

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures, 30))
        return base * random.uniform(0.8, 1.2)  # jitter: gateways do not retry in lockstep

    async def _connect(self) -> _Connection:
        target = self.target
        with trio.fail_after(self.connect_timeout):
            stream: Transport
            if target.path:
                stream = await trio.open_unix_socket(target.path)
            elif self.ssl_context is None:
                # Plain TCP (the common case) on the gateway's raw socket stream: no checkpoints
                # or conflict detection per send and receive (docs/decisions.md).
                stream = await open_raw_tcp_stream(target.host, target.port)
            else:
                stream = await trio.open_tcp_stream(target.host, target.port)
            if self.ssl_context is not None:
                assert isinstance(stream, trio.SocketStream)
                tls = trio.SSLStream(
                    stream,
                    self.ssl_context,
                    server_hostname=self.authority.decode().rsplit(":", 1)[0] or target.host,
                    https_compatible=True,
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
                if tls.selected_alpn_protocol() not in (None, "h2"):
                    await trio.aclose_forcefully(tls)
                    raise OSError("gRPC server did not agree to HTTP/2 (ALPN)")
                stream = tls
        return _Connection.start(
            stream, b"https" if self.ssl_context is not None else b"http", self.keepalive
        )


def _make_channel(
    target: str,
    *,
    authority: str,
    ssl_context: ssl.SSLContext | None,
    recv_max: int,
    send_max: int,
    connect_timeout: float,
    backoff_max: float,
    keepalive: Keepalive | None,
) -> GrpcChannel:
    parsed = parse_target(target)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2"])
    return GrpcChannel(
        target=parsed,
        authority=(authority or parsed.authority).encode("idna"),
        ssl_context=ssl_context,
        recv_max=recv_max or DEFAULT_RECV_MAX,
        send_max=max(send_max, 0),
        connect_timeout=connect_timeout,
        backoff_max=backoff_max,
        keepalive=keepalive or Keepalive(),
    )


async def start_grpc_channel(
    nursery: trio.Nursery,
    target: str,
    *,
    authority: str = "",
    ssl_context: ssl.SSLContext | None = None,
    recv_max: int = DEFAULT_RECV_MAX,
    send_max: int = 0,
    connect_timeout: float = 2.0,
    backoff_max: float = 0.4,
    keepalive: Keepalive | None = None,
) -> GrpcChannel:
    """Start a channel whose connection task lives in ``nursery``; stop it with ``aclose()``.

    ``recv_max``/``send_max`` follow Tyk's ``grpc_recv_max_size``/``grpc_send_max_size``: 0 means
    gRPC's default (4 MiB to receive, unlimited to send). ``authority`` overrides ``:authority``.
    ``keepalive``: see :class:`Keepalive` (default: PING after 10 s of silence, 5 s for the ACK).
    """
    channel = _make_channel(
        target,
        authority=authority,
        ssl_context=ssl_context,
        recv_max=recv_max,
        send_max=send_max,
        connect_timeout=connect_timeout,
        backoff_max=backoff_max,
        keepalive=keepalive,
    )
    await nursery.start(channel._run)
    return channel


@asynccontextmanager
async def open_grpc_channel(
    target: str,
    *,
    authority: str = "",
    ssl_context: ssl.SSLContext | None = None,
    recv_max: int = DEFAULT_RECV_MAX,
    send_max: int = 0,
    connect_timeout: float = 2.0,
    backoff_max: float = 0.4,
    keepalive: Keepalive | None = None,
) -> AsyncIterator[GrpcChannel]:
    """A channel for the duration of the ``async with`` block (see :func:`start_grpc_channel`)."""
    async with trio.open_nursery() as nursery:
        channel = await start_grpc_channel(
            nursery,
            target,
            authority=authority,
            ssl_context=ssl_context,
            recv_max=recv_max,
            send_max=send_max,
            connect_timeout=connect_timeout,
            backoff_max=backoff_max,
            keepalive=keepalive,
        )
        try:
            yield channel
        finally:
            await channel.aclose()
