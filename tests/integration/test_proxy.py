"""Proxying end to end: a real gateway and a scriptable upstream on 127.0.0.1 sockets.

Routing (listen paths, domains, strip_listen_path, query strings), the headers a proxy must add,
rewrite and remove, upstream failures (502/504), streaming responses, and a client hanging up.
"""

from __future__ import annotations

import socket
from pathlib import Path

import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawResponse, fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._config.model import GatewayConfig


def assert_tyk_error(response: RawResponse, status: int) -> None:
    """A gateway-made error: the status, and Tyk's JSON body with its Content-Type."""
    assert response.status == status
    assert response.header(b"content-type") == b"application/json"
    document = response.json()
    assert isinstance(document, dict)
    assert set(document) == {"error"}
    assert isinstance(document["error"], str)
    assert document["error"]


def only(upstream: RawUpstream) -> ReceivedRequest:
    assert len(upstream.requests) == 1, upstream.requests
    return upstream.requests[0]


async def test_query_string_reaches_upstream_byte_for_byte(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="q", listen_path="/q/", target_url=upstream.url + "/")
    gw = await start_gateway(nursery, tmp_path)

    query = "a=1&b=%2F%2f&c=&&d=%20+x;y=%E2%82%AC&e=a=b&f[]=1&=&g=%zz"
    response = await fetch(gw.address, "GET", f"/q/items?{query}")

    assert response.status == 200
    assert only(upstream).target == f"/items?{query}".encode()


async def test_strip_listen_path_and_target_base_path(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    base = upstream.url + "/base/"
    write_keyless_api(tmp_path, api_id="strip", listen_path="/strip/", target_url=base)
    write_keyless_api(
        tmp_path, api_id="keep", listen_path="/keep/", target_url=base, strip_listen_path=False
    )
    gw = await start_gateway(nursery, tmp_path)

    assert (await fetch(gw.address, "GET", "/strip/a/b")).status == 200
    assert (await fetch(gw.address, "GET", "/keep/a/b")).status == 200
    assert (await fetch(gw.address, "GET", "/strip")).status == 200

    targets = [r.target for r in upstream.requests]
    assert targets == [b"/base/a/b", b"/base/keep/a/b", b"/base/"]


async def test_longest_listen_path_wins_on_segment_boundaries(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    short = await start_upstream(nursery)
    long = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="short", listen_path="/shop/", target_url=short.url)
    write_keyless_api(tmp_path, api_id="long", listen_path="/shop/cart/", target_url=long.url)
    gw = await start_gateway(nursery, tmp_path)

    for path in ("/shop/cart", "/shop/cart/1", "/shop//cart/./2"):
        assert (await fetch(gw.address, "GET", path)).status == 200
    for path in ("/shop/cartx", "/shop/x/cart/1", "/shop"):
        assert (await fetch(gw.address, "GET", path)).status == 200
    not_found = await fetch(gw.address, "GET", "/shopping")

    assert [r.target for r in long.requests] == [b"/", b"/1", b"/2"]
    assert [r.target for r in short.requests] == [b"/cartx", b"/x/cart/1", b"/"]
    assert_tyk_error(not_found, 404)


async def test_domain_routing_before_listen_path(nursery: trio.Nursery, tmp_path: Path) -> None:
    tenant = await start_upstream(nursery)
    anyone = await start_upstream(nursery)
    write_keyless_api(
        tmp_path, api_id="tenant", listen_path="/api/", target_url=tenant.url, domain="a.example"
    )
    write_keyless_api(tmp_path, api_id="any", listen_path="/api/", target_url=anyone.url)
    write_keyless_api(
        tmp_path, api_id="only-b", listen_path="/b/", target_url=tenant.url, domain="b.example"
    )
    gw = await start_gateway(nursery, tmp_path)

    assert (await fetch(gw.address, "GET", "/api/1", [("Host", "A.Example:8080")])).status == 200
    assert (await fetch(gw.address, "GET", "/api/2", [("Host", "other.example")])).status == 200
    assert (await fetch(gw.address, "GET", "/b/3", [("Host", "b.example")])).status == 200
    assert_tyk_error(await fetch(gw.address, "GET", "/b/4", [("Host", "a.example")]), 404)

    assert [r.target for r in tenant.requests] == [b"/1", b"/3"]
    assert [r.target for r in anyone.requests] == [b"/2"]


async def test_nothing_matches_is_tyk_404(nursery: trio.Nursery, tmp_path: Path) -> None:
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="a", listen_path="/a/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    assert_tyk_error(await fetch(gw.address, "GET", "/nope"), 404)
    assert_tyk_error(await fetch(gw.address, "GET", "/"), 404)
    assert upstream.accepted == 0


async def test_hop_by_hop_headers_removed_both_ways(nursery: trio.Nursery, tmp_path: Path) -> None:
    async def respond(request: ReceivedRequest, reply: Reply) -> None:
        await reply.respond(
            200,
            [
                (b"Connection", b"X-Up-Hop"),
                (b"X-Up-Hop", b"secret"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Proxy-Authenticate", b"Basic"),
                (b"Trailer", b"X-Checksum"),
                (b"X-Up-Normal", b"kept"),
            ],
            b"ok",
        )

    upstream = await start_upstream(nursery, respond)
    write_keyless_api(tmp_path, api_id="h", listen_path="/h/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    response = await fetch(
        gw.address,
        "GET",
        "/h/x",
        [
            ("Connection", "keep-alive, X-Client-Hop"),
            ("X-Client-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-Client-Normal", "kept"),
        ],
    )

    assert response.status == 200
    assert response.body == b"ok"
    seen = only(upstream).header_names()
    for hop in (
        b"x-client-hop",
        b"keep-alive",
        b"te",
        b"trailer",
        b"proxy-authorization",
        b"proxy-connection",
    ):
        assert hop not in seen
    # The gateway may send its own Connection header upstream, but never the client's tokens.
    assert b"x-client-hop" not in (only(upstream).header(b"connection") or b"").lower()
    assert only(upstream).header(b"x-client-normal") == b"kept"
    for hop in (b"x-up-hop", b"keep-alive", b"proxy-authenticate", b"trailer"):
        assert not response.has_header(hop)
    assert b"x-up-hop" not in (response.header(b"connection") or b"").lower()
    assert response.header(b"x-up-normal") == b"kept"


async def test_forwarded_headers_appended_and_set(nursery: trio.Nursery, tmp_path: Path) -> None:
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="f", listen_path="/f/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    await fetch(
        gw.address,
        "GET",
        "/f/1",
        [("Host", "public.example:8443"), ("X-Forwarded-For", "203.0.113.7, 10.0.0.1")],
    )
    await fetch(gw.address, "GET", "/f/2", [("Host", "public.example")])

    chained, fresh = upstream.requests
    assert chained.header_values(b"x-forwarded-for") == [b"203.0.113.7, 10.0.0.1, 127.0.0.1"]
    assert fresh.header_values(b"x-forwarded-for") == [b"127.0.0.1"]
    assert chained.header_values(b"x-forwarded-proto") == [b"http"]
    assert chained.header_values(b"x-forwarded-host") == [b"public.example:8443"]
    assert fresh.header_values(b"x-forwarded-host") == [b"public.example"]


async def test_host_rewritten_unless_preserve_host_header(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="rewrite", listen_path="/rewrite/", target_url=upstream.url)
    write_keyless_api(
        tmp_path,
        api_id="preserve",
        listen_path="/preserve/",
        target_url=upstream.url,
        proxy={
            "listen_path": "/preserve/",
            "target_url": upstream.url,
            "strip_listen_path": True,
            "preserve_host_header": True,
        },
    )
    gw = await start_gateway(nursery, tmp_path)

    await fetch(gw.address, "GET", "/rewrite/", [("Host", "public.example")])
    await fetch(gw.address, "GET", "/preserve/", [("Host", "public.example")])

    rewritten, preserved = upstream.requests
    host, port = upstream.address
    assert rewritten.header_values(b"host") == [f"{host}:{port}".encode()]
    assert preserved.header_values(b"host") == [b"public.example"]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connect_failure_is_502(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = closed_port()
    target = f"http://127.0.0.1:{port}/"
    write_keyless_api(tmp_path, api_id="down", listen_path="/down/", target_url=target)
    gw = await start_gateway(nursery, tmp_path)

    response = await fetch(gw.address, "GET", "/down/x")

    assert_tyk_error(response, 502)
    assert str(port) not in response.body.decode()  # no internal detail


async def test_upstream_timeout_is_504_and_upstream_request_cancelled(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    never = trio.Event()

    async def hold(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hold)
    write_keyless_api(tmp_path, api_id="slow", listen_path="/slow/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path, config=GatewayConfig(proxy_default_timeout=0.3))

    with trio.fail_after(10):
        response = await fetch(gw.address, "GET", "/slow/x")

    assert_tyk_error(response, 504)
    # The gateway gave up on the exchange: it closes the upstream connection, not reuses it.
    conn = only(upstream).connection
    with trio.fail_after(10):
        await conn.closed_by_peer.wait()


async def test_response_streams_as_it_arrives(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Server-sent events: the client sees the first event while the upstream holds the rest."""
    release = trio.Event()

    async def events(request: ReceivedRequest, reply: Reply) -> None:
        await reply.start(200, [(b"Content-Type", b"text/event-stream")])
        await reply.send(b"data: one\n\n")
        await release.wait()
        await reply.send(b"data: two\n\n")
        await reply.end()

    upstream = await start_upstream(nursery, events)
    write_keyless_api(tmp_path, api_id="sse", listen_path="/sse/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    async with open_client(gw.address) as client:
        await client.send(b"GET /sse/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while b"data: one\n\n" not in received:
                chunk = await client.stream.receive_some()
                assert chunk, "gateway closed the stream early"
                received += chunk
        assert b"data: two" not in received
        assert not release.is_set()
        release.set()
        with trio.fail_after(10):
            while not received.endswith(b"0\r\n\r\n"):
                chunk = await client.stream.receive_some()
                assert chunk
                received += chunk

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in head
    assert body == b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"


async def test_client_disconnect_while_upstream_thinks_cancels_upstream_request(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    never = trio.Event()

    async def hold(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hold)
    write_keyless_api(tmp_path, api_id="hang", listen_path="/hang/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    async with open_client(gw.address) as client:
        await client.send(b"GET /hang/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await upstream.wait_until(lambda: len(upstream.requests) == 1)
    # The client is gone: the gateway must drop the upstream exchange, closing its connection.
    with trio.fail_after(10):
        await only(upstream).connection.closed_by_peer.wait()
    # ...and go on serving others.
    assert (await fetch(gw.address, "GET", "/nothing-here")).status == 404


async def test_client_disconnect_mid_response_body_closes_upstream_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    never = trio.Event()

    async def half(request: ReceivedRequest, reply: Reply) -> None:
        await reply.start(200, content_length=1000)
        await reply.send(b"x" * 10)
        await never.wait()

    upstream = await start_upstream(nursery, half)
    write_keyless_api(tmp_path, api_id="half", listen_path="/half/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    async with open_client(gw.address) as client:
        await client.send(b"GET /half/x HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(10):
            while b"xxxxxxxxxx" not in client.buffered:
                assert await client._fill()
    with trio.fail_after(10):
        await only(upstream).connection.closed_by_peer.wait()
    # The gateway itself is still fine.
    assert (await fetch(gw.address, "GET", "/nothing-here")).status == 404


async def test_request_body_streams_to_upstream(nursery: trio.Nursery, tmp_path: Path) -> None:
    """The upstream gets the client's body as sent, framed by Content-Length or chunked."""
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="b", listen_path="/b/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)
    body = bytes(range(256)) * 300

    async with open_client(gw.address) as client:
        r1 = await client.request("POST", "/b/cl", body=body)
        r2 = await client.request(
            "POST", "/b/te", [("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n"
        )

    assert r1.status == r2.status == 200
    by_target = {r.target: r for r in upstream.requests}
    assert bytes(by_target[b"/cl"].body) == body
    assert by_target[b"/cl"].header(b"content-length") == str(len(body)).encode()
    assert bytes(by_target[b"/te"].body) == b"hello"


async def test_upstream_dropping_mid_body_closes_client_connection_only(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def truncated(request: ReceivedRequest, reply: Reply) -> None:
        if request.target == b"/cut":
            await reply.start(200, content_length=1000)
            await reply.send(b"y" * 10)
            await reply.abort()
        else:
            await reply.respond(200, body=b"fine")

    upstream = await start_upstream(nursery, truncated)
    write_keyless_api(tmp_path, api_id="cut", listen_path="/u/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    async with open_client(gw.address) as client:
        await client.send(b"GET /u/cut HTTP/1.1\r\nHost: x\r\n\r\n")
        received = await client.read_until_closed()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"y" * 10  # truncated: the client sees a short body and the close

    response = await fetch(gw.address, "GET", "/u/ok")
    assert response.status == 200
    assert response.body == b"fine"
