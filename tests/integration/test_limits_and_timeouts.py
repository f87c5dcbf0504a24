"""What the server answers by itself: malformed requests, smuggling shapes, size limits, timeouts.

Every such answer is Tyk's JSON error document (``Content-Type: application/json``), and after a
refusal that leaves the byte stream in doubt the connection is closed. Timeout tests use real, short
timeouts (a few tenths of a second) and generous bounds on the waits around them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawResponse, build_request, chunked, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway

SHORT = 0.3


async def start(
    nursery: trio.Nursery, tmp_path: Path, **limits: Any
) -> tuple[RunningGateway, RawUpstream]:
    upstream = await start_upstream(nursery)
    write_keyless_api(
        tmp_path / "apps", api_id="echo", listen_path="/echo/", target_url=upstream.url
    )
    gateway = await start_gateway(nursery, tmp_path / "apps", **limits)
    return gateway, upstream


def assert_tyk_error(response: RawResponse, status: int) -> None:
    assert response.status == status
    assert response.header("content-type") == b"application/json"
    document = response.json()
    assert list(document) == ["error"]
    assert isinstance(document["error"], str)
    assert document["error"]


async def refused_and_closed(
    gateway: RunningGateway, data: bytes, status: int, *, then: bytes = b""
) -> RawResponse:
    """Send ``data`` (and ``then``), expect a ``status`` error and the connection closed."""
    async with open_client(gateway.address) as client:
        await client.send(data + then)
        response = await client.read_response()
        assert_tyk_error(response, status)
        assert response.closes
        # Closed, and nothing after the error: pipelined bytes were not served as requests.
        assert await client.is_closed_by_server()
    return response


# -- malformed requests and smuggling shapes ------------------------------------------------------

NEXT = build_request("GET", "/echo/smuggled")

BAD_REQUESTS = {
    "garbage-request-line": b"HELLO\r\n\r\n",
    "tls-to-plain-port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "bad-version": b"GET /echo/ HTTP/1.7\r\nHost: h\r\n\r\n",
    "space-in-target": b"GET /echo/a b HTTP/1.1\r\nHost: h\r\n\r\n",
    "header-without-colon": b"GET /echo/ HTTP/1.1\r\nHost h\r\n\r\n",
    "nul-in-header": b"GET /echo/ HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "space-before-colon": b"GET /echo/ HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
}

SMUGGLING = {
    "cl-and-te": (
        b"POST /echo/ HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two-different-cls": (
        b"POST /echo/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"
    ),
    "bad-chunk-size": (
        b"POST /echo/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"-5\r\nabc\r\n0\r\n\r\n"
    ),
    "obs-fold": b"GET /echo/ HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n  b\r\n\r\n",
    "te-chunked-not-last": (
        b"POST /echo/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("data", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_malformed_request_is_a_400_and_a_close(
    nursery: trio.Nursery, tmp_path: Path, data: bytes
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    await refused_and_closed(gateway, data, 400, then=NEXT)
    assert upstream.requests == []


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_smuggling_shape_is_a_400_and_a_close(
    nursery: trio.Nursery, tmp_path: Path, data: bytes
) -> None:
    gateway, upstream = await start(nursery, tmp_path)
    await refused_and_closed(gateway, data, 400, then=NEXT)
    # Neither the request nor what could have been smuggled behind it reached the upstream.
    assert upstream.requests == []


async def test_bad_chunk_after_the_body_started_closes_the_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A framing error found mid-body (the request is already on its way): no further requests."""
    gateway, upstream = await start(nursery, tmp_path)
    async with open_client(gateway.address) as client:
        await client.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")]))
        await client.send(b"3\r\nabc\r\n")
        await upstream.wait_until(lambda: len(upstream.requests) == 1)
        await client.send(b"zz\r\n" + NEXT)
        data = await client.read_until_closed()
    assert b"/smuggled" not in data
    assert all(r.target != b"/smuggled" for r in upstream.requests)
    if data:  # the gateway may answer before closing; if so, with an error
        assert data.startswith(b"HTTP/1.1 4"), data


# -- size limits ----------------------------------------------------------------------------------


async def test_header_section_too_large_is_431(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path, max_header_bytes=2048)
    big = build_request("GET", "/echo/", [("X-Big", "a" * 4000)])
    await refused_and_closed(gateway, big, 431)
    many = build_request("GET", "/echo/", [(f"X-H{i}", "v" * 20) for i in range(200)])
    await refused_and_closed(gateway, many, 431)
    assert upstream.requests == []


async def test_header_section_under_the_limit_in_many_pieces_is_served(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path, max_header_bytes=2048)
    request = build_request("GET", "/echo/ok", [("X-Pad", "p" * 1500)])
    async with open_client(gateway.address) as client:
        for i in range(0, len(request), 100):
            await client.send(request[i : i + 100])
        response = await client.read_response()
    assert response.status == 200


async def test_endless_header_line_is_431(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, _ = await start(nursery, tmp_path, max_header_bytes=2048)
    async with open_client(gateway.address) as client:
        await client.send(b"GET /echo/ HTTP/1.1\r\nX-Endless: ")
        # Far more than one read's worth (so the gateway sees it in several reads), never ending
        # the line; the gateway answers and closes long before the end.
        try:
            for _ in range(1000):
                await client.send(b"a" * 1000)
        except trio.BrokenResourceError:
            pass
        response = await client.read_response()
        assert_tyk_error(response, 431)


async def test_content_length_over_the_body_limit_is_413(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, upstream = await start(nursery, tmp_path, max_request_body_bytes=1000)
    head = build_request("POST", "/echo/", [("Content-Length", "1001")])
    # Refused on the head alone: the client need not send the body.
    await refused_and_closed(gateway, head, 413)
    assert upstream.requests == []


async def test_body_at_the_limit_is_served(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path, max_request_body_bytes=1000)
    async with open_client(gateway.address) as client:
        assert (await client.request("POST", "/echo/", body=b"x" * 1000)).status == 200
        chunked_request = build_request(
            "POST", "/echo/", [("Transfer-Encoding", "chunked")], chunked(b"y" * 600, b"z" * 400)
        )
        await client.send(chunked_request)
        assert (await client.read_response()).status == 200
    assert [len(r.body) for r in upstream.requests] == [1000, 1000]


async def test_chunked_body_over_the_limit_is_413(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, _ = await start(nursery, tmp_path, max_request_body_bytes=1000)
    body = chunked(b"a" * 600, b"b" * 600)
    request = build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")], body)
    await refused_and_closed(gateway, request, 413, then=NEXT)


async def test_chunked_body_crossing_the_limit_later_is_413(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The limit is crossed after the upstream already got the start of the body."""
    gateway, upstream = await start(nursery, tmp_path, max_request_body_bytes=1000)
    async with open_client(gateway.address) as client:
        await client.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")]))
        await client.send(b"258\r\n" + b"a" * 600 + b"\r\n")
        await upstream.wait_until(lambda: len(upstream.requests) == 1)
        await client.send(b"258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n")
        response = await client.read_response()
        assert_tyk_error(response, 413)
        assert await client.is_closed_by_server()
    # The upstream never received a complete over-limit body.
    assert upstream.requests[0].body_size <= 1000


# -- timeouts -------------------------------------------------------------------------------------


async def test_slowloris_head_is_cut_off_with_408(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A client trickling its head keeps sending, yet the head deadline still ends it."""
    gateway, _ = await start(nursery, tmp_path, header_read_timeout=SHORT)
    trickle = b"GET /echo/ HTTP/1.1\r\nHost: h\r\n" + b"X-Slow: " + b"s" * 200
    async with open_client(gateway.address) as client:
        started = trio.current_time()
        with trio.move_on_after(10):
            try:
                for byte in trickle:
                    await client.send(bytes([byte]))
                    await trio.sleep(SHORT / 10)  # the slow client's pace, not a synchronisation
            except trio.BrokenResourceError:
                pass  # the gateway closed on us mid-trickle: fine, read what it said
        response = await client.read_response()
        elapsed = trio.current_time() - started
        assert_tyk_error(response, 408)
        assert await client.is_closed_by_server()
    assert SHORT <= elapsed < 5


async def test_idle_connection_that_never_sends_is_closed_quietly(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path, keepalive_timeout=SHORT)
    async with open_client(gateway.address) as client:
        started = trio.current_time()
        assert await client.is_closed_by_server()  # no 408 for a connection that said nothing
        assert trio.current_time() - started >= SHORT * 0.5  # not at once


async def test_idle_keep_alive_connection_is_closed_after_the_timeout(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path, keepalive_timeout=SHORT)
    async with open_client(gateway.address) as client:
        assert (await client.request("GET", "/echo/1")).status == 200
        idle_from = trio.current_time()
        assert await client.is_closed_by_server()
        assert trio.current_time() - idle_from >= SHORT * 0.5  # not at once


async def test_keep_alive_timeout_does_not_cut_a_busy_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The idle bound restarts with every request: a connection in use outlives it."""
    gateway, _ = await start(nursery, tmp_path, keepalive_timeout=SHORT)
    async with open_client(gateway.address) as client:
        started = trio.current_time()
        while trio.current_time() - started < SHORT * 3:
            assert (await client.request("GET", "/echo/")).status == 200
            await trio.sleep(SHORT / 3)  # a client pausing between requests


async def test_stalled_request_body_times_out(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, upstream = await start(nursery, tmp_path, body_read_timeout=SHORT)
    async with open_client(gateway.address) as client:
        await client.send(build_request("POST", "/echo/", [("Content-Length", "100")]) + b"part")
        data = await client.read_until_closed()
    # Either a 408 before the close or a plain close: never a 5xx, never a hang.
    if data:
        assert data.startswith(b"HTTP/1.1 408 "), data
    assert all(r.body_size < 100 for r in upstream.requests)


async def test_stalled_request_body_gets_a_408(nursery: trio.Nursery, tmp_path: Path) -> None:
    gateway, _ = await start(nursery, tmp_path, body_read_timeout=SHORT)
    async with open_client(gateway.address) as client:
        await client.send(build_request("POST", "/echo/", [("Content-Length", "100")]) + b"part")
        response = await client.read_response()
        assert_tyk_error(response, 408)
        assert await client.is_closed_by_server()


async def test_client_that_stops_reading_is_cut_off(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A client that never reads a large response does not hold its connection (and the
    upstream request behind it) forever: after ``send_timeout`` without progress the gateway
    closes both, and goes on serving others."""

    async def endless(request: ReceivedRequest, reply: Reply) -> None:
        if request.target.endswith(b"/small"):
            await reply.respond(200, body=b"ok")
            return
        await reply.start(200)  # chunked, never ends
        chunk = b"x" * 65536
        try:
            while True:
                await reply.send(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    upstream = await start_upstream(nursery, endless)
    write_keyless_api(
        tmp_path / "apps", api_id="echo", listen_path="/echo/", target_url=upstream.url
    )
    gateway = await start_gateway(nursery, tmp_path / "apps", send_timeout=SHORT)

    stream = await trio.open_tcp_stream(*gateway.address)
    async with stream:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await stream.send_all(build_request("GET", "/echo/big"))
        # Never read. The gateway's writes stall, then it gives up on the exchange.
        with trio.fail_after(10):
            await upstream.wait_until(lambda: len(upstream.requests) == 1)
            await upstream.requests[0].connection.closed_by_peer.wait()
    async with open_client(gateway.address) as client:
        assert (await client.request("GET", "/echo/small")).status == 200
