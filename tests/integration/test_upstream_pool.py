"""Upstream keep-alive: connections reused (counted at the upstream), stale ones retried safely."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway


async def gateway_for(
    nursery: trio.Nursery, tmp_path: Path, upstream: RawUpstream
) -> RunningGateway:
    write_keyless_api(tmp_path, api_id="pool", listen_path="/p/", target_url=upstream.url)
    return await start_gateway(nursery, tmp_path)


async def test_sequential_requests_share_one_upstream_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    gw = await gateway_for(nursery, tmp_path, upstream)

    async with open_client(gw.address) as client:
        for i in range(5):
            assert (await client.request("GET", f"/p/{i}")).status == 200
    # Separate client connections still share the pooled upstream connection.
    for i in range(3):
        assert (await fetch(gw.address, "POST", f"/p/post{i}", body=b"abc")).status == 200

    assert len(upstream.requests) == 8
    assert upstream.accepted == 1
    assert [r.index_on_connection for r in upstream.requests] == list(range(8))
    assert list(gw.gateway.pool.opened.values()) == [1]


async def test_concurrent_requests_open_connections_then_reuse_them(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    release = trio.Event()

    async def held(request: ReceivedRequest, reply: Reply) -> None:
        if request.target.startswith(b"/held"):
            await release.wait()
        await reply.respond(200, body=b"ok")

    upstream = await start_upstream(nursery, held)
    gw = await gateway_for(nursery, tmp_path, upstream)

    statuses: list[int] = []

    async def one(i: int) -> None:
        statuses.append((await fetch(gw.address, "GET", f"/p/held{i}")).status)

    async with trio.open_nursery() as clients:
        clients.start_soon(one, 1)
        clients.start_soon(one, 2)
        await upstream.wait_until(lambda: len(upstream.requests) == 2)
        release.set()
    for i in range(4):
        assert (await fetch(gw.address, "GET", f"/p/after{i}")).status == 200

    assert statuses == [200, 200]
    assert upstream.accepted == 2


async def test_upstream_connection_close_header_prevents_reuse(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def closing(request: ReceivedRequest, reply: Reply) -> None:
        reply.close_after = True
        await reply.respond(200, body=b"bye")

    upstream = await start_upstream(nursery, closing)
    gw = await gateway_for(nursery, tmp_path, upstream)

    for i in range(3):
        response = await fetch(gw.address, "GET", f"/p/{i}")
        assert (response.status, response.body) == (200, b"bye")
    assert upstream.accepted == 3


async def test_idle_connection_closed_by_upstream_is_not_reused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The upstream times out an idle keep-alive connection: the next request, even a POST,
    goes out on a new connection instead of failing."""
    upstream = await start_upstream(nursery)
    gw = await gateway_for(nursery, tmp_path, upstream)

    assert (await fetch(gw.address, "GET", "/p/first")).status == 200
    await upstream.wait_until(lambda: not upstream.connections[0].busy)
    assert await upstream.close_idle_connections() == 1
    assert (await fetch(gw.address, "POST", "/p/second", body=b"data")).status == 200
    assert (await fetch(gw.address, "GET", "/p/third")).status == 200

    assert upstream.accepted == 2
    assert [r.target for r in upstream.requests] == [b"/first", b"/second", b"/third"]


async def drop_on_reuse(request: ReceivedRequest, reply: Reply) -> None:
    """Close a reused connection on its next request without answering (a stale keep-alive
    whose close crossed the request on the wire); answer fresh connections."""
    if request.index_on_connection > 0:
        await reply.abort()
    else:
        await reply.respond(200, body=b"fresh")


async def test_stale_pooled_connection_retried_once_for_get(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery, drop_on_reuse)
    gw = await gateway_for(nursery, tmp_path, upstream)

    assert (await fetch(gw.address, "GET", "/p/one")).status == 200
    response = await fetch(gw.address, "GET", "/p/two")

    assert (response.status, response.body) == (200, b"fresh")
    assert upstream.accepted == 2
    # The GET reached the upstream twice: once on the stale connection, once on a fresh one.
    assert [(r.target, r.connection.index) for r in upstream.requests] == [
        (b"/one", 0),
        (b"/two", 0),
        (b"/two", 1),
    ]


async def test_stale_pooled_connection_not_retried_for_post(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery, drop_on_reuse)
    gw = await gateway_for(nursery, tmp_path, upstream)

    assert (await fetch(gw.address, "GET", "/p/one")).status == 200
    response = await fetch(gw.address, "POST", "/p/order", body=b"buy 1")

    assert response.status == 502
    assert response.header(b"content-type") == b"application/json"
    assert set(response.json()) == {"error"}
    # Not sent twice: a POST may not be idempotent.
    assert [r.target for r in upstream.requests] == [b"/one", b"/order"]
    assert upstream.accepted == 1


async def test_close_delimited_upstream_body_is_relayed_whole(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """An upstream body that ends with the connection close reaches the client complete."""

    async def old_style(request: ReceivedRequest, reply: Reply) -> None:
        await reply.start(200, close_delimited=True)
        for part in (b"abc", b"def", b"ghi"):
            await reply.send(part)

    upstream = await start_upstream(nursery, old_style)
    gw = await gateway_for(nursery, tmp_path, upstream)

    async with open_client(gw.address) as client:
        first = await client.request("GET", "/p/a")
        second = await client.request("GET", "/p/b")

    assert (first.status, first.body) == (200, b"abcdefghi")
    assert (second.status, second.body) == (200, b"abcdefghi")
    assert upstream.accepted == 2


async def test_bodiless_responses_keep_the_connection_reusable(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """HEAD, 204 and 304 responses have no body: the pooled connection stays in sync."""

    async def varied(request: ReceivedRequest, reply: Reply) -> None:
        if request.target == b"/empty":
            await reply.send_raw(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif request.target == b"/cached":
            await reply.send_raw(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
        else:
            await reply.respond(200, [(b"X-Len", b"5")], b"hello")

    upstream = await start_upstream(nursery, varied)
    gw = await gateway_for(nursery, tmp_path, upstream)

    async with open_client(gw.address) as client:
        head = await client.request("HEAD", "/p/doc")
        empty = await client.request("GET", "/p/empty")
        cached = await client.request("GET", "/p/cached", [("If-None-Match", '"v1"')])
        full = await client.request("GET", "/p/doc")

    assert (head.status, head.body, head.header(b"content-length")) == (200, b"", b"5")
    assert (empty.status, empty.body) == (204, b"")
    assert (cached.status, cached.header(b"etag")) == (304, b'"v1"')
    assert (full.status, full.body) == (200, b"hello")
    assert [r.method for r in upstream.requests] == ["HEAD", "GET", "GET", "GET"]
    assert upstream.accepted == 1


async def test_malformed_upstream_response_is_502(nursery: trio.Nursery, tmp_path: Path) -> None:
    async def garbage(request: ReceivedRequest, reply: Reply) -> None:
        await reply.send_raw(b"HTTP/1.1 ok-ish\r\nthis is not a header\r\n\r\n")
        reply.close_after = True

    upstream = await start_upstream(nursery, garbage)
    gw = await gateway_for(nursery, tmp_path, upstream)

    response = await fetch(gw.address, "GET", "/p/x")

    assert response.status == 502
    assert set(response.json()) == {"error"}


async def test_upstream_stalling_mid_body_is_cut_off(nursery: trio.Nursery, tmp_path: Path) -> None:
    """An upstream that stops sending mid-body is bounded by body_read_timeout: the client's
    connection is closed (a short body), the upstream connection dropped, the gateway fine."""
    never = trio.Event()

    async def stall(request: ReceivedRequest, reply: Reply) -> None:
        if request.target == b"/stall":
            await reply.start(200, content_length=100)
            await reply.send(b"z" * 10)
            await never.wait()
        await reply.respond(200, body=b"ok")

    upstream = await start_upstream(nursery, stall)
    write_keyless_api(tmp_path, api_id="pool", listen_path="/p/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path, body_read_timeout=0.3)

    async with open_client(gw.address) as client:
        await client.send(b"GET /p/stall HTTP/1.1\r\nHost: x\r\n\r\n")
        received = await client.read_until_closed()
    assert received.startswith(b"HTTP/1.1 200")
    assert received.endswith(b"\r\n\r\n" + b"z" * 10)
    with trio.fail_after(10):
        await upstream.requests[0].connection.closed_by_peer.wait()
    assert (await fetch(gw.address, "GET", "/p/next")).status == 200
