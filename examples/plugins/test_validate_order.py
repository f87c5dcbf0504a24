"""Tests for ``validate_order.py``, written as its author would, with the kit.

A bad order is answered by the hook itself (400, a JSON reason) and never reaches the upstream.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parents[1] / "apps-plugins" / "validate-order.json"


async def test_a_valid_order_reaches_the_upstream_as_sent() -> None:
    order = b'{"item": "tea", "quantity": 2}'
    async with open_harness(API) as gateway:
        result = await gateway.request("POST", gateway.path("orders"), body=order)
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.body == order


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "body must be JSON"),
        ("item=tea", "body must be JSON"),
        (b"\xff\xfe", "body must be JSON"),
        ('["item"]', "missing field: item"),
        ('{"quantity": 1}', "missing field: item"),
        ('{"item": "tea"}', "quantity must be a positive integer"),
        ('{"item": "tea", "quantity": -1}', "quantity must be a positive integer"),
        ('{"item": "tea", "quantity": "3"}', "quantity must be a positive integer"),
    ],
)
async def test_a_bad_order_gets_400_with_the_reason(body: str | bytes, reason: str) -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request("PUT", gateway.path("orders/1"), body=body)
    assert result.status == 400
    assert result.header("Content-Type") == "application/json"
    assert result.json() == {"error": reason}
    assert result.upstream is None
    assert [(call.name, call.status) for call in result.trace] == [("validate_order", 400)]


async def test_reads_pass_without_a_body() -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request("GET", gateway.path("orders"))
    assert result.status == 200
    assert result.upstream is not None
    assert json.loads(result.body)["method"] == "GET"


async def test_an_order_over_64_kib_is_refused_before_the_upstream() -> None:
    huge = json.dumps({"item": "x" * 70_000, "quantity": 1})
    async with open_harness(API) as gateway:
        result = await gateway.request("POST", gateway.path("orders"), body=huge)
    # read_body(limit=...) stops reading at the limit: the client gets 413.
    assert result.status == 413
    assert result.upstream is None
    assert [call.error for call in result.trace] == ["ClientProtocolError: Request body too large"]
