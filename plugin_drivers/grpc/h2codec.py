"""Just enough HTTP/2 for unary gRPC calls from a client (pure: bytes in, frames out).

A generic HTTP/2 state machine (``h2``) spent more than half of a hook call's CPU on work a unary
gRPC client never needs: header validation, a per-stream state machine, HPACK's encoder with its
dynamic table. This module keeps only the wire format:

* **Frames**: :func:`frame` encodes one; :class:`FrameParser` cuts a byte stream (in any chunking)
  into :class:`Frame` records, strips padding and priority fields, and joins HEADERS with its
  CONTINUATIONs so that every HEADERS it yields carries one complete header block.
* **Request headers**: :func:`request_header_block` encodes the parts of a call's header block that
  never change (per scheme, authority and path) once; :func:`timeout_field` and
  :func:`literal_field` add the per-call ones. Every field is an HPACK *literal without indexing*
  (or an indexed static-table entry), so the encoder keeps no state and the peer's decoder table
  is never touched. The server's header blocks are decoded with ``hpack.Decoder`` by the caller.

Connection-level rules (windows, stream ids, settings) live in the client, which owns the state.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from hpack.table import HeaderTable

__all__ = [
    "CLIENT_PREFACE",
    "DEFAULT_MAX_FRAME_SIZE",
    "ErrorCode",
    "Flag",
    "Frame",
    "FrameParser",
    "FrameType",
    "H2ProtocolError",
    "Setting",
    "data_frames",
    "frame",
    "goaway_frame",
    "headers_frames",
    "is_table_neutral",
    "literal_field",
    "parse_goaway",
    "parse_settings",
    "ping_ack_frame",
    "request_header_block",
    "rst_stream_frame",
    "settings_frame",
    "table_size_update",
    "timeout_field",
    "window_update_frame",
]

CLIENT_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_MAX_FRAME_SIZE: Final = 16_384
MAX_WINDOW: Final = 2**31 - 1
#: A header block (HEADERS + CONTINUATIONs) longer than this ends the connection: a bound on
#: what a misbehaving peer can make us buffer (our advertised header list limit is 64 KiB).
MAX_HEADER_BLOCK: Final = 1024 * 1024

# Frame header: 24-bit length (as 8 + 16 bits), type, flags, reserved bit + 31-bit stream id.
_FRAME_HEADER: Final = struct.Struct(">BHBBL")
_U32: Final = struct.Struct(">L")
_SETTING: Final = struct.Struct(">HL")
_GOAWAY: Final = struct.Struct(">LL")


class FrameType:
    """Frame type codes (plain ints, not an enum: they are compared on every frame)."""

    DATA: Final = 0x0
    HEADERS: Final = 0x1
    PRIORITY: Final = 0x2
    RST_STREAM: Final = 0x3
    SETTINGS: Final = 0x4
    PUSH_PROMISE: Final = 0x5
    PING: Final = 0x6
    GOAWAY: Final = 0x7
    WINDOW_UPDATE: Final = 0x8
    CONTINUATION: Final = 0x9


class Flag:
    """Frame flags (plain ints: ``enum.IntFlag`` arithmetic cost more than the frame parsing)."""

    END_STREAM: Final = 0x1
    ACK: Final = 0x1
    END_HEADERS: Final = 0x4
    PADDED: Final = 0x8
    PRIORITY: Final = 0x20


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class H2ProtocolError(Exception):
    """The peer broke HTTP/2: the connection ends with GOAWAY(``code``)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code


class Frame(NamedTuple):
    """One received frame. ``payload`` has padding (and HEADERS' priority fields) removed; a
    HEADERS frame carries its whole header block. ``flow`` is the flow-controlled length (the
    DATA frame's full payload, padding included)."""

    type: int
    flags: int
    stream_id: int
    payload: bytes
    flow: int = 0


# ------------------------------------------------------------------------------------------------
# Encoding frames


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME_HEADER.pack(size >> 16, size & 0xFFFF, type_, flags, stream_id) + payload


def headers_frames(stream_id: int, block: bytes, *, end_stream: bool, max_frame_size: int) -> bytes:
    """HEADERS (+ CONTINUATIONs when the block is larger than the peer's frame size)."""
    end = Flag.END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return frame(FrameType.HEADERS, end | Flag.END_HEADERS, stream_id, block)
    chunks = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
    out = [frame(FrameType.HEADERS, end, stream_id, chunks[0])]
    for chunk in chunks[1:-1]:
        out.append(frame(FrameType.CONTINUATION, 0, stream_id, chunk))
    out.append(frame(FrameType.CONTINUATION, Flag.END_HEADERS, stream_id, chunks[-1]))
    return b"".join(out)


def data_frames(stream_id: int, data: bytes, *, end_stream: bool, max_frame_size: int) -> bytes:
    """``data`` as DATA frames of at most ``max_frame_size``; END_STREAM on the last one."""
    if len(data) <= max_frame_size:
        return frame(FrameType.DATA, Flag.END_STREAM if end_stream else 0, stream_id, data)
    view = memoryview(data)
    out = []
    last = len(data) - 1
    for start in range(0, len(data), max_frame_size):
        stop = start + max_frame_size
        flags = Flag.END_STREAM if end_stream and stop > last else 0
        out.append(frame(FrameType.DATA, flags, stream_id, bytes(view[start:stop])))
    return b"".join(out)


def settings_frame(settings: Iterable[tuple[int, int]] = (), *, ack: bool = False) -> bytes:
    payload = b"".join(_SETTING.pack(key, value) for key, value in settings)
    return frame(FrameType.SETTINGS, Flag.ACK if ack else 0, 0, payload)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream_frame(stream_id: int, code: ErrorCode) -> bytes:
    return frame(FrameType.RST_STREAM, 0, stream_id, _U32.pack(code))


def ping_frame(payload: bytes) -> bytes:
    """A PING (``payload``: 8 bytes) the peer must answer with an ACK carrying the same bytes."""
    return frame(FrameType.PING, 0, 0, payload)


def ping_ack_frame(payload: bytes) -> bytes:
    return frame(FrameType.PING, Flag.ACK, 0, payload)


def goaway_frame(last_stream_id: int, code: ErrorCode) -> bytes:
    return frame(FrameType.GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code))


# ------------------------------------------------------------------------------------------------
# Decoding frame payloads


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def parse_goaway(payload: bytes) -> tuple[int, int]:
    """(last stream id, error code)."""
    if len(payload) < 8:
        raise H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY too short")
    last, code = _GOAWAY.unpack_from(payload)
    return last & MAX_WINDOW, code


def parse_u32(payload: bytes, what: str) -> int:
    """The 4-byte body of RST_STREAM (error code) or WINDOW_UPDATE (increment, top bit dropped)."""
    if len(payload) != 4:
        raise H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"{what} payload is not 4 bytes")
    return _U32.unpack(payload)[0]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------
# The frame parser


class FrameParser:
    """Bytes (in any chunking) -> complete :class:`Frame` records.

    ``max_frame_size`` is the limit *we* advertised (SETTINGS_MAX_FRAME_SIZE): a longer frame is a
    FRAME_SIZE_ERROR. Frame types this client does not know pass through; the caller ignores them.
    """

    __slots__ = ("_buffer", "_headers", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        #: A HEADERS frame waiting for its CONTINUATIONs: (stream id, flags, fragments).
        self._headers: tuple[int, int, list[bytes]] | None = None

    def feed(self, data: bytes | bytearray) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset, available = 0, len(buffer)
        unpack = _FRAME_HEADER.unpack_from
        while available - offset >= 9:
            hi, lo, type_, flags, stream_id = unpack(buffer, offset)
            size = (hi << 16) | lo
            if size > self.max_frame_size:
                raise H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"frame of {size} bytes")
            end = offset + 9 + size
            if end > available:
                break
            payload = bytes(buffer[offset + 9 : end])
            offset = end
            received = self._frame(type_, flags, stream_id & MAX_WINDOW, payload)
            if received is not None:
                frames.append(received)
        del buffer[:offset]
        return frames

    def _frame(self, type_: int, flags: int, stream_id: int, payload: bytes) -> Frame | None:
        pending = self._headers
        if pending is not None:
            if type_ != FrameType.CONTINUATION or stream_id != pending[0]:
                raise H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
            fragments = pending[2]
            fragments.append(payload)
            if sum(map(len, fragments)) > MAX_HEADER_BLOCK:
                raise H2ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
            if not flags & Flag.END_HEADERS:
                return None
            self._headers = None
            return Frame(
                FrameType.HEADERS, pending[1] | Flag.END_HEADERS, stream_id, b"".join(fragments)
            )
        if type_ == FrameType.DATA:
            flow = len(payload)
            if flags & Flag.PADDED:
                payload = _unpad(payload)
            return Frame(type_, flags, stream_id, payload, flow)
        if type_ == FrameType.HEADERS:
            if flags & Flag.PADDED:
                payload = _unpad(payload)
            if flags & Flag.PRIORITY:
                if len(payload) < 5:
                    raise H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS priority cut short")
                payload = payload[5:]
            if not flags & Flag.END_HEADERS:
                self._headers = (stream_id, flags, [payload])
                return None
            return Frame(type_, flags, stream_id, payload)
        if type_ == FrameType.CONTINUATION:
            raise H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        return Frame(type_, flags, stream_id, payload)


def _unpad(payload: bytes) -> bytes:
    if not payload or payload[0] >= len(payload):
        raise H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


# ------------------------------------------------------------------------------------------------
# HPACK, encoder side: stateless literals


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1 integer with an N-bit prefix; ``first`` holds the representation's bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: bytes) -> bytes:
    # Raw octets (no Huffman): encoding costs nothing and the values here are short.
    return _integer(len(text), 7, 0) + text


def _static_indexes() -> dict[bytes, int]:
    names: dict[bytes, int] = {}
    for index, (name, _) in enumerate(HeaderTable.STATIC_TABLE, start=1):
        names.setdefault(name, index)
    return names


_STATIC_NAMES: Final = _static_indexes()
_STATIC_FIELDS: Final = {
    field: index for index, field in enumerate(HeaderTable.STATIC_TABLE, start=1)
}


def _read_int(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    """An RFC 7541 integer at ``block[i]``: (value, index after it); IndexError if cut short."""
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while True:
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def is_table_neutral(block: bytes) -> bool:
    """Whether decoding ``block`` leaves an HPACK decoder's dynamic table as it was: only indexed
    fields and literals without indexing / never indexed (no insertion, no size update).

    Such a block always decodes to the same fields while the table is unchanged, so a decoder
    may reuse its earlier result (a gRPC server repeats the same few blocks on every call).
    False for a block cut short (let the real decoder report it).
    """
    i, size = 0, len(block)
    try:
        while i < size:
            byte = block[i]
            if byte & 0x80:  # indexed field
                _, i = _read_int(block, i, 7)
            elif byte & 0xE0 == 0:  # literal without indexing (0000) or never indexed (0001)
                name_index, i = _read_int(block, i, 4)
                if name_index == 0:
                    length, i = _read_int(block, i, 7)
                    i += length
                length, i = _read_int(block, i, 7)
                i += length
            else:  # incremental indexing (01) or a table size update (001)
                return False
    except IndexError:
        return False
    return i == size


def literal_field(name: bytes, value: bytes) -> bytes:
    """One header field as a *literal without indexing* (RFC 7541 §6.2.2); the name from the
    static table when it is there. Leaves the peer's dynamic table alone."""
    index = _STATIC_NAMES.get(name)
    if index is not None:
        return _integer(index, 4, 0x00) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def _field(name: bytes, value: bytes) -> bytes:
    index = _STATIC_FIELDS.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)  # an indexed static entry: stateless too
    return literal_field(name, value)


def table_size_update(size: int) -> bytes:
    """A dynamic table size update (RFC 7541 §6.3), for the start of a header block."""
    return _integer(size, 5, 0x20)


def request_header_block(
    *, scheme: bytes, authority: bytes, path: bytes, user_agent: bytes
) -> bytes:
    """The fixed fields of a unary gRPC request (everything except ``grpc-timeout`` and
    metadata), encoded once per (scheme, authority, path)."""
    fields: Sequence[tuple[bytes, bytes]] = (
        (b":method", b"POST"),
        (b":scheme", scheme),
        (b":path", path),
        (b":authority", authority),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", user_agent),
    )
    return b"".join(_field(name, value) for name, value in fields)


_TIMEOUT_NAME: Final = b"\x00" + _string(b"grpc-timeout")


def timeout_field(value: bytes) -> bytes:
    """``grpc-timeout`` (new on every call, so never indexed: it would only churn the table)."""
    return _TIMEOUT_NAME + _string(value)
