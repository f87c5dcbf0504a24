"""Tests for ``validate_order.js``, written as its author would, with the kit.

A bad order is answered by the hook itself (Tyk's JSON error, 400) and never reaches the upstream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_gateway import load_config
from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parent / "apps" / "validate-order.json"
CONFIG, _ = load_config(None, {}, {"javascript.enable": True})


async def test_a_valid_order_reaches_the_upstream_as_sent() -> None:
    order = b'{"item": "tea", "quantity": 2}'
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request("POST", gateway.path("orders"), body=order)
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.body == order


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "body must be JSON"),
        ("item=tea", "body must be JSON"),
        ("null", "missing field: item"),
        ('{"quantity": 1}', "missing field: item"),
        ('{"item": "tea", "quantity": 1.5}', "quantity must be a positive integer"),
        ('{"item": "tea", "quantity": "3"}', "quantity must be a positive integer"),
    ],
)
async def test_a_bad_order_gets_400_with_the_reason(body: str, reason: str) -> None:
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request("PUT", gateway.path("orders/1"), body=body)
    assert result.status == 400
    assert result.json() == {"error": reason}
    assert result.upstream is None


async def test_reads_pass() -> None:
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request("GET", gateway.path("orders"))
    assert result.status == 200
    assert result.upstream is not None
