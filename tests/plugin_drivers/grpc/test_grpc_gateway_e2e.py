"""The grpc driver end to end: a real gateway (``serve_gateway``) on 127.0.0.1, a real upstream, a
real grpcio ``coprocess.Dispatcher``, and HTTP/1.1 clients on real sockets.

The Dispatcher's handler picks what to do from the hook name (and, for the override rows, from a
request header), so each test reads as "this plugin did X, so the client/upstream saw Y".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import Server, ServerProcess
from prometheus_client.parser import text_string_to_metric_families
from test_grpc_driver import OVERRIDE_ROWS

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import (
    CoprocessConfig,
    GatewayConfig,
    HooksConfig,
    ListenConfig,
)

PRE, POST, POST_KEY_AUTH, CUSTOM_KEY_CHECK, RESPONSE = 1, 2, 3, 4, 5


def api_doc(upstream: RawUpstream, middleware: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A Tyk Classic definition on ``/api/`` with ``custom_middleware`` on the grpc driver."""
    doc: dict[str, Any] = {
        "api_id": "grpc-api",
        "name": "grpc-api",
        "org_id": "org1",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": "/api/", "target_url": upstream.url, "strip_listen_path": True},
        "custom_middleware": {"driver": "grpc", **middleware},
    }
    doc.update(extra)
    return doc


async def start_gateway(
    nursery: trio.Nursery,
    tmp_path: Path,
    grpc_target: str,
    *docs: dict[str, Any],
    hook_timeout: float = 2.0,
) -> RunningGateway:
    apps = tmp_path / "apps"
    apps.mkdir(exist_ok=True)
    for doc in docs:
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        hooks=HooksConfig(timeout=hook_timeout),
        coprocess=CoprocessConfig(enable=True, grpc_server=grpc_target),
    )
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    assert not running.report.errors
    return running


def by_hook_name(server: Server, edits: dict[str, Callable[[pb.Object], None]]) -> list[pb.Object]:
    """Serve ``edits[hook_name]`` (echo for other names); returns the Objects received."""
    seen: list[pb.Object] = []

    def handler(o: pb.Object, context: Any) -> pb.Object:
        seen.append(pb.Object.FromString(o.SerializeToString()))
        edit = edits.get(o.hook_name)
        if edit is not None:
            edit(o)
        return o

    server.handler = handler
    return seen


def auth_session(o: pb.Object, token: str = "tok-1", rate: float = 100) -> None:
    o.session.rate = rate
    o.session.per = 60
    o.session.access_rights["grpc-api"].api_id = "grpc-api"
    o.session.access_rights["grpc-api"].api_name = "grpc-api"
    o.session.access_rights["grpc-api"].versions.append("Default")
    o.metadata["token"] = token
    o.metadata["plan"] = "gold"


def upstream_json(request: ReceivedRequest) -> dict[str, Any]:
    return {k.decode().lower(): v.decode() for k, v in request.headers}


async def test_every_hook_type_with_changes_arriving_upstream(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def pre(o: pb.Object) -> None:
        r = o.request
        r.set_headers["X-Pre"] = "1"
        r.delete_headers.append("X-Secret")
        r.add_params["added"] = "yes"
        r.delete_params.append("drop")
        r.url = "/api/rewritten"
        r.method = "PUT"

    def post(o: pb.Object) -> None:
        o.request.raw_body = b"body from post"
        o.request.set_headers["X-Post-Saw-Plan"] = o.metadata.get("plan", "")
        o.session.rate = 999999  # ignored: only custom auth may change the session
        o.metadata["plan"] = "stolen"

    def response(o: pb.Object) -> None:
        o.response.status_code = 201
        o.response.headers["X-Resp"] = "changed"
        o.response.raw_body = b"response rewritten"

    seen = by_hook_name(
        server,
        {
            "pre": pre,
            "auth": auth_session,
            "post": post,
            "ep": lambda o: o.request.set_headers.update({"X-Endpoint": "ran"}),
            "resp": response,
        },
    )
    upstream = await start_upstream(nursery)
    # Endpoint plugins match the request as it arrived (before the Pre hook rewrote it).
    endpoint = {"path": "/original", "method": "POST", "func_name": "ep", "plugin_path": ""}
    doc = api_doc(
        upstream,
        {
            "pre": [{"name": "pre"}],
            "auth_check": {"name": "auth"},
            "post_key_auth": [{"name": "pka"}],
            "post": [{"name": "post"}],
            "response": [{"name": "resp"}],
        },
        use_keyless=False,
        custom_plugin_auth_enabled=True,
        version_data={
            "not_versioned": True,
            "versions": {
                "Default": {"name": "Default", "extended_paths": {"go_plugin": [endpoint]}}
            },
        },
    )
    gw = await start_gateway(nursery, tmp_path, server.target, doc)

    got = await fetch(
        gw.address,
        "POST",
        "/api/original?keep=1&drop=2",
        [("X-Secret", "s"), ("Authorization", "anything")],
        b"original body",
    )
    assert got.status == 201, got.body
    assert got.body == b"response rewritten"
    assert got.header("x-resp") == b"changed"

    assert [(o.hook_type, o.hook_name) for o in seen] == [
        (PRE, "pre"),
        (CUSTOM_KEY_CHECK, "auth"),
        (POST_KEY_AUTH, "pka"),
        (POST, "ep"),  # per-endpoint plugins travel as Post
        (POST, "post"),
        (RESPONSE, "resp"),
    ]
    (arrived,) = upstream.requests
    assert arrived.method == "PUT"
    assert arrived.target == b"/rewritten?added=yes&keep=1"
    headers = upstream_json(arrived)
    assert headers["x-pre"] == "1"
    assert "x-secret" not in headers
    assert headers["x-endpoint"] == "ran"
    assert headers["x-post-saw-plan"] == "gold"
    assert bytes(arrived.body) == b"body from post"
    # What the response hook saw: the session custom auth created, not the post hook's edits.
    resp_obj = seen[-1]
    assert resp_obj.session.rate == 100
    assert dict(resp_obj.metadata)["plan"] == "gold"
    assert resp_obj.response.status_code == 200
    gw.shutdown()


async def test_return_overrides_rows_through_http(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    rows = [p.values for p in OVERRIDE_ROWS]

    def pre(o: pb.Object) -> None:
        code, error, body, override, headers, _, _ = rows[int(o.request.headers["X-Row"])]
        ro = o.request.return_overrides
        ro.response_code = code
        ro.response_error = error
        ro.response_body = body
        ro.override_error = override
        ro.headers.update(headers)

    by_hook_name(server, {"pre": pre})
    upstream = await start_upstream(nursery)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"pre": [{"name": "pre"}]})
    )
    async with open_client(gw.address) as client:
        for index, (_, _, _, _, headers, status, expected) in enumerate(rows):
            got = await client.request("GET", "/api/x", [("X-Row", str(index))])
            if status is None:
                assert got.status == 200, index  # continued to the upstream
                continue
            assert got.status == status, index
            for key, value in headers.items():
                assert got.header(key) == value.encode(), index
            if isinstance(expected, dict):
                assert got.header("content-type") == b"application/json"
                assert json.loads(got.body) == expected, index
            else:
                assert got.body == expected.encode(), index
    continued = sum(1 for row in rows if row[5] is None)
    assert len(upstream.requests) == continued
    gw.shutdown()


async def test_response_hook_keeps_every_set_cookie(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    async def cookies(request: ReceivedRequest, reply: Reply) -> None:
        headers = [(b"Set-Cookie", b"a=1; Path=/"), (b"Set-Cookie", b"b=2"), (b"X-Drop", b"x")]
        await reply.respond(200, headers, b"upstream body")

    def response(o: pb.Object) -> None:
        o.response.status_code = 418
        o.response.headers["X-Added"] = "yes"
        del o.response.headers["X-Drop"]
        o.response.raw_body = b"teapot"

    seen = by_hook_name(server, {"resp": response})
    upstream = await start_upstream(nursery, cookies)
    doc = api_doc(upstream, {"response": [{"name": "resp"}]})
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    got = await fetch(gw.address, "GET", "/api/x")
    assert got.status == 418
    assert got.body == b"teapot"
    assert got.header_values("set-cookie") == [b"a=1; Path=/", b"b=2"]
    assert got.header("x-added") == b"yes"
    assert not got.has_header("x-drop")
    assert got.header("content-length") == b"6"
    assert seen[0].response.raw_body == b"upstream body"
    gw.shutdown()


async def test_custom_auth_session_limits_apply_and_other_hooks_cannot_change_them(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def post(o: pb.Object) -> None:
        o.session.rate = 1000  # Tyk ignores session changes outside custom auth
        o.session.per = 1

    by_hook_name(
        server,
        {"auth": lambda o: auth_session(o, token="limited", rate=2), "post": post},
    )
    upstream = await start_upstream(nursery)
    doc = api_doc(
        upstream,
        {"auth_check": {"name": "auth"}, "post": [{"name": "post"}]},
        use_keyless=False,
        custom_plugin_auth_enabled=True,
    )
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    statuses = []
    async with open_client(gw.address) as client:
        for _ in range(3):
            got = await client.request("GET", "/api/x", [("Authorization", "limited")])
            statuses.append(got.status)
    assert statuses == [200, 200, 429]
    assert len(upstream.requests) == 2
    gw.shutdown()


async def test_slow_server_answers_504_in_time_and_sees_the_cancel(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    ended = threading.Event()

    def handler(o: pb.Object, context: Any) -> pb.Object:
        context.add_callback(ended.set)  # runs when the RPC ends: cancelled here
        ended.wait(5)
        return o

    server.handler = handler
    upstream = await start_upstream(nursery)
    doc = api_doc(upstream, {"pre": [{"name": "slow", "timeout": 0.3}]})
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    await fetch(gw.address, "GET", "/ping-unrouted")  # the gateway answers: time the hook only
    t0 = time.monotonic()
    got = await fetch(gw.address, "GET", "/api/x")
    assert got.status == 504
    assert time.monotonic() - t0 < 0.3 + 0.25
    assert await trio.to_thread.run_sync(ended.wait, 5.0)
    assert upstream.requests == []
    gw.shutdown()


async def test_client_disconnect_cancels_the_stream_on_the_server(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    started, ended = threading.Event(), threading.Event()

    def handler(o: pb.Object, context: Any) -> pb.Object:
        context.add_callback(ended.set)
        started.set()
        ended.wait(10)
        return o

    server.handler = handler
    upstream = await start_upstream(nursery)
    doc = api_doc(upstream, {"pre": [{"name": "slow", "timeout": 30}]})
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    async with open_client(gw.address) as client:
        await client.send(b"GET /api/x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await trio.to_thread.run_sync(started.wait, 5.0)
    # The client is gone; no deadline is near (30 s): only RST_STREAM can end the call now.
    t0 = time.monotonic()
    assert await trio.to_thread.run_sync(ended.wait, 5.0)
    assert time.monotonic() - t0 < 1.0
    assert upstream.requests == []
    gw.shutdown()


async def test_server_killed_and_restarted_during_a_request_loop(
    nursery: trio.Nursery, tmp_path: Path, server_process: ServerProcess
) -> None:
    await server_process.astart()
    upstream = await start_upstream(nursery)
    doc = api_doc(upstream, {"pre": [{"name": "echo"}]})
    target = f"tcp://127.0.0.1:{server_process.port}"
    gw = await start_gateway(nursery, tmp_path, target, doc)
    async with open_client(gw.address) as client:
        assert (await client.request("GET", "/api/x")).status == 200
        server_process.kill()
        for _ in range(5):  # while it is down: quick failures (the hook's policy: 500)
            t0 = time.monotonic()
            got = await client.request("GET", "/api/x")
            assert got.status == 500
            assert time.monotonic() - t0 < 0.2
        await server_process.astart()
        back = time.monotonic()
        while (await client.request("GET", "/api/x")).status != 200:
            assert time.monotonic() - back < 1.0
            await trio.sleep(0.01)  # pacing of the request loop, not synchronisation
        assert time.monotonic() - back < 1.0
        for _ in range(5):
            assert (await client.request("GET", "/api/x")).status == 200
    gw.shutdown()


@pytest.mark.parametrize("disabled", [False, True])
async def test_config_data_reaches_the_plugin_only_when_enabled(
    nursery: trio.Nursery, tmp_path: Path, server: Server, disabled: bool
) -> None:
    seen = by_hook_name(server, {})
    upstream = await start_upstream(nursery)
    doc = api_doc(
        upstream,
        {"pre": [{"name": "pre"}]},
        config_data={"greeting": "hi"},
        config_data_disabled=disabled,
    )
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    assert (await fetch(gw.address, "GET", "/api/x")).status == 200
    got = seen[0].spec.get("config_data")
    assert (json.loads(got) if got is not None else None) == (
        None if disabled else {"greeting": "hi"}
    )
    gw.shutdown()


async def test_tyk_details_header_case_upstream_url_and_config_data(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    async def lower_case_upstream(request: ReceivedRequest, reply: Reply) -> None:
        await reply.respond(200, [(b"x-upstream-lower", b"v")], b"ok")

    seen = by_hook_name(
        server,
        {
            "pre": lambda o: o.request.set_headers.update({"x-plugin-set": "1"}),
            "resp": lambda o: None,  # echoes the response unchanged
        },
    )
    upstream = await start_upstream(nursery, lower_case_upstream)
    doc = api_doc(
        upstream,
        {"pre": [{"name": "pre"}], "response": [{"name": "resp"}]},
        config_data={"z": 1.0, "a": "<b>&", "m": {"y": [1, 2.5], "x": None}},
    )
    gw = await start_gateway(nursery, tmp_path, server.target, doc)
    got = await fetch(gw.address, "GET", "/api/path?q=1")
    assert got.status == 200, got.body

    (arrived,) = upstream.requests
    # Tyk applies set_headers with Go's Header.Set: the upstream sees the canonical name.
    assert (b"X-Plugin-Set", b"1") in arrived.headers
    # A Response hook's headers are set the same way: the client sees canonical names.
    assert (b"X-Upstream-Lower", b"v") in got.headers
    # The Response hook sees the absolute upstream URL as request.url, as Tyk sends it.
    host = dict((k.lower(), v) for k, v in arrived.headers)[b"host"].decode()
    assert seen[-1].request.url == f"http://{host}/path?q=1"
    assert seen[0].request.url == "/api/path?q=1"
    # config_data as Go's json.Marshal writes it: compact, sorted keys, HTML-safe, 1.0 as 1.
    assert seen[0].spec["config_data"] == (
        '{"a":"\\u003cb\\u003e\\u0026","m":{"x":null,"y":[1,2.5]},"z":1}'
    )
    gw.shutdown()


async def test_error_replies_from_plugins_carry_the_gateways_error_headers(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    def pre(o: pb.Object) -> None:
        ro = o.request.return_overrides
        ro.response_code = 403
        ro.response_error = "no entry"
        ro.headers.update({"x-why": "policy", "content-type": "text/plain"})

    by_hook_name(server, {"pre": pre, "auth": lambda o: None})  # auth: no session returned
    upstream = await start_upstream(nursery)
    overrides = api_doc(upstream, {"pre": [{"name": "pre"}]})
    no_session = api_doc(
        upstream,
        {"auth_check": {"name": "auth"}},
        api_id="auth-api",
        proxy={"listen_path": "/auth/", "target_url": upstream.url, "strip_listen_path": True},
        use_keyless=False,
        custom_plugin_auth_enabled=True,
    )
    gw = await start_gateway(nursery, tmp_path, server.target, overrides, no_session)
    answers = {path: await fetch(gw.address, "GET", path) for path in ("/api/x", "/auth/x")}
    for path, message in (("/api/x", "no entry"), ("/auth/x", "Forbidden")):
        got = answers[path]
        assert got.status == 403, path
        assert json.loads(got.body) == {"error": message}
        assert got.header_values("content-type") == [b"application/json"], path
        assert got.header("x-generator") == b"trio-gateway", path
    assert (b"X-Why", b"policy") in answers["/api/x"].headers  # the plugin's, canonical
    assert upstream.requests == []
    gw.shutdown()


async def test_grpc_hooks_with_coprocess_off_refuse_the_api_naming_the_switch(
    nursery: trio.Nursery, tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # Tyk would skip these hooks silently (a Pre hook guarding the API would just not run).
    seen = by_hook_name(server, {})
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "grpc-api.json").write_text(json.dumps(api_doc(upstream, {"pre": [{"name": "pre"}]})))
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        coprocess=CoprocessConfig(enable=False, grpc_server=server.target),
    )
    gw: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    got = await fetch(gw.address, "GET", "/api/x")
    assert got.status == 503
    assert upstream.requests == []
    assert seen == []
    assert any(
        "custom_middleware.driver: 'grpc' plugins run only with "
        "coprocess_options.enable_coprocess set to true" in record.getMessage()
        for record in caplog.records
    )
    gw.shutdown()


async def test_trace_context_reaches_the_plugin_as_metadata_and_the_channel_state_is_scraped(
    nursery: trio.Nursery, tmp_path: Path, server: Server
) -> None:
    metadata: list[dict[str, str]] = []

    def handler(o: pb.Object, context: Any) -> pb.Object:
        metadata.append(dict(context.invocation_metadata()))
        return o

    server.handler = handler
    upstream = await start_upstream(nursery)
    gw = await start_gateway(
        nursery, tmp_path, server.target, api_doc(upstream, {"pre": [{"name": "pre"}]})
    )
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = [("traceparent", traceparent), ("tracestate", "v=1")]
    assert (await fetch(gw.address, "GET", "/api/x", headers)).status == 200
    assert metadata[0]["traceparent"] == traceparent
    assert metadata[0]["tracestate"] == "v=1"
    scrape = (await fetch(gw.address, "GET", "/metrics")).body.decode()
    states = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "trio_gateway_grpc_channel_state"
        and sample.labels["target"] == server.target
    }
    assert states == {"connecting": 0.0, "ready": 1.0, "down": 0.0, "closed": 0.0}

    # The plugin server goes away: the hook's outcome is "unavailable" (fail closed).
    await trio.to_thread.run_sync(lambda: server.server.stop(0).wait(5))
    assert (await fetch(gw.address, "GET", "/api/x")).status >= 500
    scrape = (await fetch(gw.address, "GET", "/metrics")).body.decode()
    outcomes = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "trio_gateway_hook_outcomes_total"
    }
    assert outcomes["ok"] == 1
    assert outcomes["unavailable"] == 1
    gw.shutdown()
