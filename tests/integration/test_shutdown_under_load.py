"""SIGTERM while a real `trio-gateway run` process serves keep-alive connections at full speed:
no request is dropped, and requests cut off at ``shutdown_timeout`` are answered and logged."""

from __future__ import annotations

import functools
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import attrs
import trio
import trio.testing

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawHttpClient, open_client
from tests.helpers.keepalive_load import KeepAliveLoad
from tests.helpers.upstream import ReceivedRequest, Reply, start_upstream
from tests.integration.test_cli_and_shutdown import PROCESS_BOUND, gateway_process
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, LimitsConfig, ListenConfig
from trio_gateway._exchange import Request


async def answer_ok(request: ReceivedRequest, reply: Reply) -> None:
    await reply.respond(200, body=b"ok")


async def test_sigterm_under_keep_alive_load_drops_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery, answer_ok, keep_bodies=False)
    write_keyless_api(tmp_path, api_id="api", listen_path="/api/", target_url=upstream.url)
    parked_count = 200

    async with gateway_process("--apps", str(tmp_path)) as gateway, AsyncExitStack() as stack:
        # Keep-alive connections between requests, as under load: the moment a drain begins,
        # many of them have the next request in the kernel's buffer, not yet read.
        parked: list[RawHttpClient] = []
        for _ in range(parked_count):
            client = await stack.enter_async_context(open_client(gateway.address))
            assert (await client.request("GET", "/api/warm")).status == 200
            parked.append(client)
        load = KeepAliveLoad(gateway.address, "/api/x", connections=32)
        with trio.fail_after(PROCESS_BOUND):
            async with trio.open_nursery() as clients:
                clients.start_soon(load.run)
                await load.wait_for_answers(1000)
                for client in parked:
                    await client.send(b"GET /api/last HTTP/1.1\r\nHost: x\r\n\r\n")
                load.mark_signal()
                gateway.process.send_signal(signal.SIGTERM)
                # Sent before the signal: each must be answered.
                last = [await client.read_response() for client in parked]
            # Every load worker ended: its reconnect was refused (the listener is closed).
            returncode = await gateway.process.wait()

    assert [r.status for r in last] == [200] * parked_count
    assert load.drops == []
    assert set(load.statuses) == {200}
    assert returncode == 0, gateway.stderr.decode()


async def test_requests_waiting_in_the_kernel_when_the_drain_starts_are_answered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The race behind the drops, made exact: each idle keep-alive connection has its next
    request in the kernel's buffer, not yet read, when the drain starts."""
    running = await start_gateway(nursery, tmp_path)
    async with AsyncExitStack() as stack:
        parked: list[RawHttpClient] = []
        for _ in range(20):
            client = await stack.enter_async_context(open_client(running.address))
            assert (await client.request("GET", "/nothing")).status == 404
            parked.append(client)
        await trio.testing.wait_all_tasks_blocked()  # every connection waits for its next head
        # No checkpoint from here to shutdown(): the gateway reads none of these first.
        for client in parked:
            os.write(client.stream.socket.fileno(), b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
        running.shutdown()
        last = [await client.read_response() for client in parked]
    assert [r.status for r in last] == [404] * 20
    assert all(r.closes for r in last)  # served during the drain: the connection closes


async def test_request_cut_at_shutdown_timeout_gets_a_logged_503(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    never = trio.Event()

    async def hang(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hang)
    write_keyless_api(tmp_path, api_id="slow", listen_path="/slow/", target_url=upstream.url)
    config = tmp_path / "gateway.toml"
    config.write_text("[limits]\nshutdown_timeout = 0.2\n")
    apps = tmp_path / "apps"
    apps.mkdir()
    (tmp_path / "slow.json").rename(apps / "slow.json")

    async with gateway_process("--apps", str(apps), "--config", str(config)) as gateway:
        async with open_client(gateway.address) as busy:
            await busy.send(b"GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")
            await upstream.wait_until(lambda: len(upstream.requests) == 1)
            gateway.process.send_signal(signal.SIGTERM)
            response = await busy.read_response()
        with trio.fail_after(PROCESS_BOUND):
            returncode = await gateway.process.wait()

    assert response.status == 503
    assert response.closes
    log = gateway.stderr.decode()
    assert "cutting off 1 connection(s)" in log, log
    assert returncode == 0, log


@attrs.define
class RecordingAccessLog:
    lines: list[tuple[str, int]] = attrs.field(factory=list)

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        self.lines.append((request.path, status))


async def test_request_cut_at_shutdown_timeout_is_access_logged(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    never = trio.Event()

    async def hang(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hang)
    write_keyless_api(tmp_path, api_id="slow", listen_path="/slow/", target_url=upstream.url)
    access_log = RecordingAccessLog()
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        limits=LimitsConfig(shutdown_timeout=0.2),
    )
    running: RunningGateway = await nursery.start(
        functools.partial(serve_gateway, config, apps_dir=tmp_path, access_log=access_log)
    )
    async with open_client(running.address) as busy:
        await busy.send(b"GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await upstream.wait_until(lambda: len(upstream.requests) == 1)
        running.shutdown()
        response = await busy.read_response()
    with trio.fail_after(PROCESS_BOUND):
        await running.server.stopped.wait()
    assert (response.status, response.closes) == (503, True)
    assert access_log.lines == [("/slow/x", 503)]
