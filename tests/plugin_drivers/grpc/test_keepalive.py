"""A plugin server that stops answering (it accepts TCP and then says nothing, not even to a PING)
is noticed by the channel's keepalive within its timeout, and calls that keep timing out in
silence make the next call use a fresh connection -- no waiting for TCP to give up."""

from __future__ import annotations

import socket

import pytest
import trio

from plugin_drivers.grpc.client import (
    GrpcChannel,
    GrpcUnavailable,
    Keepalive,
    open_grpc_channel,
)


class SilentServer:
    """Accepts connections and reads everything; never writes a byte (a hung process)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.accepted_event = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            await listener.bind(("127.0.0.1", 0))
            listener.listen()
            task_status.started(listener.getsockname()[1])
            async with trio.open_nursery() as nursery:
                while True:
                    conn, _ = await listener.accept()
                    self.accepted += 1
                    self.accepted_event.set()
                    self.accepted_event = trio.Event()
                    nursery.start_soon(self._swallow, conn)

    @staticmethod
    async def _swallow(conn: trio.socket.SocketType) -> None:
        with conn:
            while await conn.recv(65536):
                pass


async def test_a_silent_server_is_detected_within_the_keepalive_timeout(
    nursery: trio.Nursery,
) -> None:
    server = SilentServer()
    port = await nursery.start(server.serve)
    keepalive = Keepalive(interval=0.1, timeout=0.2, suspect_after=0)
    async with open_grpc_channel(f"127.0.0.1:{port}", keepalive=keepalive) as channel:
        started = trio.current_time()
        # The call itself would wait 10 s: the keepalive must end it long before.
        with trio.fail_after(10), pytest.raises(GrpcUnavailable, match="keepalive PING") as info:
            await channel.unary_unary("/s/M", b"hello")
        elapsed = trio.current_time() - started
    # At most one interval without the server + one interval to the ping + the ACK timeout,
    # with room for a loaded machine.
    assert elapsed < 2 * keepalive.interval + keepalive.timeout + 1.0, elapsed
    assert "0.2s" in str(info.value)


async def test_calls_timing_out_in_silence_move_the_next_call_to_a_new_connection(
    nursery: trio.Nursery,
) -> None:
    server = SilentServer()
    port = await nursery.start(server.serve)
    keepalive = Keepalive(interval=0.0, suspect_after=3)  # pings off: only the suspicion rule
    async with open_grpc_channel(f"127.0.0.1:{port}", keepalive=keepalive) as channel:
        for _ in range(3):
            with trio.move_on_after(0.05) as scope:
                await channel.unary_unary("/s/M", b"hello")
            assert scope.cancelled_caught
        assert server.accepted == 1
        # The third silent timeout dropped the connection: the next call goes out on a new one.
        async with trio.open_nursery() as calls:
            calls.start_soon(lambda: _call_briefly(channel))
            with trio.fail_after(5):
                while server.accepted < 2:
                    await server.accepted_event.wait()
        assert channel.connects == 2


async def _call_briefly(channel: GrpcChannel) -> None:
    with trio.move_on_after(0.5):
        await channel.unary_unary("/s/M", b"hello")
