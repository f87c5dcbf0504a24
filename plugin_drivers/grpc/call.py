"""One unary call's stream on the client connection: its state, headers and result.

Pure bookkeeping (no I/O, no Trio): :class:`~.h2client.H2ClientConnection` feeds it what the
server sent and the caller reads :meth:`Call.result` once the stream has ended.
"""

from __future__ import annotations

import math
import struct
import urllib.parse
from collections.abc import Sequence
from typing import Any, Final

import attrs

from .common import GrpcError, StatusCode, error_for
from .h2codec import ErrorCode

__all__ = [
    "MESSAGE_PREFIX",
    "RESET_CODES",
    "Call",
    "encode_timeout",
    "error_code_name",
    "http_status_code",
]

#: gRPC message prefix: compressed flag, length.
MESSAGE_PREFIX: Final = struct.Struct(">BI")


def encode_timeout(seconds: float) -> bytes:
    """``grpc-timeout``: at most 8 digits and a unit; rounded up so the server never cuts short."""
    micros = max(1, math.ceil(seconds * 1_000_000))
    for unit, scale in ((b"u", 1), (b"m", 1_000), (b"S", 1_000_000), (b"M", 60_000_000)):
        value = -(-micros // scale)
        if value < 100_000_000:
            return str(value).encode() + unit
    return b"99999999H"


@attrs.define(eq=False, slots=True)
class Call:
    stream_id: int
    recv_max: int
    #: What we may still send on this stream (the peer's stream window).
    send_window: int
    data: bytearray = attrs.field(factory=bytearray)
    http_status: bytes = b""
    grpc_status: bytes | None = None
    grpc_message: bytes = b""
    #: The reply is complete (END_STREAM) or the call failed (``error``): nothing more is kept.
    ended: bool = False
    error: GrpcError | None = None
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
    #: The caller's own handle for waking up when the call ends (the Trio shell keeps its event
    #: here: no look-up per call); the protocol core never reads it.
    waiter: Any = None

    def fail(self, error: GrpcError) -> None:
        if not self.ended:
            self.error = error
            self.ended = True

    def read_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b":status":
                self.http_status = value
            elif name == b"grpc-status":
                self.grpc_status = value
            elif name == b"grpc-message":
                self.grpc_message = value

    def result(self) -> bytes:
        """The reply message, or the call's error (once ``ended``)."""
        if self.error is not None:
            raise self.error
        if self.http_status != b"200":
            code = http_status_code(self.http_status)
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
                raise error_for(code, message or code.name)
        data = self.data
        if len(data) < 5:
            raise GrpcError(StatusCode.INTERNAL, "server sent no reply message")
        compressed, length = MESSAGE_PREFIX.unpack_from(data)
        if compressed:
            raise GrpcError(StatusCode.INTERNAL, "compressed reply (no encoding was offered)")
        if len(data) != 5 + length:
            raise GrpcError(StatusCode.INTERNAL, "reply is not exactly one message")
        self.data = bytearray()
        return bytes(memoryview(data)[5:])  # one copy (``data[5:]`` would make two)


def http_status_code(status: bytes) -> StatusCode:
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


RESET_CODES: Final = {
    ErrorCode.CANCEL: StatusCode.CANCELLED,
    ErrorCode.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    ErrorCode.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def error_code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"
