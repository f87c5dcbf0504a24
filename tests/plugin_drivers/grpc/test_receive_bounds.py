"""The client's receive side against a misbehaving server written frame by frame (memory streams):
a reply is bounded by its message prefix, and flow-control violations end the stream or the
connection as RFC 9113 says (a well-behaved ``h2`` server cannot produce these frames)."""

from __future__ import annotations

import struct

import hpack
import pytest
import trio
import trio.testing

from plugin_drivers.grpc import h2client, h2codec
from plugin_drivers.grpc.client import GrpcError, GrpcUnavailable
from plugin_drivers.grpc.common import NO_KEEPALIVE
from plugin_drivers.grpc.connection import Connection
from plugin_drivers.grpc.h2codec import ErrorCode, Flag, FrameType

PREFACE_LEN = len(h2codec.CLIENT_PREFACE)


def block() -> bytes:
    static = h2codec.request_header_block(
        scheme=b"http", authority=b"test", path=b"/s/M", user_agent=b"t"
    )
    return static + h2codec.timeout_field(b"5S")


class RawServer:
    """Reads the client's frames; the test writes whatever frames it likes."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.parser = h2codec.FrameParser()
        self.frames: list[h2codec.Frame] = []
        self.arrived = trio.Event()
        self.request = trio.Event()  # a request's DATA (END_STREAM) arrived
        self._skip = PREFACE_LEN

    async def run(self) -> None:
        await self.stream.send_all(h2codec.settings_frame())
        while data := await self.stream.receive_some():
            if self._skip:
                cut = min(self._skip, len(data))
                data, self._skip = data[cut:], self._skip - cut
            for frame in self.parser.feed(data):
                self.frames.append(frame)
                if frame.type == FrameType.DATA and frame.flags & Flag.END_STREAM:
                    self.request.set()
            self.arrived.set()
            self.arrived = trio.Event()

    async def send(self, *frames: bytes) -> None:
        await self.stream.send_all(b"".join(frames))

    def sent(self, type_: int) -> list[h2codec.Frame]:
        return [f for f in self.frames if f.type == type_]

    async def wait_for(self, type_: int) -> h2codec.Frame:
        while not self.sent(type_):
            await self.arrived.wait()
        return self.sent(type_)[0]


def reply_head(stream_id: int) -> bytes:
    head = hpack.Encoder().encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
    return h2codec.frame(FrameType.HEADERS, Flag.END_HEADERS, stream_id, head)


def data(stream_id: int, payload: bytes) -> bytes:
    return h2codec.data_frames(stream_id, payload, end_stream=False, max_frame_size=16384)


@pytest.fixture
async def pair(nursery: trio.Nursery) -> tuple[Connection, RawServer]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = Connection.start(client_stream, b"http", NO_KEEPALIVE)
    server = RawServer(server_stream)
    nursery.start_soon(server.run)
    nursery.start_soon(conn.run)
    return conn, server


async def call_answered_with(
    conn: Connection, server: RawServer, frames: bytes, wait_for: int, recv_max: int = 1 << 20
) -> tuple[BaseException, h2codec.Frame]:
    """Start a call, let the server answer it with ``frames``; the call's error and the first
    frame of type ``wait_for`` the client sent back."""
    errors: list[BaseException] = []

    async def run_call() -> None:
        with pytest.raises((GrpcError, GrpcUnavailable)) as info:
            await conn.unary(block(), b"hello", recv_max)
        errors.append(info.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_call)
        await server.request.wait()
        with trio.fail_after(5):
            await server.send(frames)
            answer = await server.wait_for(wait_for)
    return errors[0], answer


async def test_a_reply_longer_than_its_message_fails_at_once_and_is_not_kept(
    pair: tuple[Connection, RawServer], autojump_clock: trio.testing.MockClock
) -> None:
    conn, server = pair
    # The prefix announces 10 bytes; a megabyte follows, and no END_STREAM ever comes.
    reply = reply_head(1) + data(1, struct.pack(">BI", 0, 10) + b"x" * 1_000_000)
    error, rst = await call_answered_with(conn, server, reply, FrameType.RST_STREAM)
    assert "longer than its one message" in str(error)
    assert rst.stream_id == 1
    assert h2codec.parse_u32(rst.payload, "RST_STREAM") == ErrorCode.CANCEL
    assert conn.calls == {}


@pytest.mark.parametrize("stream_id", [0, 1])
async def test_a_window_update_of_zero_is_an_error(
    pair: tuple[Connection, RawServer], stream_id: int, autojump_clock: trio.testing.MockClock
) -> None:
    conn, server = pair
    # RFC 9113 §6.9: on a stream, a stream error; on the connection, a connection error.
    error, answer = await call_answered_with(
        conn,
        server,
        h2codec.window_update_frame(stream_id, 0),
        FrameType.RST_STREAM if stream_id else FrameType.GOAWAY,
    )
    if stream_id:
        assert h2codec.parse_u32(answer.payload, "RST_STREAM") == ErrorCode.PROTOCOL_ERROR
        assert not conn.closed  # only the stream ended
    else:
        assert h2codec.parse_goaway(answer.payload)[1] == ErrorCode.PROTOCOL_ERROR
        assert isinstance(error, GrpcUnavailable)


async def test_a_stream_window_over_2_31_is_a_flow_control_error(
    pair: tuple[Connection, RawServer], autojump_clock: trio.testing.MockClock
) -> None:
    conn, server = pair
    frames = h2codec.window_update_frame(1, 2**31 - 1)
    error, rst = await call_answered_with(conn, server, frames, FrameType.RST_STREAM)
    assert h2codec.parse_u32(rst.payload, "RST_STREAM") == ErrorCode.FLOW_CONTROL_ERROR
    assert "window" in str(error)


async def test_data_beyond_the_connection_window_ends_the_connection(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    # A small window, so that one write of the server's overruns it before any grant.
    monkeypatch.setattr(h2client, "CONNECTION_WINDOW", 100_000)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = Connection.start(client_stream, b"http", NO_KEEPALIVE)
    server = RawServer(server_stream)
    nursery.start_soon(server.run)
    nursery.start_soon(conn.run)
    reply = reply_head(1) + data(1, struct.pack(">BI", 0, 1 << 21) + b"x" * 120_000)
    error, goaway = await call_answered_with(
        conn, server, reply, FrameType.GOAWAY, recv_max=1 << 22
    )
    assert h2codec.parse_goaway(goaway.payload)[1] == ErrorCode.FLOW_CONTROL_ERROR
    assert isinstance(error, GrpcUnavailable)
