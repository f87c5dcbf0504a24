"""The grpc driver through the real pipeline, against a real grpcio Dispatcher.

The server's handler records the Object it received and answers with a changed copy, so each test
checks both directions: what Tyk's gateway sends (§4.3) and what it applies (§4.4–4.7).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from conftest import Server, free_port

from plugin_drivers import create_driver, open_shared
from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from plugin_drivers.grpc.client import GrpcChannel, open_grpc_channel
from plugin_drivers.grpc.driver import GrpcDriver
from trio_gateway._apidef.model import (
    ApiDefinition,
    EndpointPlugin,
    MiddlewareConfig,
    PluginRef,
)
from trio_gateway._exchange import Request, Response
from trio_gateway._pipeline.build import build_pipeline
from trio_gateway._pipeline.chain import HookDefaults
from trio_gateway._pipeline.exchange import Exchange
from trio_gateway._pipeline.runner import ApiPipeline
from trio_gateway._session.model import AccessDefinition, AllowedUrl, Session
from trio_gateway.drivers import DriverSettings, GrpcSettings
from trio_gateway.errors import PluginDriverError

PRE, POST, POST_KEY_AUTH, CUSTOM_KEY_CHECK, RESPONSE = 1, 2, 3, 4, 5


def make_api(**kwargs: Any) -> ApiDefinition:
    middleware = kwargs.pop(
        "middleware", MiddlewareConfig(driver="grpc", pre=(PluginRef(name="p"),))
    )
    return ApiDefinition(
        api_id="api1",
        org_id="org1",
        listen_path="/x/",
        target_url="http://127.0.0.1:1",
        middleware=middleware,
        **kwargs,
    )


def make_request(body: bytes = b"hello") -> Request:
    return Request(
        method="POST",
        path="/x/a",
        query="a=1&a=2&b=3",
        headers=[
            (b"host", b"gw.example"),
            (b"x-custom-header", b"v1"),
            (b"x-custom-header", b"v2"),
            (b"content-length", str(len(body)).encode()),
        ],
        body_bytes=body,
        content_length=len(body),
    )


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[GrpcChannel]:
    async with open_grpc_channel(server.target) as ch:
        yield ch


async def pipeline(
    api: ApiDefinition, channel: GrpcChannel, hook_timeout: float = 2.0
) -> ApiPipeline:
    return await build_pipeline(
        api, HookDefaults(timeout=hook_timeout), driver_factory=lambda name: GrpcDriver(channel)
    )


def recorder(server: Server, edit: Any = None) -> list[pb.Object]:
    seen: list[pb.Object] = []

    def handler(o: pb.Object, context: Any) -> pb.Object:
        seen.append(pb.Object.FromString(o.SerializeToString()))
        if edit is not None:
            edit(o)
        return o

    server.handler = handler
    return seen


async def test_pre_hook_sends_tyk_object_and_applies_changes(
    server: Server, channel: GrpcChannel
) -> None:
    def edit(o: pb.Object) -> None:
        r = o.request
        r.raw_body = b"changed body"
        r.body = "ignored: only raw_body is read back"
        r.delete_headers.append("X-Custom-Header")
        r.set_headers["X-Added"] = "yes"
        r.delete_params.append("b")
        r.add_params["c"] = "4"
        r.url = "/x/new?z=9"  # the path change sticks; query edits via url are discarded
        r.method = "PUT"

    seen = recorder(server, edit)
    pipe = await pipeline(make_api(), channel)
    request = make_request()
    assert await pipe.run_request(request, Exchange(api=pipe.api)) is None

    (sent,) = seen
    assert sent.hook_type == PRE
    assert sent.hook_name == "p"
    assert dict(sent.request.headers) == {
        "Host": "gw.example",
        "X-Custom-Header": "v1",
        "Content-Length": "5",
    }
    assert sent.request.url == "/x/a?a=1&a=2&b=3"
    assert sent.request.request_uri == "/x/a?a=1&a=2&b=3"
    assert dict(sent.request.params) == {"a": "1", "b": "3"}
    assert sent.request.method == "POST"
    assert sent.request.scheme == "http"
    assert sent.request.raw_body == b"hello"
    assert sent.request.body == "hello"
    assert sent.request.return_overrides.response_code == -1
    assert dict(sent.spec) == {
        "OrgID": "org1",
        "APIID": "api1",
        "bundle_hash": "d41d8cd98f00b204e9800998ecf8427e",
    }
    assert not sent.HasField("session")
    assert not sent.HasField("response")

    assert request.body_bytes == b"changed body"
    headers = dict(request.headers)
    assert b"x-custom-header" not in {name.lower() for name in headers}
    assert headers[b"X-Added"] == b"yes"  # set_headers names go upstream as Go canonicalises
    assert headers[b"Content-Length"] == b"12"
    assert request.path == "/x/new"
    assert request.query == "a=1&a=2&c=4"
    assert request.method == "PUT"


async def test_raw_body_only_and_binary_bodies_skip_the_string_body(
    server: Server, channel: GrpcChannel
) -> None:
    seen = recorder(server)
    mw = MiddlewareConfig(
        driver="grpc", pre=(PluginRef(name="a", raw_body_only=True), PluginRef(name="b"))
    )
    pipe = await pipeline(make_api(middleware=mw), channel)
    await pipe.run_request(make_request(b"text"), Exchange(api=pipe.api))
    await pipe.run_request(make_request(b"\xff\xfe"), Exchange(api=pipe.api))
    assert [(o.hook_name, o.request.body, o.request.raw_body) for o in seen] == [
        ("a", "", b"text"),
        ("b", "text", b"text"),
        ("a", "", b"\xff\xfe"),
        ("b", "", b"\xff\xfe"),
    ]


@pytest.mark.parametrize(
    ("config_data", "expected"),
    [({"k": [1, "two"]}, {"k": [1, "two"]}), ({}, None), (None, None)],
)
async def test_config_data_only_when_set_and_enabled(
    server: Server, channel: GrpcChannel, config_data: Any, expected: Any
) -> None:
    seen = recorder(server)
    pipe = await pipeline(make_api(config_data=config_data), channel)
    await pipe.run_request(make_request(), Exchange(api=pipe.api))
    got = seen[0].spec.get("config_data")
    assert (json.loads(got) if got is not None else None) == expected


# (response_code, response_error, response_body, override_error, headers) -> (status, body)
OVERRIDE_ROWS = [
    pytest.param(
        403, "denied", "", False, {"X-Why": "no"}, 403, {"error": "denied"}, id="4xx-error"
    ),
    pytest.param(401, "", "body text", False, {}, 401, {"error": "body text"}, id="4xx-body"),
    pytest.param(403, "", "", False, {}, 403, {"error": "Key not authorised"}, id="4xx-empty"),
    pytest.param(429, "err", "body", False, {}, 429, {"error": "err"}, id="4xx-error-wins"),
    pytest.param(418, "", "teapot", True, {"X-T": "1"}, 418, "teapot", id="4xx-override"),
    pytest.param(403, "oops", "b", True, {}, 403, "oops", id="4xx-override-error-text"),
    pytest.param(200, "", '{"ok":1}', False, {"Content-Type": "a/b"}, 200, '{"ok":1}', id="2xx"),
    pytest.param(201, "e", "b", False, {}, 201, "e", id="2xx-error-wins"),
    pytest.param(302, "", "", False, {"Location": "/y"}, 302, "", id="3xx"),
    pytest.param(-1, "", "x", False, {}, None, None, id="continue-minus-one"),
    pytest.param(0, "e", "x", True, {}, None, None, id="continue-zero"),
]


@pytest.mark.parametrize(
    ("code", "error", "body", "override", "headers", "status", "expected"), OVERRIDE_ROWS
)
async def test_return_overrides_table(
    server: Server,
    channel: GrpcChannel,
    code: int,
    error: str,
    body: str,
    override: bool,
    headers: dict[str, str],
    status: int | None,
    expected: Any,
) -> None:
    def edit(o: pb.Object) -> None:
        ro = o.request.return_overrides
        ro.response_code = code
        ro.response_error = error
        ro.response_body = body
        ro.override_error = override
        ro.headers.update(headers)

    recorder(server, edit)
    mw = MiddlewareConfig(driver="grpc", pre=(PluginRef(name="p"),), post=(PluginRef(name="q"),))
    pipe = await pipeline(make_api(middleware=mw), channel)
    answer = await pipe.run_request(make_request(), Exchange(api=pipe.api))
    if status is None:
        assert answer is None
        return
    assert answer is not None
    assert answer.status == status
    got = dict(answer.headers)
    for key, value in headers.items():
        assert got[key.encode()] == value.encode()
    assert answer.body_bytes is not None
    if isinstance(expected, dict):
        # Tyk's error handler: the gateway's Content-Type and X-Generator, as on its own errors.
        assert got[b"Content-Type"] == b"application/json"
        assert got[b"X-Generator"] == b"trio-gateway"
        assert json.loads(answer.body_bytes) == expected
        assert answer.body_bytes.startswith(b'{\n    "error": ')
    else:
        assert answer.body_bytes == expected.encode()
    assert pipe.statistics().responded == 1  # the first hook ended the walk: post never ran


def protected_api(auth: PluginRef, **mw: Any) -> ApiDefinition:
    return make_api(
        use_keyless=False,
        custom_plugin_auth=True,
        middleware=MiddlewareConfig(driver="grpc", auth_check=auth, **mw),
    )


async def test_custom_auth_creates_the_session(server: Server, channel: GrpcChannel) -> None:
    def edit(o: pb.Object) -> None:
        if o.hook_type == CUSTOM_KEY_CHECK:
            o.session.rate = 5
            o.session.per = 60
            o.session.quota_max = 10
            o.session.org_id = "someone-else"
            o.session.access_rights["api1"].api_id = "api1"
            o.session.access_rights["api1"].allowed_urls.add(url="/x/.*", methods=["GET"])
            o.metadata["token"] = "tok-123"
            o.metadata["plan"] = "gold"
        elif o.hook_type == POST:
            o.session.rate = 999  # ignored: only custom auth may change the session
            o.metadata["plan"] = "stolen"

    seen = recorder(server, edit)
    api = protected_api(PluginRef(name="auth"), post=(PluginRef(name="after"),))
    pipe = await pipeline(api, channel)
    exchange = Exchange(api=api)
    assert await pipe.run_request(make_request(), exchange) is None
    session = exchange.session
    assert session is not None
    assert exchange.session_key == "tok-123"
    assert exchange.session_created
    assert (session.rate, session.per, session.quota_max) == (5, 60, 10)
    assert session.org_id == "org1"
    assert session.meta_data == {"token": "tok-123", "plan": "gold"}
    assert session.access_rights["api1"].allowed_urls == [AllowedUrl(url="/x/.*", methods=["GET"])]
    auth_sent, post_sent = seen
    assert auth_sent.hook_type == CUSTOM_KEY_CHECK
    assert not auth_sent.HasField("session")
    assert post_sent.hook_type == POST
    assert post_sent.session.rate == 5
    assert dict(post_sent.metadata) == {"token": "tok-123", "plan": "gold"}


async def test_custom_auth_without_token_is_forbidden(server: Server, channel: GrpcChannel) -> None:
    recorder(server, lambda o: o.session.SetInParent())
    api = protected_api(PluginRef(name="auth"))
    pipe = await pipeline(api, channel)
    exchange = Exchange(api=api)
    answer = await pipe.run_request(make_request(), exchange)
    assert answer is not None
    assert answer.status == 403
    assert answer.body_bytes is not None
    assert json.loads(answer.body_bytes) == {"error": "Forbidden"}
    assert exchange.session is None


async def test_post_auth_and_post_see_the_session_and_metadata(
    server: Server, channel: GrpcChannel
) -> None:
    seen = recorder(server)
    api = make_api(
        use_keyless=False,
        middleware=MiddlewareConfig(
            driver="grpc", post_key_auth=(PluginRef(name="pka"),), post=(PluginRef(name="post"),)
        ),
    )
    pipe = await pipeline(api, channel)
    session = Session(
        rate=3,
        meta_data={"n": 1, "s": "x"},
        access_rights={"api1": AccessDefinition(api_id="api1", versions=["v1"])},
    )
    await pipe.run_request(make_request(), Exchange(api=api, session=session, session_key="k"))
    assert [o.hook_type for o in seen] == [POST_KEY_AUTH, POST]
    for o in seen:
        assert o.session.rate == 3
        assert dict(o.metadata) == {"n": "1", "s": "x"}  # non-strings JSON-encoded
        assert list(o.session.access_rights["api1"].versions) == ["v1"]


async def test_endpoint_plugins_travel_as_post(server: Server, channel: GrpcChannel) -> None:
    seen = recorder(server)
    mw = MiddlewareConfig(
        driver="grpc",
        endpoints=(EndpointPlugin(path="/a", method="POST", plugin=PluginRef(name="ep")),),
    )
    pipe = await pipeline(make_api(middleware=mw), channel)
    await pipe.run_request(make_request(), Exchange(api=pipe.api))
    assert [(o.hook_type, o.hook_name) for o in seen] == [(POST, "ep")]


async def test_response_hook_rewrites_status_headers_and_body(
    server: Server, channel: GrpcChannel
) -> None:
    def edit(o: pb.Object) -> None:
        resp = o.response
        resp.status_code = 202
        resp.raw_body = b"rewritten"
        resp.headers["X-Added"] = "1"
        del resp.headers["X-Drop"]

    seen = recorder(server, edit)
    mw = MiddlewareConfig(driver="grpc", response=(PluginRef(name="resp"),))
    pipe = await pipeline(make_api(middleware=mw), channel)
    upstream = Response(
        status=200,
        headers=[
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"x-drop", b"gone"),
            (b"content-length", b"8"),
        ],
        body_bytes=b"original",
    )
    out = await pipe.run_response(make_request(), upstream, Exchange(api=pipe.api))
    (sent,) = seen
    assert sent.hook_type == RESPONSE
    assert sent.HasField("session")  # keyless: an empty session, not none
    assert sent.response.status_code == 200
    assert sent.response.raw_body == b"original"
    assert sent.response.body == "original"
    assert next((h.key, list(h.values)) for h in sent.response.multivalue_headers) == (
        "Set-Cookie",
        ["a=1", "b=2"],
    )
    assert out.status == 202
    assert out.body_bytes == b"rewritten"
    assert sorted(out.headers) == sorted(
        [
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"Content-Length", b"9"),
            (b"X-Added", b"1"),
        ]
    )


async def test_response_hook_without_response_is_middleware_error(
    server: Server, channel: GrpcChannel
) -> None:
    recorder(server, lambda o: o.ClearField("response"))
    mw = MiddlewareConfig(driver="grpc", response=(PluginRef(name="resp"),))
    pipe = await pipeline(make_api(middleware=mw), channel)
    upstream = Response(status=200, headers=[], body_bytes=b"x")
    out = await pipe.run_response(make_request(), upstream, Exchange(api=pipe.api))
    assert out.status == 500
    assert out.body_bytes is not None
    assert json.loads(out.body_bytes) == {"error": "Middleware error"}


async def test_empty_url_in_reply_is_middleware_error(server: Server, channel: GrpcChannel) -> None:
    recorder(server, lambda o: setattr(o.request, "url", ""))
    pipe = await pipeline(make_api(), channel)
    answer = await pipe.run_request(make_request(), Exchange(api=pipe.api))
    assert answer is not None
    assert answer.status == 500
    assert pipe.statistics().errors == 1


async def test_big_body_within_limits_and_over_limit(server: Server) -> None:
    body = b"z" * (20 * 1024 * 1024)
    # The Object carries the body twice (raw_body and the UTF-8 body): ~40 MB each way.
    async with open_grpc_channel(server.target, recv_max=64 * 1024 * 1024) as big:
        pipe = await pipeline(make_api(), big, hook_timeout=20)
        request = make_request(body)
        assert await pipe.run_request(request, Exchange(api=pipe.api)) is None
        assert request.body_bytes == body
    async with open_grpc_channel(server.target) as small:  # 4 MiB reply limit
        pipe = await pipeline(make_api(), small, hook_timeout=20)
        answer = await pipe.run_request(make_request(body), Exchange(api=pipe.api))
        assert answer is not None
        assert answer.status == 500
        assert pipe.statistics().errors == 1


async def test_slow_server_times_out_and_sees_the_cancel(
    server: Server, channel: GrpcChannel
) -> None:
    ended = threading.Event()

    def handler(o: pb.Object, context: Any) -> pb.Object:
        context.add_callback(ended.set)
        ended.wait(5)
        return o

    server.handler = handler
    pipe = await pipeline(make_api(), channel, hook_timeout=0.3)
    t0 = trio.current_time()
    answer = await pipe.run_request(make_request(), Exchange(api=pipe.api))
    assert trio.current_time() - t0 < 0.3 + 0.25
    assert answer is not None
    assert answer.status == 504
    t1 = time.monotonic()
    assert await trio.to_thread.run_sync(ended.wait, 5.0)
    assert time.monotonic() - t1 < 0.5


async def test_server_down_is_unavailable_and_fails_fast() -> None:
    async with open_grpc_channel(f"127.0.0.1:{free_port()}") as channel:
        pipe = await pipeline(make_api(), channel)
        t0 = trio.current_time()
        answer = await pipe.run_request(make_request(), Exchange(api=pipe.api))
        assert trio.current_time() - t0 < 0.2
        assert answer is not None
        assert answer.status == 500
        assert pipe.statistics().unavailable == 1


async def test_shared_channel_and_missing_configuration(server: Server) -> None:
    # The gateway's path: the shared opener from the settings, then the factory with its result.
    with pytest.raises(PluginDriverError, match="no gRPC server is configured"):
        await create_driver("grpc", DriverSettings()).load(make_api(), ())
    settings = DriverSettings(grpc=GrpcSettings(server=server.target))
    async with open_shared(settings) as shared:
        channels = shared["grpc"]
        driver = create_driver("grpc", attrs.evolve(settings, shared=shared))
        assert isinstance(driver, GrpcDriver)
        await driver.load(make_api(), ())
        assert driver.channel is channels.default
        await driver.aclose()
        assert channels.default is not None
        assert channels.default.state.value in ("ready", "connecting")
    async with open_shared(DriverSettings()) as shared:  # not configured: nothing opened
        assert shared == {}
    settings = DriverSettings(grpc=GrpcSettings(enable=True))
    async with open_shared(settings) as shared:  # enabled, but no default server
        with pytest.raises(PluginDriverError, match="no gRPC server is configured"):
            await create_driver("grpc", attrs.evolve(settings, shared=shared)).load(make_api(), ())
