"""The sans-I/O HTTP/2 client (``h2client.py``) on its own, with ``h2`` as the server, in memory.

No Trio, no sockets: bytes are moved between the two state machines by hand, so each test sees
exactly which events and which frames one step produces.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from plugin_drivers.grpc import h2codec
from plugin_drivers.grpc.call import MESSAGE_PREFIX, Call
from plugin_drivers.grpc.common import (
    GrpcError,
    GrpcMessageTooLarge,
    GrpcNotProcessed,
    StatusCode,
)
from plugin_drivers.grpc.h2client import (
    CONNECTION_WINDOW,
    STREAM_WINDOW,
    ConnectionFailed,
    Event,
    GoingAway,
    H2ClientConnection,
    PingAcked,
    SettingsChanged,
    WindowOpened,
)

RECV_MAX = 8 * 1024 * 1024
REPLY_HEAD = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


def request_block() -> bytes:
    static = h2codec.request_header_block(
        scheme=b"http", authority=b"test", path=b"/svc/Method", user_agent=b"t"
    )
    return static + h2codec.timeout_field(b"5S")


def grpc_message(body: bytes) -> bytes:
    return MESSAGE_PREFIX.pack(0, len(body)) + body


class Wire:
    """Our client and an h2 server, joined in memory; :meth:`pump` moves bytes both ways."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.server = h2.connection.H2Connection(config)
        self.server.initiate_connection()
        self.client = H2ClientConnection()
        self.events: list[Event] = []
        self.server_events: list[h2.events.Event] = []

    def pump(self) -> None:
        while True:
            moved = False
            if self.client.out:
                data, self.client.out = bytes(self.client.out), bytearray()
                self.server_events += self.server.receive_data(data)
                moved = True
            if data := self.server.data_to_send():
                self.events += self.client.receive_data(data)
                moved = True
            if not moved:
                return

    def take(self) -> tuple[list[Event], list[h2.events.Event]]:
        events, server_events = self.events, self.server_events
        self.events, self.server_events = [], []
        return events, server_events

    def call(self, body: bytes = b"hello") -> Call:
        call = self.client.start_call(request_block(), RECV_MAX)
        self.client.send_data(call, grpc_message(body), end_stream=True)
        return call

    def reply(self, stream_id: int, body: bytes) -> None:
        self.server.send_headers(stream_id, REPLY_HEAD)
        self.server.send_data(stream_id, grpc_message(body))
        self.server.send_headers(stream_id, TRAILERS, end_stream=True)


@pytest.fixture
def wire() -> Wire:
    wire = Wire()
    wire.pump()
    wire.take()
    return wire


def ended(events: list[Event]) -> list[Call]:
    """The calls reported as ended (a ``Call`` itself is that event)."""
    return [event for event in events if isinstance(event, Call)]


def test_handshake_sends_our_settings_and_acks_the_servers() -> None:
    wire = Wire()
    wire.pump()
    events, server_events = wire.take()
    assert events == [SettingsChanged()]
    changed = [e for e in server_events if isinstance(e, h2.events.RemoteSettingsChanged)]
    settings = changed[0].changed_settings
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE].new_value == STREAM_WINDOW
    assert settings[h2.settings.SettingCodes.ENABLE_PUSH].new_value == 0
    # Our settings were acknowledged by h2, and h2's by us (h2 reports the ACK it received).
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in server_events)
    assert wire.server.outbound_flow_control_window == CONNECTION_WINDOW  # our WINDOW_UPDATE


def test_a_unary_call_round_trip(wire: Wire) -> None:
    call = wire.call(b"ping?")
    assert call.stream_id == 1
    wire.pump()
    _, server_events = wire.take()
    request = next(e for e in server_events if isinstance(e, h2.events.RequestReceived))
    headers = dict(request.headers or [])
    assert headers[b":method"] == b"POST"
    assert headers[b":path"] == b"/svc/Method"
    assert headers[b"content-type"] == b"application/grpc"
    data = b"".join(e.data or b"" for e in server_events if isinstance(e, h2.events.DataReceived))
    assert data == grpc_message(b"ping?")
    assert any(isinstance(e, h2.events.StreamEnded) for e in server_events)

    wire.reply(1, b"pong!")
    wire.pump()
    events, _ = wire.take()
    assert ended(events) == [call]
    assert call.result() == b"pong!"
    wire.client.end_call(call)
    wire.pump()
    _, server_events = wire.take()
    assert not any(isinstance(e, h2.events.StreamReset) for e in server_events)
    assert wire.client.calls == {}
    assert wire.client.start_call(request_block(), RECV_MAX).stream_id == 3


def test_a_large_request_waits_for_window_updates(wire: Wire) -> None:
    # h2's default receive window is 65 535 bytes: a 300 000-byte message needs several updates.
    message = grpc_message(bytes(range(256)) * 1172)
    call = wire.client.start_call(request_block(), RECV_MAX)
    sent = 0
    received = bytearray()
    opened: list[Event] = []
    while sent < len(message):
        allowance = wire.client.send_allowance(call)
        assert allowance > 0, "stalled: no window given back"
        chunk = message[sent : sent + allowance]
        sent += len(chunk)
        wire.client.send_data(call, chunk, end_stream=sent == len(message))
        assert wire.client.send_allowance(call) == allowance - len(chunk)
        wire.pump()
        _, server_events = wire.take()
        for event in server_events:
            if isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None
                received += event.data or b""
                wire.server.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
        wire.pump()
        events, _ = wire.take()
        opened += events
    assert bytes(received) == message
    assert call.local_closed
    # Both windows were given back, and each time the shell was told (it wakes waiting senders).
    assert WindowOpened(call) in opened
    assert WindowOpened(None) in opened


def test_a_large_reply_gets_window_updates_from_us(wire: Wire) -> None:
    # Larger than our stream window: h2 can send it only if we give window back as it arrives.
    body = b"r" * (STREAM_WINDOW + 1_000_000)
    call = wire.call()
    wire.pump()
    wire.server.send_headers(1, REPLY_HEAD)
    pending = grpc_message(body)
    while pending:
        window = wire.server.local_flow_control_window(1)
        assert window > 0, "stalled: the client gave no window back"
        size = min(window, wire.server.max_outbound_frame_size, len(pending))
        wire.server.send_data(1, pending[:size])
        pending = pending[size:]
        wire.pump()
    wire.server.send_headers(1, TRAILERS, end_stream=True)
    wire.pump()
    events, server_events = wire.take()
    assert any(isinstance(e, h2.events.WindowUpdated) for e in server_events)
    assert ended(events) == [call]
    assert call.result() == body


@pytest.mark.parametrize(
    ("code", "error", "status"),
    [
        (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, GrpcError, StatusCode.RESOURCE_EXHAUSTED),
        (h2.errors.ErrorCodes.CANCEL, GrpcError, StatusCode.CANCELLED),
        (h2.errors.ErrorCodes.REFUSED_STREAM, GrpcNotProcessed, StatusCode.UNAVAILABLE),
    ],
)
def test_rst_stream_from_the_server_fails_the_call(
    wire: Wire, code: h2.errors.ErrorCodes, error: type[GrpcError], status: StatusCode
) -> None:
    call = wire.call()
    wire.pump()
    wire.server.reset_stream(1, code)
    wire.pump()
    events, _ = wire.take()
    assert ended(events) == [call]
    with pytest.raises(error) as raised:
        call.result()
    assert raised.value.code is status
    wire.client.end_call(call)
    wire.pump()
    _, server_events = wire.take()
    assert server_events == []  # a reset stream is not reset back


def test_a_call_given_up_resets_its_stream(wire: Wire) -> None:
    call = wire.call()
    wire.pump()
    wire.take()
    wire.client.end_call(call)  # the caller was cancelled before the reply
    wire.pump()
    _, server_events = wire.take()
    resets = [e for e in server_events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, h2.errors.ErrorCodes.CANCEL)]


def test_goaway_fails_the_calls_it_will_not_process_and_stops_new_ones(wire: Wire) -> None:
    first, second = wire.call(), wire.call()
    wire.pump()
    wire.server.close_connection(last_stream_id=1)
    wire.pump()
    events, _ = wire.take()
    assert ended(events) == [second]
    assert GoingAway(graceful=True, calm_down=False) in events
    with pytest.raises(GrpcNotProcessed):
        second.result()
    assert not first.ended  # stream 1 may still finish
    with pytest.raises(GrpcNotProcessed):
        wire.client.start_call(request_block(), RECV_MAX)


def test_goaway_enhance_your_calm_asks_for_fewer_pings(wire: Wire) -> None:
    wire.server.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    wire.pump()
    events, _ = wire.take()
    assert events == [GoingAway(graceful=False, calm_down=True)]


def test_pings_are_answered_and_ours_acknowledged(wire: Wire) -> None:
    wire.server.ping(b"12345678")
    wire.pump()
    events, server_events = wire.take()
    assert events == []
    acks = [e for e in server_events if isinstance(e, h2.events.PingAckReceived)]
    assert [a.ping_data for a in acks] == [b"12345678"]

    wire.client.ping()
    wire.pump()
    events, _ = wire.take()
    assert events == [PingAcked()]


def test_a_reply_announced_larger_than_recv_max_fails_without_being_kept(wire: Wire) -> None:
    call = wire.client.start_call(request_block(), recv_max=1_000)
    wire.client.send_data(call, grpc_message(b"q"), end_stream=True)
    wire.pump()
    wire.server.send_headers(1, REPLY_HEAD)
    wire.server.send_data(1, MESSAGE_PREFIX.pack(0, 1_001) + b"x" * 100)
    wire.pump()
    events, server_events = wire.take()
    assert ended(events) == [call]
    assert call.data == bytearray()  # nothing of it is kept
    with pytest.raises(GrpcMessageTooLarge):
        call.result()
    resets = [e for e in server_events if isinstance(e, h2.events.StreamReset)]
    assert [r.error_code for r in resets] == [h2.errors.ErrorCodes.CANCEL]


@pytest.mark.parametrize("same_frame", [True, False])
def test_a_reply_longer_than_its_announced_message_fails(wire: Wire, same_frame: bool) -> None:
    call = wire.call()
    wire.pump()
    wire.server.send_headers(1, REPLY_HEAD)
    if same_frame:
        wire.server.send_data(1, grpc_message(b"abc") + b"trailing junk")
    else:
        wire.server.send_data(1, grpc_message(b"abc"))
        wire.pump()
        wire.server.send_data(1, b"trailing junk")
    wire.pump()
    events, _ = wire.take()
    assert ended(events) == [call]
    assert call.data == bytearray()
    with pytest.raises(GrpcError, match="longer than its one message"):
        call.result()


def test_a_stream_window_pushed_over_2_31_fails_only_that_call(wire: Wire) -> None:
    # h2 keeps to the rules, so the misbehaving frame is written by hand.
    call, other = wire.call(), wire.call()
    events = wire.client.receive_data(h2codec.window_update_frame(1, 2**31 - 1))
    assert ended(events) == [call]
    with pytest.raises(GrpcError, match="window"):
        call.result()
    rst = h2codec.rst_stream_frame(1, h2codec.ErrorCode.FLOW_CONTROL_ERROR)
    assert wire.client.out.endswith(rst)
    assert not other.ended
    assert wire.client.start_call(request_block(), RECV_MAX).stream_id == 5


def test_data_beyond_our_connection_window_ends_the_connection(wire: Wire) -> None:
    frame = h2codec.frame(h2codec.FrameType.DATA, 0, 1, b"z" * h2codec.DEFAULT_MAX_FRAME_SIZE)
    count = CONNECTION_WINDOW // h2codec.DEFAULT_MAX_FRAME_SIZE + 1
    wire.client.start_call(request_block(), RECV_MAX)
    events = wire.client.receive_data(frame * count)
    assert isinstance(events[-1], ConnectionFailed)
    assert events[-1].code is h2codec.ErrorCode.FLOW_CONTROL_ERROR
    assert wire.client.out.endswith(h2codec.goaway_frame(0, h2codec.ErrorCode.FLOW_CONTROL_ERROR))
    with pytest.raises(GrpcNotProcessed):
        wire.client.start_call(request_block(), RECV_MAX)
