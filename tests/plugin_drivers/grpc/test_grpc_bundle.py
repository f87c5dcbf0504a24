"""A bundle that only names gRPC hooks (Tyk's usual gRPC setup): the manifest's hooks replace the
API's and run on a real grpcio Dispatcher; the bundle comes from a real HTTP bundle server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import trio
from conftest import Server

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.helpers.bundles import bundles_config, make_bundle, sent_headers, serve, setup
from tests.helpers.client import fetch
from trio_gateway._config.model import CoprocessConfig

PRE = 1


async def test_a_grpc_bundle_replaces_the_apis_hooks(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    seen: list[tuple[int, str]] = []

    def handler(o: pb.Object, context: Any) -> pb.Object:
        seen.append((o.hook_type, o.hook_name))
        o.request.set_headers["X-From-Grpc"] = o.hook_name
        return o

    server.handler = handler
    s = await setup(nursery, tmp_path)
    # No files at all: the manifest only names the hooks the plugin server implements.
    s.server.files["b.zip"] = make_bundle(
        {}, middleware={"driver": "grpc", "pre": [{"name": "MyPreHook"}]}
    )
    config = attrs.evolve(
        bundles_config(s), coprocess=CoprocessConfig(enable=True, grpc_server=server.target)
    )
    gw = await serve(nursery, s, "b.zip", config)
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert response.status == 200, response.body
    assert sent_headers(response.body)["x-from-grpc"] == "MyPreHook"
    assert seen == [(PRE, "MyPreHook")]
    assert json.loads(response.body)["target"] == "/x"
