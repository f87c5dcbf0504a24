"""Tests for the gRPC plugin server, written as its author would, with the kit.

The handlers are plain functions on Tyk's ``Object``: unit tests call them directly. End to end,
the server runs on a free port (grpcio, in this process): the kit's harness serves each example
API through the real gateway and gRPC driver (``grpc_server=``), and the conformance runner sends
the example plugins' behaviour vectors through it: the gRPC plugins must do exactly what the
native Python ones in ``examples/plugins/`` do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dispatcher import dispatch
from server import start_server

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from trio_gateway import load_config
from trio_gateway.testing import (
    UpstreamReply,
    definition_from_file,
    open_harness,
    run_conformance,
)

APPS = Path(__file__).resolve().parent / "apps"


def hook(name: str, **spec: str) -> pb.Object:
    obj = pb.Object(hook_name=name)
    obj.spec.update(spec)
    obj.request.return_overrides.response_code = -1  # what the gateway sends: "no override"
    return obj


def test_add_headers_sets_and_removes() -> None:
    obj = hook("add_headers", APIID="api-1", config_data='{"gateway_name": "edge"}')
    obj.request.headers["X-Internal-Debug"] = "1"
    out = dispatch(obj)
    assert dict(out.request.set_headers) == {"X-Gateway": "edge", "X-Api-Id": "api-1"}
    assert list(out.request.delete_headers) == ["X-Internal-Debug"]
    assert out.request.return_overrides.response_code == -1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body must be JSON"),
        (b"\xff", "body must be JSON"),
        (b'{"quantity": 1}', "missing field: item"),
        (b'{"item": "tea", "quantity": 0}', "quantity must be a positive integer"),
    ],
)
def test_validate_order_refuses_with_400(body: bytes, reason: str) -> None:
    obj = hook("validate_order")
    obj.request.method = "POST"
    obj.request.raw_body = body
    overrides = dispatch(obj).request.return_overrides
    assert (overrides.response_code, overrides.response_error) == (400, reason)


def test_wrap_response_rewrites_json_only() -> None:
    obj = hook("wrap_response", APIID="api-1")
    obj.response.status_code = 201
    obj.response.headers["Content-Type"] = "application/json"
    obj.response.raw_body = b'{"id": 1}'
    out = dispatch(obj).response
    assert json.loads(out.raw_body) == {"data": {"id": 1}, "status": 201, "api": "api-1"}
    assert out.headers["X-Rewritten-By"] == "trio-gateway"

    text = hook("wrap_response")
    text.response.headers["Content-Type"] = "text/plain"
    text.response.raw_body = b"hi"
    assert dispatch(text).response.raw_body == b"hi"


def test_authenticate_builds_a_session_keyed_by_the_token() -> None:
    obj = hook("authenticate", config_data='{"tokens": {"t-1": "ann"}}')
    obj.request.headers["Authorization"] = "Bearer t-1"
    out = dispatch(obj)
    assert out.metadata["token"] == "t-1"
    assert out.session.metadata["user"] == "ann"
    assert out.request.return_overrides.response_code == -1

    stranger = hook("authenticate", config_data='{"tokens": {"t-1": "ann"}}')
    stranger.request.headers["Authorization"] = "Bearer t-2"
    assert dispatch(stranger).request.return_overrides.response_code == 403


@pytest.fixture
def grpc_target() -> Iterator[str]:
    server, port = start_server("127.0.0.1:0")
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.stop(0)


async def test_the_server_behaves_as_the_native_plugins(grpc_target: str) -> None:
    config, _ = load_config(
        None, {}, {"coprocess.enable": True, "coprocess.grpc_server": grpc_target}
    )
    definitions = {
        "add_headers": definition_from_file(APPS / "add-headers.json"),
        "validate_order": definition_from_file(APPS / "validate-order.json"),
        "rewrite_response": definition_from_file(APPS / "rewrite-response.json"),
        "token_auth": definition_from_file(APPS / "token-auth.json"),
    }
    report = await run_conformance(definitions, config=config)
    report.assert_conforms()
    assert not report.not_covered


async def test_the_harness_runs_the_servers_pre_hook(grpc_target: str) -> None:
    async with open_harness(APPS / "add-headers.json", grpc_server=grpc_target) as gateway:
        result = await gateway.request(
            "GET", gateway.path("items"), headers={"X-Internal-Debug": "1"}
        )
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.header("x-gateway") == "example-gateway"
    assert result.upstream.header("x-internal-debug") is None
    assert [(call.label, call.outcome) for call in result.trace] == [
        ("pre[0] add_headers", "continue")
    ]


async def test_the_harness_shows_a_refusal_never_reaches_the_upstream(grpc_target: str) -> None:
    async with open_harness(APPS / "validate-order.json", grpc_server=grpc_target) as gateway:
        result = await gateway.request("POST", gateway.path("orders"), body=b'{"quantity": 2}')
    assert result.status == 400
    assert result.json() == {"error": "missing field: item"}
    assert result.upstream is None


async def test_the_harness_gives_the_session_custom_auth_built(grpc_target: str) -> None:
    async with open_harness(APPS / "token-auth.json", grpc_server=grpc_target) as gateway:
        denied = await gateway.request("GET", gateway.path("me"))
        allowed = await gateway.request(
            "GET", gateway.path("me"), headers={"Authorization": "Bearer secret-token-ann"}
        )
    assert denied.status == 403
    assert allowed.status == 200
    assert allowed.upstream is not None
    assert allowed.upstream.header("x-user") == "ann"
    assert allowed.session is not None
    assert allowed.session.meta_data["user"] == "ann"


async def test_the_harness_scripts_the_upstream_the_response_hook_rewrites(
    grpc_target: str,
) -> None:
    reply = UpstreamReply.json({"id": 7}, status=201)
    async with open_harness(
        APPS / "rewrite-response.json", grpc_server=grpc_target, upstream=lambda seen: reply
    ) as gateway:
        result = await gateway.request("GET", gateway.path("things/7"))
    assert result.status == 201
    assert result.json() == {"data": {"id": 7}, "status": 201, "api": "grpc-rewrite-response"}
    assert result.header("x-rewritten-by") == "trio-gateway"
