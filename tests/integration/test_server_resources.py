"""File descriptors: what a connection costs a real `trio-gateway run` process, and what happens
when the process runs out of them."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from tests.helpers.client import RawHttpClient, fetch, open_client
from tests.integration.test_cli_and_shutdown import gateway_process


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_an_idle_keep_alive_connection_holds_one_descriptor(tmp_path: Path) -> None:
    count = 100
    async with gateway_process("--apps", str(tmp_path)) as gateway, AsyncExitStack() as stack:
        pid = gateway.process.pid
        assert (await fetch(gateway.address, "GET", "/warm-up")).status == 404
        before = open_descriptors(pid)
        for _ in range(count):
            client = await stack.enter_async_context(open_client(gateway.address))
            # One request each, so every connection is watched for hang-ups like a busy one.
            assert (await client.request("GET", "/nothing")).status == 404
        per_connection = (open_descriptors(pid) - before) / count
    # 1.0 give or take a descriptor closing late (the warm-up's); 2.0 with one epoll set each.
    assert abs(per_connection - 1) <= 0.02, per_connection


async def test_running_out_of_descriptors_is_quiet_and_recovers(tmp_path: Path) -> None:
    limit = 64
    async with gateway_process("--apps", str(tmp_path), file_limit=limit) as gateway:
        async with AsyncExitStack() as stack:
            clients: list[RawHttpClient] = []
            for _ in range(limit + 16):  # more connections than the gateway can hold
                client = await stack.enter_async_context(open_client(gateway.address))
                await client.send(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
                clients.append(client)
            # Out of descriptors: said once, as a warning (any line about accepting counts here).
            line = await gateway.wait_for_log("accept")
            assert "WARNING" in line, line
            # The connections it did accept are served.
            answered = 0
            for client in clients[:8]:
                assert (await client.read_response()).status == 404
                answered += 1
            assert answered == 8
        # Everyone left: the gateway serves new clients again.
        with trio.fail_after(30):
            response = await fetch(gateway.address, "GET", "/again")
        assert response.status == 404
        log = gateway.stderr.decode(errors="replace")
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    assert log.count("cannot accept connections") == 1, log
