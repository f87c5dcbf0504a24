"""What a gRPC plugin's reply can put on a wire (issue 9), end to end: a real gateway, a real
upstream, a real grpcio Dispatcher and HTTP/1.1 clients on 127.0.0.1 sockets.

A reply whose headers, method or url would split a message is a hook error (500 ``Middleware
error``), never sent; the framing headers a Response plugin returns (Tyk plugins echo the
upstream's ``Content-Length``) never make a second one.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import trio
from conftest import Server
from test_grpc_gateway_e2e import api_doc, by_hook_name, start_gateway

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import ReceivedRequest, Reply, start_upstream

SMUGGLE = "a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x"


def copy_user(o: pb.Object) -> None:
    """A Pre plugin that copies the ``u`` query parameter into a header (common in real ones)."""
    query = urllib.parse.urlsplit(o.request.url).query
    user = dict(urllib.parse.parse_qsl(query)).get("u")
    if user is not None:
        o.request.set_headers["X-User"] = user


async def test_pre_plugin_copying_a_query_param_into_a_header_cannot_smuggle(
    nursery: trio.Nursery, tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    by_hook_name(server, {"pre": copy_user})
    upstream = await start_upstream(nursery)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"pre": [{"name": "pre"}]})
    )
    smuggled = await fetch(gw.address, "GET", "/api/x?u=" + urllib.parse.quote(SMUGGLE))
    assert smuggled.status == 500
    assert smuggled.json() == {"error": "Middleware error"}
    assert any("pre[0] pre" in r.getMessage() for r in caplog.records)
    ok = await fetch(gw.address, "GET", "/api/y?u=alice")
    assert ok.status == 200
    assert [r.target for r in upstream.requests] == [b"/y?u=alice"]
    assert upstream.requests[0].header(b"x-user") == b"alice"


def set_header_name(o: pb.Object) -> None:
    o.request.set_headers["X-A: b\r\nX-Injected"] = "1"


def set_method(o: pb.Object) -> None:
    o.request.method = "GET /admin"


def set_url(o: pb.Object) -> None:
    o.request.url = "/a HTTP/1.1"


@pytest.mark.parametrize("edit", [set_header_name, set_method, set_url])
async def test_reply_values_that_would_split_the_request_are_refused(
    nursery: trio.Nursery, tmp_path: Path, server: Server, edit: object
) -> None:
    by_hook_name(server, {"pre": edit})  # type: ignore[dict-item]
    upstream = await start_upstream(nursery)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"pre": [{"name": "pre"}]})
    )
    response = await fetch(gw.address, "GET", "/api/x")
    assert response.status == 500
    assert response.json() == {"error": "Middleware error"}
    assert upstream.requests == []


async def test_response_plugin_echoing_a_length_leaves_one_content_length(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def response(o: pb.Object) -> None:
        # As Tyk plugins do: the upstream's headers back (its Content-Length included), plus a
        # new body of another length.
        o.response.headers["Content-Length"] = "2"
        o.response.raw_body = b"a different, longer body"

    async def short(request: ReceivedRequest, reply: Reply) -> None:
        await reply.respond(200, [(b"Content-Type", b"text/plain")], b"ok")

    by_hook_name(server, {"resp": response})
    upstream = await start_upstream(nursery, short)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"response": [{"name": "resp"}]})
    )
    async with open_client(gw.address) as client:
        for _ in range(2):
            got = await client.request("GET", "/api/x")
            assert got.status == 200
            assert got.body == b"a different, longer body"
            assert got.header_values("content-length") == [b"%d" % len(got.body)]


async def test_response_plugin_header_that_would_split_the_response_is_refused(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def response(o: pb.Object) -> None:
        o.response.headers["X-Note"] = "a\r\nSet-Cookie: session=stolen"

    by_hook_name(server, {"resp": response})
    upstream = await start_upstream(nursery)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"response": [{"name": "resp"}]})
    )
    got = await fetch(gw.address, "GET", "/api/x")
    assert got.status == 500
    assert got.json() == {"error": "Middleware error"}
    assert not got.has_header("set-cookie")


async def test_response_plugin_body_replacing_a_coded_one_is_sent_plain(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def response(o: pb.Object) -> None:
        o.response.raw_body = b"plain now"

    async def gzip_until_close(request: ReceivedRequest, reply: Reply) -> None:
        await reply.send_raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIPPED")
        reply.close_after = True

    by_hook_name(server, {"resp": response})
    upstream = await start_upstream(nursery, gzip_until_close)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"response": [{"name": "resp"}]})
    )
    got = await fetch(gw.address, "GET", "/api/x")
    assert got.status == 200
    assert got.body == b"plain now"
    assert not got.has_header("transfer-encoding")
    assert got.header_values("content-length") == [b"9"]
