"""A small gRPC client on Trio: unary calls, multiplexed on one HTTP/2 connection.

Only what the coprocess protocol needs: unary-unary calls with raw (already serialised) messages.
grpcio is not used at run time (it runs its own threads and event loop, which Trio cannot cancel).

Shape of the machinery:

* :class:`GrpcChannel` owns one target. A *maintainer* task (owned by the nursery the channel was
  started in) keeps one :class:`~.connection.Connection` up: connect, serve until it is lost, back
  off with jitter, connect again. The backoff is capped at ``backoff_max`` (0.4 s by default, with
  ±20 % jitter), so traffic flows again well under a second after the server returns.
* While there is no connection because the last attempt failed, calls fail *at once* with
  :class:`GrpcUnavailable` instead of waiting for a server that is not there. Only the very first
  connect (and a reconnect after a graceful GOAWAY) makes calls wait, bounded by their deadline.
* HTTP/2 is spoken with :mod:`.h2codec` (frames and a pre-encoded request header block; a
  generic state machine such as ``h2`` cost more than half of a call's CPU). The connection's
  state (stream ids, both sides' windows, the server's settings, per-call receive buffers and
  their bounds) lives in the pure :class:`~.h2client.H2ClientConnection` (bytes in, events and
  bytes out, no Trio); :class:`~.connection.Connection` is its thin Trio shell.
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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from trio_gateway.drivers import open_raw_tcp_stream

from . import h2codec

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

from .call import encode_timeout
from .common import (
    DEFAULT_RECV_MAX,
    GrpcDeadlineExceeded,
    GrpcError,
    GrpcMessageTooLarge,
    GrpcNotProcessed,
    GrpcUnavailable,
    Keepalive,
    StatusCode,
    Target,
    parse_target,
)
from .connection import USER_AGENT, Connection, Transport

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
    _conn: Connection | None = None
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
                user_agent=USER_AGENT,
            )
        deadline = trio.current_effective_deadline()
        if deadline != math.inf:
            block += h2codec.timeout_field(encode_timeout(deadline - trio.current_time()))
        for key, value in metadata:
            block += h2codec.literal_field(key.lower().encode(), value.encode())
        return await conn.unary(block, message, self.recv_max)

    async def _ready_connection(self) -> Connection:
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

    async def _connect(self) -> Connection:
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
        return Connection.start(
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
