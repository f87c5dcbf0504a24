"""The client's HTTP/2 connection against ``h2`` as the server (memory streams): settings the
server changes mid-connection, pings, padded and split frames, flow control, resets."""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trio
import trio.testing

from plugin_drivers.grpc import h2codec
from plugin_drivers.grpc.client import GrpcError, StatusCode
from plugin_drivers.grpc.connection import Connection

GRPC_OK = [(b"grpc-status", b"0")]


def block(timeout: bytes = b"5S") -> bytes:
    static = h2codec.request_header_block(
        scheme=b"http", authority=b"test", path=b"/s/M", user_agent=b"t"
    )
    return static + h2codec.timeout_field(timeout)


class H2Server:
    """An h2 server that echoes each request's body (or answers with ``respond``)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.events: list[h2.events.Event] = []
        self.headers: list[list[tuple[bytes, bytes]]] = []
        self.bodies: dict[int, bytes] = {}
        self.respond: Callable[[int, bytes], None] = self.echo
        self.pad = 0
        self.acked = trio.Event()  # the client acknowledged our settings
        self.reset = trio.Event()  # the client reset a stream
        self.pong = trio.Event()  # the client answered our ping

    def echo(self, stream_id: int, body: bytes) -> None:
        conn = self.conn
        conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        size = conn.max_outbound_frame_size
        for start in range(0, len(body), size - self.pad - 1 if self.pad else size):
            chunk = body[start : start + (size - self.pad - 1 if self.pad else size)]
            conn.send_data(stream_id, chunk, pad_length=self.pad or None)
        conn.send_headers(stream_id, GRPC_OK, end_stream=True)

    async def run(self) -> None:
        self.conn.initiate_connection()
        await self.flush()
        while data := await self.stream.receive_some():
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.SettingsAcknowledged):
                    self.acked.set()
                elif isinstance(event, h2.events.StreamReset):
                    self.reset.set()
                elif isinstance(event, h2.events.PingAckReceived):
                    self.pong.set()
                if isinstance(event, h2.events.RequestReceived):
                    self.headers.append(list(event.headers or []))
                elif isinstance(event, h2.events.DataReceived):
                    assert event.stream_id is not None
                    self.bodies[event.stream_id] = self.bodies.get(event.stream_id, b"") + (
                        event.data or b""
                    )
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length or 0, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    assert event.stream_id is not None
                    self.respond(event.stream_id, self.bodies.pop(event.stream_id, b""))
            await self.flush()

    async def flush(self) -> None:
        if data := self.conn.data_to_send():
            await self.stream.send_all(data)


@pytest.fixture
async def pair(nursery: trio.Nursery) -> tuple[Connection, H2Server]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = Connection.start(client_stream, b"http")
    server = H2Server(server_stream)
    nursery.start_soon(server.run)
    nursery.start_soon(conn.run)
    return conn, server


async def test_settings_changes_pings_and_padding(pair: tuple[Connection, H2Server]) -> None:
    conn, server = pair
    with trio.fail_after(5):
        assert await conn.unary(block(), b"first", 1 << 20) == b"first"
        # (h2 counts an ack against its newest pending settings: let the first one land.)
        await server.acked.wait()
        # The server shrinks its HPACK table, raises its frame size, pings, pads its frames.
        server.conn.update_settings(
            {
                h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: 20_000,
            }
        )
        server.conn.ping(b"12345678")
        server.pad = 7
        server.acked = trio.Event()
        await server.flush()
        await server.acked.wait()  # the next header block must start with a table size update
        big = bytes(range(256)) * 200  # 51 200 bytes: several frames each way
        assert await conn.unary(block(b"100m"), big, 1 << 20) == big
        await server.pong.wait()
    assert conn.h2.peer_max_frame == 20_000
    assert conn.h2.peer_table_size == 0
    kinds = {type(e) for e in server.events}
    assert h2.events.SettingsAcknowledged in kinds
    # Both requests' headers decoded on the server (the second after a table size update).
    assert [dict(h)[b"grpc-timeout"] for h in server.headers] == [b"5S", b"100m"]
    assert dict(server.headers[0])[b":path"] == b"/s/M"
    assert conn.h2.next_stream_id == 5  # odd ids, in order


async def test_request_larger_than_the_initial_window_waits_for_updates(
    pair: tuple[Connection, H2Server],
) -> None:
    conn, _ = pair
    big = b"x" * 200_000  # over the default 65 535-byte windows: needs WINDOW_UPDATEs
    with trio.fail_after(5):
        assert await conn.unary(block(), big, 1 << 20) == big
    assert conn.h2.send_window < 65_535 + 200_005  # windows were consumed and given back


async def test_server_reset_and_status(pair: tuple[Connection, H2Server]) -> None:
    conn, server = pair

    def reset(stream_id: int, body: bytes) -> None:
        server.conn.reset_stream(stream_id, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)

    server.respond = reset
    with trio.fail_after(5), pytest.raises(GrpcError) as info:
        await conn.unary(block(), b"m", 1 << 20)
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert not conn.calls


async def test_cancelled_call_resets_its_stream(pair: tuple[Connection, H2Server]) -> None:
    conn, server = pair
    server.respond = lambda stream_id, body: None  # never answers
    with trio.move_on_after(0.2) as scope:
        await conn.unary(block(), b"m", 1 << 20)
    assert scope.cancelled_caught
    with trio.fail_after(5):
        await server.reset.wait()
    (reset,) = [e for e in server.events if isinstance(e, h2.events.StreamReset)]
    assert reset.error_code == h2.errors.ErrorCodes.CANCEL
    assert reset.stream_id == 1
