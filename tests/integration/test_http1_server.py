"""The HTTP/1.1 server end to end: a real gateway and a real upstream on 127.0.0.1 sockets.

Covers keep-alive, pipelining, request bodies (Content-Length and chunked, as the upstream receives
them), ``Expect: 100-continue``, HEAD, X-Request-ID, the access log and the error format.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawResponse, build_request, chunked, fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway


async def start(
    nursery: trio.Nursery, tmp_path: Path, upstream: RawUpstream | None = None
) -> tuple[RunningGateway, RawUpstream]:
    upstream = upstream or await start_upstream(nursery)
    write_keyless_api(
        tmp_path / "apps", api_id="echo", listen_path="/echo/", target_url=upstream.url
    )
    gateway = await start_gateway(nursery, tmp_path / "apps")
    return gateway, upstream


def assert_tyk_error(response: RawResponse, status: int) -> None:
    """A gateway-made error: Tyk's JSON error document, served as application/json."""
    assert response.status == status
    assert response.header("content-type") == b"application/json"
    document = response.json()
    assert set(document) == {"error"}
    assert isinstance(document["error"], str)
    assert document["error"]


def echoed_target(response: RawResponse) -> str:
    assert response.status == 200, response
    target: str = response.json()["target"]
    return target


async def test_keep_alive_serves_several_requests_on_one_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        for i in range(3):
            response = await client.request("GET", f"/echo/{i}")
            assert echoed_target(response) == f"/{i}"
            assert not response.closes
        # Still open: one more request on the same connection works.
        assert echoed_target(await client.request("GET", "/echo/last")) == "/last"
    assert [r.target for r in upstream.requests] == [b"/0", b"/1", b"/2", b"/last"]


async def test_connection_close_is_honoured(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, _ = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        response = await client.request("GET", "/echo/x", [("Connection", "close")])
        assert response.status == 200
        assert response.closes
        assert await client.is_closed_by_server()


async def test_http10_request_gets_an_answer_and_a_close(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        await client.send(b"GET /echo/old HTTP/1.0\r\nHost: t\r\n\r\n")
        response = await client.read_response()
        assert echoed_target(response) == "/old"
        assert not response.chunked  # a 1.0 client cannot read chunked framing
        assert await client.is_closed_by_server()


async def test_pipelined_requests_are_answered_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    pipeline = (
        build_request("GET", "/echo/1")
        + build_request("POST", "/echo/2", body=b"two")
        + build_request(
            "PUT", "/echo/3", [("Transfer-Encoding", "chunked")], chunked(b"thr", b"ee")
        )
        + build_request("GET", "/echo/4")
    )
    async with open_client(gateway.address) as client:
        await client.send(pipeline)  # one write: the gateway sees all four at once
        targets = [echoed_target(await client.read_response()) for _ in range(4)]
    assert targets == ["/1", "/2", "/3", "/4"]
    assert [bytes(r.body) for r in upstream.requests] == [b"", b"two", b"three", b""]


async def test_content_length_body_reaches_the_upstream_intact(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    body = bytes(range(256)) * 1000  # binary, several reads long
    response = await fetch(gateway.address, "POST", "/echo/up", body=body)
    assert response.json()["body_size"] == len(body)
    (received,) = upstream.requests
    assert received.method == "POST"
    assert bytes(received.body) == body
    assert received.header(b"content-length") == str(len(body)).encode()


async def test_chunked_body_sent_in_pieces_reaches_the_upstream_intact(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    parts = [b"first-", b"x" * 70000, b"-last"]
    async with open_client(gateway.address) as client:
        await client.send(build_request("POST", "/echo/c", [("Transfer-Encoding", "chunked")]))
        for part in parts:
            await client.send(b"%x\r\n%s\r\n" % (len(part), part))
        await client.send(b"0\r\n\r\n")
        response = await client.read_response()
        assert response.status == 200
        # The connection stays usable after a chunked body.
        assert echoed_target(await client.request("GET", "/echo/after")) == "/after"
    first = upstream.requests[0]
    assert bytes(first.body) == b"".join(parts)
    assert first.header(b"content-length") is None  # length unknown up front: still chunked


async def test_expect_100_continue_is_answered_before_the_body(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        await client.send(
            build_request(
                "PUT", "/echo/big", [("Expect", "100-continue"), ("Content-Length", "11")]
            )
        )
        # The client waits for 100 before sending its body: nothing of the body is sent yet.
        interim = await client.read_response()
        assert interim.status == 100
        await client.send(b"hello world")
        response = await client.read_response()
        assert response.status == 200
    assert bytes(upstream.requests[0].body) == b"hello world"


async def test_head_response_has_no_body_and_keeps_the_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def fixed(request: ReceivedRequest, reply: Reply) -> None:
        body = b"0123456789" if request.method != "HEAD" else b""
        await reply.start(200, [(b"Content-Type", b"text/plain")], content_length=10)
        await reply.send(body)

    upstream = await start_upstream(nursery, fixed)
    gateway, _ = await start(nursery, tmp_path, upstream)
    async with open_client(gateway.address) as client:
        head = await client.request("HEAD", "/echo/h")
        assert head.status == 200
        assert head.header("content-length") == b"10"
        assert head.body == b""
        # Had the gateway sent body bytes after the HEAD response, this read would see them.
        get = await client.request("GET", "/echo/h")
        assert get.body == b"0123456789"
    assert [r.method for r in upstream.requests] == ["HEAD", "GET"]


async def test_close_delimited_upstream_body_reaches_the_client(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """An upstream response framed by its close (no length, not chunked) is not a 502."""

    async def until_close(request: ReceivedRequest, reply: Reply) -> None:
        await reply.start(200, [(b"Content-Type", b"text/plain")], close_delimited=True)
        await reply.send(b"part one, ")
        await reply.send(b"part two")

    upstream = await start_upstream(nursery, until_close)
    gateway, _ = await start(nursery, tmp_path, upstream)
    async with open_client(gateway.address) as client:
        response = await client.request("GET", "/echo/stream")
        assert response.status == 200
        assert response.body == b"part one, part two"
        # The gateway is still serving this client.
        assert (await client.request("GET", "/echo/stream")).body == b"part one, part two"


async def test_unknown_path_is_a_tyk_404(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    response = await fetch(gateway.address, "GET", "/nowhere")
    assert_tyk_error(response, 404)
    assert response.json() == {"error": "Not Found"}
    assert upstream.requests == []


# -- X-Request-ID ---------------------------------------------------------------------------------


async def test_request_id_is_generated_passed_upstream_and_returned(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    first = await fetch(gateway.address, "GET", "/echo/a")
    second = await fetch(gateway.address, "GET", "/echo/b")
    ids = [first.header("x-request-id"), second.header("x-request-id")]
    assert ids[0]
    assert ids[1]
    assert ids[0] != ids[1]
    assert [r.header(b"x-request-id") for r in upstream.requests] == ids
    assert len(first.header_values("x-request-id")) == 1


async def test_client_request_id_is_kept(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    response = await fetch(gateway.address, "GET", "/echo/a", [("X-Request-ID", "abc-123")])
    assert response.header_values("x-request-id") == [b"abc-123"]
    assert upstream.requests[0].header_values(b"x-request-id") == [b"abc-123"]


async def test_gateway_made_errors_carry_a_request_id(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path)
    response = await fetch(gateway.address, "GET", "/nowhere", [("X-Request-ID", "trace-me")])
    assert_tyk_error(response, 404)
    assert response.header("x-request-id") == b"trace-me"


async def test_traceparent_passes_through(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await fetch(gateway.address, "GET", "/echo/t", [("traceparent", parent)])
    assert upstream.requests[0].header(b"traceparent") == parent.encode()


# -- access log -----------------------------------------------------------------------------------


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "trio_gateway.access"
    ]


async def test_one_json_access_log_line_per_request(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_gateway.access")
    gateway, _ = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        ok = await client.request("POST", "/echo/x?q=1", [("X-Request-ID", "rid-1")], b"abc")
        missing = await client.request("GET", "/missing")
    lines = access_lines(caplog)
    assert len(lines) == 2
    first, second = lines
    assert first["method"] == "POST"
    assert first["path"] == "/echo/x"
    assert first["api"] == "echo"
    assert first["status"] == 200
    assert first["bytes"] == len(ok.body)
    assert first["request_id"] == "rid-1"
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] >= 0
    assert second["status"] == 404
    assert second["path"] == "/missing"
    assert second["bytes"] == len(missing.body)
    assert second["request_id"] == missing.header("x-request-id").decode()  # type: ignore[union-attr]
