"""Bodies through a gRPC-hooked API are bounded by ``hooks.max_body_bytes`` (a real gateway, a
real grpcio Dispatcher): a body announced over the limit is 413 at once and never reaches the
plugin server; one within it reaches the plugin and the upstream whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from conftest import Server
from test_grpc_gateway_e2e import api_doc

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.helpers.upstream import start_upstream
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import CoprocessConfig, GatewayConfig, HooksConfig, ListenConfig

LIMIT = 256 * 1024


async def start(
    nursery: trio.Nursery, tmp_path: Path, doc: dict[str, Any], target: str
) -> RunningGateway:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "api.json").write_text(json.dumps(doc))
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        hooks=HooksConfig(timeout=5.0, max_body_bytes=LIMIT),
        coprocess=CoprocessConfig(enable=True, grpc_server=target),
    )
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    return running


async def post(address: tuple[str, int], head: bytes, body: bytes = b"") -> bytes:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(head + body)
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                data = await stream.receive_some()
                assert data, received
                received += data
    return received


async def test_grpc_hooked_bodies_are_bounded(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    seen: list[int] = []

    def handler(o: pb.Object, context: Any) -> pb.Object:
        seen.append(len(o.request.raw_body))
        return o

    server.handler = handler
    upstream = await start_upstream(nursery)
    doc = api_doc(upstream, {"pre": [{"name": "pre"}]})
    gw = await start(nursery, tmp_path, doc, server.target)

    # Over the limit: answered from the head alone, before any of the body is sent.
    head = await post(
        gw.address, b"POST /api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 200000000\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 413")
    assert seen == []
    assert upstream.requests == []

    # Within it (over 64 KiB: the message goes out in window-sized pieces, not one copy).
    body = bytes(range(256)) * (LIMIT // 256)
    head = await post(
        gw.address,
        b"POST /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body),
        body,
    )
    assert head.startswith(b"HTTP/1.1 200")
    assert seen == [LIMIT]
    assert upstream.requests[0].body == body
