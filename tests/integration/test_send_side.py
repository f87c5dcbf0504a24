"""What the gateway sends, end to end on 127.0.0.1 sockets (issue 9).

A real gateway, a real upstream, native Python hooks written the way plugin authors write them.
Covers: values set by hooks that would split a message (refused as a hook error, never sent), the
framing headers (always exactly one, the gateway's), upstream framing per RFC 9112 §6.3, interim
1xx answers, the Host rules, a client that half-closes mid-body, and the hook-timeout answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer

HOOKS = """
import trio
from trio_gateway.hooks import Respond


def copy_user(ctx):
    # Common in real plugins: a query parameter becomes a header for the upstream.
    user = ctx.request.get_query_param("u")
    if user is not None:
        ctx.request.set_header("X-User", user)


def raw_header(ctx):
    # Past the helpers, straight onto the raw request.
    value = ctx.request.get_query_param("v") or ""
    ctx.raw_request.headers.append((b"x-raw", value.encode("latin-1")))


def noop(ctx):
    pass


def bad_method(ctx):
    ctx.raw_request.method = ctx.request.get_query_param("m") or "GET"


def bad_path(ctx):
    ctx.raw_request.path = ctx.request.get_query_param("p") or "/"


def answer_with_header(ctx):
    return Respond(status=200, headers={"X-Echo": ctx.request.get_query_param("e") or ""})


def response_header(ctx):
    ctx.response.set_header("X-From-Response", ctx.request.get_query_param("r") or "")


def response_length(ctx):
    # A hook that echoes a (wrong) length: the gateway's framing must win.
    ctx.response.set_body("a longer body than before")
    ctx.response.add_header("Content-Length", "3")
    ctx.response.add_header("Transfer-Encoding", "chunked")


async def stalls(ctx):
    await trio.sleep_forever()
"""

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "rewrite_response.py"
CRLF_SMUGGLE = "a%0d%0aContent-Length:%200%0d%0a%0d%0aGET%20/admin%20HTTP/1.1%0d%0aHost:%20x"


async def start(
    nursery: trio.Nursery,
    tmp_path: Path,
    middleware: dict[str, object],
    upstream: RawUpstream | None = None,
) -> tuple[RunningGateway, RawUpstream]:
    upstream = upstream or await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "hooks.py").write_text(HOOKS)
    write_keyless_api(
        apps,
        api_id="hooked",
        listen_path="/hooked/",
        target_url=upstream.url,
        custom_middleware={"driver": "python", **middleware},
    )
    gateway = await start_gateway(nursery, apps)
    return gateway, upstream


def hook(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "path": "hooks.py", **extra}


def assert_middleware_error(status: int, body: bytes) -> None:
    assert status == 500
    assert b'"error": "Middleware error"' in body


def hook_failures(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "trio_gateway.pipeline"
        and "hook failed" in r.getMessage()
        and name in r.getMessage()
    ]


# -- 1. request splitting through hooks -----------------------------------------------------------


async def test_pre_hook_copying_a_query_param_into_a_header_cannot_smuggle(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, upstream = await start(nursery, tmp_path, {"pre": [hook("copy_user")]})
    async with open_client(gateway.address) as client:
        smuggled = await client.request("GET", f"/hooked/x?u={CRLF_SMUGGLE}")
        assert_middleware_error(smuggled.status, smuggled.body)
    # The refusal is the hook's, and says so in the log.
    assert hook_failures(caplog, "copy_user")
    ok = await fetch(gateway.address, "GET", "/hooked/y?u=alice")
    assert ok.status == 200
    # Exactly one request reached the upstream: the honest one, with its header.
    assert [r.target for r in upstream.requests] == [b"/y?u=alice"]
    assert upstream.requests[0].header(b"x-user") == b"alice"


@pytest.mark.parametrize(
    ("hook_name", "query"),
    [
        ("raw_header", "v=a%0d%0aX-Injected:%201"),
        ("raw_header", "v=a%00b"),
        ("bad_method", "m=GET%20/admin"),
        ("bad_method", "m=G%0d%0aET"),
        ("bad_path", "p=/a%20HTTP/1.1%0d%0aX:%20y"),
        ("bad_path", "p=/a%09b"),
    ],
)
async def test_values_set_past_the_helpers_are_refused_too(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hook_name: str,
    query: str,
) -> None:
    gateway, upstream = await start(nursery, tmp_path, {"pre": [hook(hook_name)]})
    response = await fetch(gateway.address, "GET", f"/hooked/x?{query}")
    assert_middleware_error(response.status, response.body)
    assert hook_failures(caplog, hook_name)
    assert upstream.requests == []


async def test_a_later_hook_s_change_is_checked_after_an_earlier_hook_changed_nothing(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The runner checks only what a hook changed (performance.md): a Pre hook that changes
    nothing costs a comparison, and the Post hook's change to the same header list, in place, is
    still checked and blamed on it."""
    gateway, upstream = await start(
        nursery, tmp_path, {"pre": [hook("noop")], "post": [hook("raw_header")]}
    )
    response = await fetch(gateway.address, "GET", "/hooked/x?v=a%0d%0aX-Injected:%201")
    assert_middleware_error(response.status, response.body)
    assert hook_failures(caplog, "raw_header")
    assert upstream.requests == []
    ok = await fetch(gateway.address, "GET", "/hooked/x?v=fine")
    assert ok.status == 200
    assert upstream.requests[0].header(b"x-raw") == b"fine"


async def test_response_headers_from_hooks_are_checked(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = await start(
        nursery,
        tmp_path,
        {"pre": [hook("answer_with_header")], "response": []},
    )
    response = await fetch(gateway.address, "GET", "/hooked/x?e=a%0d%0aSet-Cookie:%20s=1")
    assert_middleware_error(response.status, response.body)
    assert not response.has_header("set-cookie")
    assert hook_failures(caplog, "answer_with_header")


async def test_response_hook_headers_are_checked(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = await start(nursery, tmp_path, {"response": [hook("response_header")]})
    async with open_client(gateway.address) as client:
        response = await client.request("GET", "/hooked/x?r=a%0d%0a%0d%0aHTTP/1.1%20200%20OK")
        assert_middleware_error(response.status, response.body)
        assert hook_failures(caplog, "response_header")
        # Nothing extra was written to the client: the next answer is the next request's.
        again = await client.request("GET", "/hooked/x?r=fine")
        assert again.status == 200
        assert again.header("x-from-response") == b"fine"


# -- 3. framing headers are the gateway's ---------------------------------------------------------


async def test_a_response_hook_cannot_add_a_second_length(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path, {"response": [hook("response_length")]})
    async with open_client(gateway.address) as client:
        response = await client.request("GET", "/hooked/x")
        assert response.status == 200
        assert response.body == b"a longer body than before"
        assert response.header_values("content-length") == [b"%d" % len(response.body)]
        assert not response.has_header("transfer-encoding")
        # The connection is still in step: a second request is answered as such.
        assert (await client.request("GET", "/hooked/x")).body == b"a longer body than before"


async def test_shipped_rewrite_response_example_sends_one_content_length(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """``examples/plugins/rewrite_response.py`` sets Content-Length itself, and the body grows."""

    async def json_answer(request: ReceivedRequest, reply: Reply) -> None:
        await reply.respond(200, [(b"Content-Type", b"application/json")], b'{"a": 1}')

    upstream = await start_upstream(nursery, json_answer)
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "rewrite_response.py").write_text(EXAMPLE.read_text())
    write_keyless_api(
        apps,
        api_id="rewrite",
        listen_path="/rw/",
        target_url=upstream.url,
        custom_middleware={
            "driver": "python",
            "response": [{"name": "wrap_response", "path": "rewrite_response.py"}],
        },
    )
    gateway = await start_gateway(nursery, apps)
    response = await fetch(gateway.address, "GET", "/rw/x")
    assert response.status == 200
    assert response.json()["data"] == {"a": 1}
    assert response.header_values("content-length") == [b"%d" % len(response.body)]


# -- 4. upstream framing (RFC 9112 §6.3), 1xx, connections ---------------------------------------


async def gzip_until_close(request: ReceivedRequest, reply: Reply) -> None:
    """A gzip-coded body framed by the close (no length, not chunked)."""
    await reply.send_raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIPPED-BYTES")
    reply.close_after = True


async def test_close_delimited_transfer_coded_response_is_passed_on(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """``Transfer-Encoding: gzip`` without chunked: the body runs to the close (§6.3 rule 3)."""
    upstream = await start_upstream(nursery, gzip_until_close)
    gateway, _ = await start(nursery, tmp_path, {}, upstream)
    async with open_client(gateway.address) as client:
        response = await client.request("GET", "/hooked/x")
        assert response.status == 200
        # Coded bytes, and the coding named, so the client can undo it.
        assert response.body == b"GZIPPED-BYTES"
        assert response.header("transfer-encoding") == b"gzip, chunked"
        assert (await client.request("GET", "/hooked/x")).body == b"GZIPPED-BYTES"


async def test_a_body_a_hook_replaced_is_not_labelled_with_the_upstream_s_coding(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery, gzip_until_close)
    gateway, _ = await start(nursery, tmp_path, {"response": [hook("response_length")]}, upstream)
    response = await fetch(gateway.address, "GET", "/hooked/x")
    assert response.status == 200
    assert response.body == b"a longer body than before"
    assert not response.has_header("transfer-encoding")
    assert response.header_values("content-length") == [b"%d" % len(response.body)]


async def test_transfer_coded_response_for_an_http10_client_is_502(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """An HTTP/1.0 client can read no transfer coding (RFC 9112 §6.1), and we do not decode."""
    upstream = await start_upstream(nursery, gzip_until_close)
    gateway, _ = await start(nursery, tmp_path, {}, upstream)
    async with open_client(gateway.address) as client:
        await client.send(b"GET /hooked/x HTTP/1.0\r\nHost: h\r\n\r\n")
        response = await client.read_response()
    assert response.status == 502
    assert b"GZIPPED-BYTES" not in response.body


async def test_interim_responses_from_the_upstream_are_skipped(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def interim_first(request: ReceivedRequest, reply: Reply) -> None:
        body = b"" if request.method == "HEAD" else b"done"
        await reply.send_raw(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\n" + body
        )

    upstream = await start_upstream(nursery, interim_first)
    gateway, _ = await start(nursery, tmp_path, {}, upstream)
    async with open_client(gateway.address) as client:
        for method in ("GET", "HEAD", "GET"):
            response = await client.request(method, "/hooked/x")
            assert response.status == 200
            assert response.header("x-final") == b"yes"
            assert not response.has_header("link")
            assert response.body == (b"" if method == "HEAD" else b"done")
    # All on one upstream connection: the interim answers left it in step.
    assert {r.connection.index for r in upstream.requests} == {0}


async def test_response_too_large_for_hooks_closes_the_upstream_connection(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_gateway._pipeline.walk.RESPONSE_HOOK_BODY_LIMIT", 1000)

    async def big(request: ReceivedRequest, reply: Reply) -> None:
        await reply.start(200, [], content_length=100_000)
        await reply.send(b"x" * 100_000)

    upstream = await start_upstream(nursery, big)
    gateway, _ = await start(nursery, tmp_path, {"response": [hook("response_header")]}, upstream)
    response = await fetch(gateway.address, "GET", "/hooked/x?r=1")
    assert response.status == 502
    with trio.fail_after(10):
        await upstream.connections[0].closed_by_peer.wait()


# -- 5. Host --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GET /hooked/x HTTP/1.1\r\n\r\n",
        b"GET /hooked/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /hooked/x HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    ],
    ids=["missing", "two", "two-http10"],
)
async def test_missing_or_duplicate_host_is_400(
    nursery: trio.Nursery, tmp_path: Path, head: bytes
) -> None:
    gateway, upstream = await start(nursery, tmp_path, {})
    async with open_client(gateway.address) as client:
        await client.send(head)
        response = await client.read_response()
    assert response.status == 400
    assert upstream.requests == []


# -- 6. a client that half-closes mid-body --------------------------------------------------------


async def test_half_close_mid_body_is_closed_quietly(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = await start(nursery, tmp_path, {})
    # The hang-up watcher and the body read race for the EOF; either way the answer is the same,
    # so try often enough that both orders occur.
    for _ in range(20):
        async with open_client(gateway.address) as client:
            await client.send(
                b"POST /hooked/x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789"
            )
            await client.send_eof()
            assert await client.read_until_closed() == b""
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- 7. hook timeout ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["pre", "post", "response"])
async def test_hook_timeout_answers_tyks_gateway_timeout(
    nursery: trio.Nursery, tmp_path: Path, stage: str
) -> None:
    gateway, _ = await start(nursery, tmp_path, {stage: [hook("stalls", timeout=0.05)]})
    response = await fetch(gateway.address, "GET", "/hooked/x")
    assert response.status == 504
    assert response.header("content-type") == b"application/json"
    assert response.json() == {"error": "Upstream service reached hard timeout."}


async def test_a_response_head_past_every_hook_check_is_still_not_sent(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer is the last line: a handler (here, the test's) whose response would split the
    head gets Tyk's hook error instead, and the bad field is not written."""

    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"X-A", b"a\r\nSet-Cookie: s=1")], body_bytes=b"x")

    server = HttpServer(handler=handler, log_requests=False)
    address = await nursery.start(server.serve, "127.0.0.1", 0)
    async with open_client(address) as client:
        response = await client.request("GET", "/")
        assert response.status == 500
        assert response.json() == {"error": "Middleware error"}
        assert not response.has_header("set-cookie")
        assert not response.has_header("x-a")
        assert response.closes
    assert any("response head refused" in r.getMessage() for r in caplog.records)
