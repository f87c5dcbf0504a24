"""Tests for ``add_headers.js``, written as its author would, with the kit (trio_gateway.testing).

JavaScript plugins need Tyk's ``enable_jsvm``: the harness takes the gateway settings as
``load_config`` makes them.
"""

from __future__ import annotations

from pathlib import Path

from trio_gateway import load_config
from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parent / "apps" / "add-headers.json"
CONFIG, _ = load_config(None, {}, {"javascript.enable": True})


async def test_the_upstream_sees_the_gateway_and_the_api() -> None:
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request("GET", gateway.path("items"), query="colour=red")
    assert result.status == 200
    assert result.upstream is not None
    assert (result.upstream.path, result.upstream.query) == ("/items", "colour=red")
    assert result.upstream.header_values("X-Gateway") == ["example-gateway"]
    assert result.upstream.header_values("X-Api-Id") == ["js-add-headers"]
    assert [(call.name, call.outcome) for call in result.trace] == [("addHeaders", "continue")]


async def test_a_client_cannot_set_the_headers_itself() -> None:
    async with open_harness(API, config=CONFIG, sockets=True) as gateway:
        result = await gateway.request(
            headers=[("X-Internal-Debug", "1"), ("X-Gateway", "spoofed"), ("X-Api-Id", "other")]
        )
    assert result.upstream is not None
    assert result.upstream.header_values("X-Internal-Debug") == []
    assert result.upstream.header_values("X-Gateway") == ["example-gateway"]
    assert result.upstream.header_values("X-Api-Id") == ["js-add-headers"]
