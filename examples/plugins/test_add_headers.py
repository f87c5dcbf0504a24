"""Tests for ``add_headers.py``, written as its author would, with the kit (trio_gateway.testing).

The harness loads the API definition as the gateway does (the plugin path resolves from the
definition's folder), runs each request through the real pipeline and tells what the upstream saw.
"""

from __future__ import annotations

import json
from pathlib import Path

from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parents[1] / "apps-plugins" / "add-headers.json"


async def test_the_upstream_sees_the_gateway_and_the_api() -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request("GET", gateway.path("items"), query="colour=red")
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.path == "/items"
    assert result.upstream.query == "colour=red"
    assert result.upstream.header_values("X-Gateway") == ["example-gateway"]
    assert result.upstream.header_values("X-Api-Id") == ["plugins-add-headers"]


async def test_a_client_cannot_set_the_headers_itself() -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request(
            headers=[("X-Internal-Debug", "1"), ("X-Gateway", "spoofed"), ("x-gateway", "again")]
        )
    assert result.upstream is not None
    assert result.upstream.header_values("X-Internal-Debug") == []
    assert result.upstream.header_values("X-Gateway") == ["example-gateway"]


async def test_without_config_data_the_gateway_is_called_trio_gateway() -> None:
    definition = json.loads(API.read_text())
    del definition["config_data"]
    async with open_harness(definition, base_dir=API.parent) as gateway:
        result = await gateway.request()
    assert result.upstream is not None
    assert result.upstream.header("X-Gateway") == "trio-gateway"


async def test_the_hook_runs_once_and_the_body_is_untouched() -> None:
    async with open_harness(API, sockets=True) as gateway:
        result = await gateway.request("POST", gateway.path("upload"), body="hello")
    assert [(call.name, call.outcome) for call in result.trace] == [("add_headers", "continue")]
    assert result.upstream is not None
    assert result.upstream.body == b"hello"
