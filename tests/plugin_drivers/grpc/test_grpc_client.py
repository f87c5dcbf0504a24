"""The Trio/h2 gRPC client against a real grpcio server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from conftest import Server, ServerProcess
from grpc_dispatcher_server import Handler, echo, start_server

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from plugin_drivers.grpc.call import encode_timeout
from plugin_drivers.grpc.client import (
    GrpcError,
    GrpcMessageTooLarge,
    GrpcUnavailable,
    StatusCode,
    open_grpc_channel,
    parse_target,
)

DISPATCH = "/coprocess.Dispatcher/Dispatch"


def obj(name: str, body: bytes = b"") -> bytes:
    o = pb.Object(hook_type=1, hook_name=name)
    o.request.raw_body = body
    return o.SerializeToString()


async def wait_thread_event(event: threading.Event) -> bool:
    return await trio.to_thread.run_sync(event.wait, 5.0)  # bounded: the thread gives up at 5 s


def test_parse_target() -> None:
    assert parse_target("tcp://127.0.0.1:5555").port == 5555
    assert parse_target("localhost:80").authority == "localhost:80"
    assert parse_target("unix:///tmp/x.sock").path == "/tmp/x.sock"
    assert parse_target("[::1]:9").host == "::1"
    for bad in ("", "host", "dns:///x:1", "unix://", "h:0"):
        with pytest.raises(ValueError, match="gRPC target"):
            parse_target(bad)


def test_grpc_timeout_encoding() -> None:
    assert encode_timeout(0.25) == b"250000u"
    assert encode_timeout(1e-9) == b"1u"
    assert encode_timeout(500) == b"500000m"
    assert encode_timeout(10**9) == b"16666667M"


async def test_round_trip_and_concurrent_streams_on_one_connection(server: Server) -> None:
    barrier = threading.Barrier(8, timeout=5)

    def handler(o: pb.Object, context: Any) -> pb.Object:
        if o.hook_name.startswith("together"):
            barrier.wait()  # only passes if 8 calls are in the server at the same time
        return o

    server.handler = handler
    results: dict[str, str] = {}
    async with open_grpc_channel(server.target) as channel:

        async def one(name: str) -> None:
            with trio.fail_after(5):
                reply = await channel.unary_unary(DISPATCH, obj(name))
            results[name] = pb.Object.FromString(reply).hook_name

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, f"together{i}")
            for i in range(40):
                nursery.start_soon(one, f"n{i}")
        assert channel.connects == 1
    assert results == {n: n for n in results}
    assert len(results) == 48


async def test_large_message_within_limits(server: Server) -> None:
    body = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    async with open_grpc_channel(server.target, recv_max=32 * 1024 * 1024) as channel:
        with trio.fail_after(20):
            reply = await channel.unary_unary(DISPATCH, obj("big", body))
    assert pb.Object.FromString(reply).request.raw_body == body


async def test_reply_over_recv_max_is_a_clear_error(server: Server) -> None:
    async with open_grpc_channel(server.target) as channel:  # default 4 MiB
        with trio.fail_after(10), pytest.raises(GrpcMessageTooLarge, match="larger than max"):
            await channel.unary_unary(DISPATCH, obj("big", b"x" * (5 * 1024 * 1024)))
        # the connection is still good afterwards
        with trio.fail_after(5):
            await channel.unary_unary(DISPATCH, obj("small"))
        assert channel.connects == 1


async def test_request_over_send_max_is_refused_before_sending(server: Server) -> None:
    calls = []
    server.handler = lambda o, c: calls.append(o) or o
    async with open_grpc_channel(server.target, send_max=1000) as channel:
        with trio.fail_after(5), pytest.raises(GrpcMessageTooLarge) as info:
            await channel.unary_unary(DISPATCH, obj("big", b"x" * 2000))
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert calls == []


def _blocking_handler(
    started: threading.Event,
    ended: threading.Event,
    seen: dict[str, Any],
    finished: threading.Event | None = None,
) -> Handler:
    """Blocks a "slow" call until the RPC ends. ``ended`` is set by grpc when the RPC terminates,
    which can be before this handler thread records ``active_after``: readers of that wait for
    ``finished``, set once everything is recorded."""

    def handler(o: pb.Object, context: Any) -> pb.Object:
        if o.hook_name != "slow":
            return o
        try:
            seen["remaining"] = context.time_remaining()
            context.add_callback(ended.set)  # runs when the RPC terminates (cancelled here)
            started.set()
            ended.wait(5)
            seen["active_after"] = context.is_active()
        finally:
            if finished is not None:
                finished.set()
        return o

    return handler


async def test_deadline_travels_and_the_server_sees_the_cancel(server: Server) -> None:
    started, ended, finished, seen = threading.Event(), threading.Event(), threading.Event(), {}
    server.handler = _blocking_handler(started, ended, seen, finished)
    async with open_grpc_channel(server.target) as channel:
        await channel.unary_unary(DISPATCH, obj("warm"))  # connect first: time the call only
        t0 = trio.current_time()
        with trio.move_on_after(0.3) as scope:
            await channel.unary_unary(DISPATCH, obj("slow"))
        assert scope.cancelled_caught
        assert trio.current_time() - t0 < 0.3 + 0.25
        assert await wait_thread_event(ended)
        assert await wait_thread_event(finished)  # the handler thread has recorded everything
    assert 0.1 < seen["remaining"] <= 0.31
    assert seen["active_after"] is False


async def test_caller_cancellation_resets_the_stream(server: Server) -> None:
    started, ended, seen = threading.Event(), threading.Event(), {}
    server.handler = _blocking_handler(started, ended, seen)
    async with open_grpc_channel(server.target) as channel:
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                await channel.unary_unary(DISPATCH, obj("slow"))

            nursery.start_soon(call)
            assert await wait_thread_event(started)
            nursery.cancel_scope.cancel()  # no deadline anywhere: only RST_STREAM can tell it
        t0 = time.monotonic()
        assert await wait_thread_event(ended)
        assert time.monotonic() - t0 < 1
        assert seen["remaining"] > 10**6  # no deadline was sent
        # the connection survives a cancelled stream
        server.handler = echo
        with trio.fail_after(5):
            await channel.unary_unary(DISPATCH, obj("after"))
        assert channel.connects == 1


async def test_server_status_from_trailers(server: Server) -> None:
    def handler(o: pb.Object, context: Any) -> pb.Object:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "nope: ü%")

    server.handler = handler
    async with open_grpc_channel(server.target) as channel:
        with trio.fail_after(5), pytest.raises(GrpcError) as info:
            await channel.unary_unary(DISPATCH, obj("x"))
    assert info.value.code is StatusCode.PERMISSION_DENIED
    assert info.value.message == "nope: ü%"


async def test_unknown_method_is_unimplemented(server: Server) -> None:
    async with open_grpc_channel(f"tcp://{server.target}") as channel:
        with trio.fail_after(5), pytest.raises(GrpcError) as info:
            await channel.unary_unary("/coprocess.Dispatcher/Nope", b"")
        assert info.value.code is StatusCode.UNIMPLEMENTED
        reply = await channel.unary_unary(
            "/coprocess.Dispatcher/DispatchEvent", pb.Event(payload="{}").SerializeToString()
        )
        assert reply == b""


async def test_unix_socket_target(tmp_path: Path) -> None:
    path = tmp_path / "dispatcher.sock"
    srv, _ = start_server(f"unix:{path}")
    try:
        async with open_grpc_channel(f"unix://{path}") as channel:
            with trio.fail_after(5):
                reply = await channel.unary_unary(DISPATCH, obj("over unix"))
        assert pb.Object.FromString(reply).hook_name == "over unix"
    finally:
        srv.stop(0)


async def test_no_server_fails_fast() -> None:
    from conftest import free_port

    async with open_grpc_channel(f"127.0.0.1:{free_port()}") as channel:
        for _ in range(3):
            t0 = trio.current_time()
            with pytest.raises(GrpcUnavailable):
                await channel.unary_unary(DISPATCH, obj("x"))
            assert trio.current_time() - t0 < 0.1


async def test_server_killed_and_restarted(server_process: ServerProcess) -> None:
    await server_process.astart()
    async with open_grpc_channel(f"127.0.0.1:{server_process.port}") as channel:
        with trio.fail_after(5):
            await channel.unary_unary(DISPATCH, obj("up"))
        server_process.kill()
        # While it is down every call fails quickly instead of hanging.
        failures = 0
        for _ in range(10):
            t0 = trio.current_time()
            with pytest.raises(GrpcUnavailable):
                await channel.unary_unary(DISPATCH, obj("down"))
            assert trio.current_time() - t0 < 0.1
            failures += 1
            await trio.sleep(0.02)  # pacing of the request loop, not synchronisation
        await server_process.astart()
        back = trio.current_time()
        while True:
            try:
                with trio.fail_after(1):
                    await channel.unary_unary(DISPATCH, obj("again"))
                break
            except GrpcUnavailable:
                assert trio.current_time() - back < 1.0
                await trio.sleep(0.01)
        assert trio.current_time() - back < 1.0
        assert channel.connects == 2
