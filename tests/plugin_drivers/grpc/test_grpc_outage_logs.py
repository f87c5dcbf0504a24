"""A gRPC plugin-server outage under load writes a few summary lines, not one per request.

Real parts: a grpcio Dispatcher (stopped mid-test), a gateway on 127.0.0.1, keep-alive clients.
The 5 s outage of the issue is measured by bench/reliability_logs.py; here 1 s under load is
enough to prove the summarising (hundreds of failed requests, a handful of lines).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
from conftest import Server
from test_grpc_gateway_e2e import api_doc, start_gateway

from tests.helpers.client import open_client
from tests.helpers.upstream import start_upstream


async def test_outage_under_load_is_summarised(
    nursery: trio.Nursery, tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = await start_upstream(nursery)
    doc = api_doc(upstream, {"pre": [{"name": "echo"}]})
    gateway = await start_gateway(nursery, tmp_path, f"tcp://{server.target}", doc)
    async with open_client(gateway.address) as client:
        assert (await client.request("GET", "/api/x")).status == 200
    caplog.set_level(logging.WARNING, "trio_gateway")
    caplog.clear()
    await trio.to_thread.run_sync(lambda: server.server.stop(0).wait(5))
    failed = 0

    async def load(deadline: float) -> None:
        nonlocal failed
        async with open_client(gateway.address) as client:
            while trio.current_time() < deadline:
                response = await client.request("GET", "/api/x")
                assert response.status == 500  # the hook's policy while the server is away
                failed += 1

    deadline = trio.current_time() + 1.0
    async with trio.open_nursery() as clients:
        for _ in range(4):
            clients.start_soon(load, deadline)
    warnings = [r for r in caplog.records if r.name.startswith("trio_gateway")]
    assert failed >= 50  # the outage really was under load
    # One line per API and cause (the first of the interval); no tracebacks at this level.
    assert 1 <= len(warnings) <= 3, [r.getMessage() for r in warnings]
    assert all(r.exc_info is None for r in warnings)
    first = warnings[0].getMessage()
    assert "api=grpc-api" in first
    assert "PluginDriverError" in first  # the cause is visible at the default level
    gateway.shutdown()
