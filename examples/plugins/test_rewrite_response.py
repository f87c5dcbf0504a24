"""Tests for ``rewrite_response.py``, written as its author would, with the kit.

The upstream is scripted per test (``upstream=``); the hook's result is what the client gets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trio_gateway.testing import SeenRequest, UpstreamReply, open_harness

API = Path(__file__).resolve().parents[1] / "apps-plugins" / "rewrite-response.json"


def answer(reply: UpstreamReply) -> Callable[[SeenRequest], UpstreamReply]:
    """An upstream that always gives ``reply``."""

    def script(_: SeenRequest) -> UpstreamReply:
        return reply

    return script


async def test_a_json_answer_is_wrapped_with_its_status() -> None:
    reply = UpstreamReply.json({"error": "no such order"}, status=404)
    async with open_harness(API, upstream=answer(reply)) as gateway:
        result = await gateway.request("GET", gateway.path("orders/9"))
    assert result.status == 404
    assert result.header("X-Rewritten-By") == "trio-gateway"
    assert result.json() == {
        "data": {"error": "no such order"},
        "status": 404,
        "api": "plugins-rewrite-response",
    }


async def test_the_default_echo_is_wrapped_too() -> None:
    async with open_harness(API, sockets=True) as gateway:
        result = await gateway.request("GET", gateway.path("things"))
    envelope = result.json()
    assert envelope["status"] == 200
    assert envelope["data"]["path"] == "/things"
    # The hook changed the body's length: the client still gets a consistent response.
    assert result.header("Content-Length") == str(len(result.body))


async def test_text_and_broken_json_pass_unchanged() -> None:
    for reply in (
        UpstreamReply(headers=[("Content-Type", "text/plain")], body=b"plain"),
        UpstreamReply(headers=[("Content-Type", "application/json")], body=b"{broken"),
    ):
        async with open_harness(API, upstream=answer(reply)) as gateway:
            result = await gateway.request()
        assert result.body == reply.body
        assert result.header("X-Rewritten-By") is None
