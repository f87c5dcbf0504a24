"""Tests for the gRPC plugin server, written as its author would, with the kit.

The handlers are plain functions on Tyk's ``Object``: unit tests call them directly. End to end,
the server runs on a free port (grpcio, in this process) and the kit's conformance runner sends the
example plugins' behaviour vectors through a real gateway that calls it: the gRPC plugins must do
exactly what the native Python ones in ``examples/plugins/`` do.
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
from trio_gateway.testing.conformance import definition_from_file, run_conformance

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
