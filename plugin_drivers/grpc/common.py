"""What the gRPC client's parts share: targets, keepalive settings, status codes and errors."""

from __future__ import annotations

import enum
from typing import Final

import attrs

__all__ = [
    "DEFAULT_RECV_MAX",
    "GrpcDeadlineExceeded",
    "GrpcError",
    "GrpcMessageTooLarge",
    "GrpcNotProcessed",
    "GrpcUnavailable",
    "Keepalive",
    "StatusCode",
    "Target",
    "error_for",
    "parse_target",
]

#: gRPC's default limit for a received message (Tyk's ``grpc_recv_max_size`` = 0).
DEFAULT_RECV_MAX: Final = 4 * 1024 * 1024


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


def error_for(code: StatusCode, message: str) -> GrpcError:
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
