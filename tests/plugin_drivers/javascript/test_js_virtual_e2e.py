"""JavaScript virtual endpoints end to end: real gateway, real upstream, real sockets."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers.client import RawResponse, fetch
from tests.helpers.js_gateway import api, echo
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, JavascriptConfig, ListenConfig
from trio_gateway._server import HttpServer
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session

VIRTUAL_ERROR = "Error during virtual endpoint execution. Contact Administrator for more details."

SCRIPTS = """
function echoRequest(request, session, config) {
    var body = JSON.stringify({
        url: request.URL, params: request.Params, body: request.Body, scheme: request.Scheme,
        headers: request.Headers, api: config.APIID, org: config.OrgID, data: config.config_data
    });
    return TykJsResponse({Body: body, Headers: {"x-virtual": "yes"}, Code: 201}, {});
}

function htmlPage(request, session, config) {
    return TykJsResponse({Body: "<html><body>hi</body></html>", Code: 200}, {});
}

function typed(request, session, config) {
    return TykJsResponse(
        {Body: "{}", Headers: {"Content-Type": "application/json"}, Code: 200}, {});
}

function broken(request, session, config) {
    throw new Error("boom");
}

function noCode(request, session, config) {
    return TykJsResponse({Body: "x"}, {});
}

function spin(request, session, config) {
    while (true) {}
}

function aggregate(request, session, config) {
    var reply = JSON.parse(TykMakeHttpRequest(JSON.stringify({
        Method: "GET", Domain: config.config_data.upstream, Resource: "/inner?x=1",
        Headers: {}, Body: ""
    })));
    var seen = JSON.parse(reply.Body);
    return TykJsResponse({Body: "upstream saw " + seen.path + "?" + seen.query, Code: 200}, {});
}

function counter(request, session, config) {
    var meta = session.meta_data || {};
    var seen = meta.visits || 0;
    meta.visits = seen + 1;
    return TykJsResponse({Body: "visits before: " + seen, Code: 200}, meta);
}
"""

BLOB = """
function fromBlob(request, session, config) {
    return TykJsResponse({Body: "blob says " + request.Params.who[0], Code: 200}, {});
}
"""


def _virtual(path: str, function: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {
        "path": path,
        "method": method,
        "response_function_name": function,
        "function_source_type": "file",
        "function_source_uri": "../js/virtual.js",  # relative to the definition's folder
        **extra,
    }


def _api(api_id: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    versions = {"Default": {"name": "Default", "extended_paths": {"virtual": entries}}}
    doc = api(
        api_id,
        middleware={},
        version_data={"not_versioned": True, "versions": versions},
        **extra,
    )
    del doc["custom_middleware"]  # virtual endpoints alone choose the JavaScript driver
    return doc


async def _serve(
    nursery: trio.Nursery,
    tmp_path: Path,
    apis: list[dict[str, Any]],
    store: MemorySessionStore | None = None,
    *,
    javascript: JavascriptConfig | None = None,
    all_load: bool = True,
) -> RunningGateway:
    """Serve ``apis`` (``SCRIPTS`` in ``js/virtual.js``) before an echo upstream; the text
    ``{upstream}`` anywhere in a definition becomes the upstream's URL."""
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    (tmp_path / "js").mkdir(exist_ok=True)
    (tmp_path / "js" / "virtual.js").write_text(SCRIPTS)
    apps = tmp_path / "apps"
    apps.mkdir()
    for doc in apis:
        doc["proxy"]["target_url"] = f"http://{host}:{port}/"
        text = json.dumps(doc).replace("{upstream}", f"http://{host}:{port}")
        (apps / f"{doc['api_id']}.json").write_text(text)
    return await _start(nursery, apps, store, javascript=javascript, all_load=all_load)


async def _start(
    nursery: trio.Nursery,
    apps: Path,
    store: MemorySessionStore | None = None,
    *,
    javascript: JavascriptConfig | None = None,
    all_load: bool = True,
) -> RunningGateway:
    """A gateway with JavaScript on, serving the definitions in ``apps``."""
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        javascript=javascript or JavascriptConfig(enable=True),
    )
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=apps, session_store=store, task_status=task_status
        )
    )
    if all_load:
        assert running.report.errors == []
    return running


async def _get(
    running: RunningGateway,
    target: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> RawResponse:
    return await fetch(running.address, method, target, headers or [], body)


async def test_file_endpoint_answers_with_tyk_request_object(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    apis = [
        _api(
            "v1",
            [_virtual("/echo", "echoRequest", method="POST")],
            config_data={"greeting": "hi"},
        )
    ]
    running = await _serve(nursery, tmp_path, apis)
    response = await _get(
        running,
        "/v1/echo?q=1&q=2",
        method="POST",
        headers=[("Content-Type", "application/x-www-form-urlencoded"), ("x-test", "t")],
        body=b"f=form+value",
    )
    assert response.status == 201, response.body
    assert response.header("x-virtual") == b"yes"
    # No Content-Type from the script: the type Go's server would sniff for this body.
    assert response.header("content-type") == b"text/plain; charset=utf-8"
    assert response.header("x-upstream") is None  # the upstream was not called
    seen = json.loads(response.body)
    assert seen["url"] == "/v1/echo?q=1&q=2"
    assert seen["params"] == {"f": ["form value"], "q": ["1", "2"]}
    assert seen["body"] == "f=form+value"  # a string, not base64
    assert seen["scheme"] == "http"
    assert seen["headers"]["X-Test"] == ["t"]
    assert "Host" not in seen["headers"]
    assert (seen["api"], seen["org"], seen["data"]) == ("v1", "org1", {"greeting": "hi"})


async def test_sniffed_and_given_content_types(nursery: trio.Nursery, tmp_path: Path) -> None:
    apis = [_api("v2", [_virtual("/page", "htmlPage"), _virtual("/typed", "typed")])]
    running = await _serve(nursery, tmp_path, apis)
    page = await _get(running, "/v2/page")
    assert page.status == 200
    assert page.header("content-type") == b"text/html; charset=utf-8"
    typed = await _get(running, "/v2/typed")
    assert typed.header_values("content-type") == [b"application/json"]
    # Other paths of the API still go to the upstream.
    other = await _get(running, "/v2/elsewhere")
    assert other.header("x-upstream") == b"yes"


async def test_blob_source(nursery: trio.Nursery, tmp_path: Path) -> None:
    blob = base64.b64encode(BLOB.encode()).decode()
    entry = _virtual("/blob", "fromBlob", function_source_type="blob", function_source_uri=blob)
    running = await _serve(nursery, tmp_path, [_api("v3", [entry])])
    response = await _get(running, "/v3/blob?who=me")
    assert (response.status, response.body) == (200, b"blob says me")


async def test_script_error_answers_tyk_message_or_proxies(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    entries = [
        _virtual("/broken", "broken"),
        _virtual("/no-code", "noCode"),
        _virtual("/proxied", "broken", proxy_on_error=True),
    ]
    running = await _serve(nursery, tmp_path, [_api("v4", entries)])
    for target in ("/v4/broken", "/v4/no-code"):
        response = await _get(running, target)
        assert response.status == 500
        assert json.loads(response.body) == {"error": VIRTUAL_ERROR}
    proxied = await _get(running, "/v4/proxied")
    assert proxied.status == 200
    assert proxied.header("x-upstream") == b"yes"
    assert json.loads(proxied.body)["path"] == "/proxied"


async def test_use_session_writes_meta_data_back(nursery: trio.Nursery, tmp_path: Path) -> None:
    store = MemorySessionStore()
    await store.put_session("key-1", Session(meta_data={"visits": 5}))
    doc = _api(
        "v5",
        [_virtual("/count", "counter", use_session=True)],
        keyless=False,
        use_standard_auth=True,
        auth={"auth_header_name": "Authorization"},
    )
    running = await _serve(nursery, tmp_path, [doc], store)
    auth = [("Authorization", "key-1")]
    first = await _get(running, "/v5/count", headers=auth)
    second = await _get(running, "/v5/count", headers=auth)
    assert (first.status, first.body) == (200, b"visits before: 5")
    assert second.body == b"visits before: 6"
    stored = await store.get_session("key-1")
    assert stored is not None
    assert stored.meta_data == {"visits": 7}


async def test_endless_script_is_stopped_and_the_next_request_runs(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    entries = [
        _virtual("/spin", "spin", timeout=0.5),
        # Generous: it may have to wait for the VM until the engine stops the endless script.
        _virtual("/page", "htmlPage", timeout=30),
    ]
    running = await _serve(nursery, tmp_path, [_api("v6", entries)])
    started = trio.current_time()
    stopped = await _get(running, "/v6/spin")
    assert stopped.status == 504
    assert trio.current_time() - started < 0.5 + 2.0
    after = await _get(running, "/v6/page")
    assert after.status == 200
    assert after.body == b"<html><body>hi</body></html>"


async def test_bad_definitions_are_reported_and_the_others_serve(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _api("good", [_virtual("/echo", "echoRequest")])
    bad_field = _api("badfield", [_virtual("/x", "echoRequest", function_source_type="url")])
    no_function = _api("nofunc", [_virtual("/x", "notDefinedAnywhere")])
    with caplog.at_level(logging.ERROR):
        running = await _serve(nursery, tmp_path, [good, bad_field, no_function], all_load=False)
    apps = tmp_path / "apps"
    field = "version_data.versions.Default.extended_paths.virtual[0].function_source_type"
    assert any(
        str(apps / "badfield.json") in error and field in error for error in running.report.errors
    ), running.report.errors
    assert "notDefinedAnywhere" in caplog.text
    assert (await _get(running, "/nofunc/x")).status == 503
    assert (await _get(running, "/good/echo")).status == 201


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "javascript"


async def test_the_virtual_endpoint_example(nursery: trio.Nursery, tmp_path: Path) -> None:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    shutil.copy(EXAMPLES / "virtual_endpoint.js", tmp_path)
    apps = tmp_path / "apps"
    apps.mkdir()
    doc = json.loads((EXAMPLES / "apps" / "virtual-endpoint.json").read_text())
    doc["proxy"]["target_url"] = f"http://{host}:{port}/"
    (apps / "virtual-endpoint.json").write_text(json.dumps(doc))
    running = await _start(nursery, apps)
    health = await _get(running, "/js/virtual/health?verbose=1")
    assert health.status == 200
    assert health.header("content-type") == b"application/json"
    assert json.loads(health.body) == {
        "status": "ok",
        "api": "js-virtual",
        "gateway": "example-gateway",
        "url": "/js/virtual/health?verbose=1",
    }
    echoed = await _get(running, "/js/virtual/echo", method="POST", body=b'{"n": 1}')
    assert (echoed.status, echoed.body) == (200, b'{"n": 1}')
    assert echoed.header("content-type") == b"text/plain; charset=utf-8"
    empty = await _get(running, "/js/virtual/echo", method="POST", body=b"")
    assert json.loads(empty.body) == {"error": VIRTUAL_ERROR}
    upstream_answer = await _get(running, "/js/virtual/anything-else")
    assert upstream_answer.header("x-upstream") == b"yes"


async def test_blobs_refused_when_disabled(nursery: trio.Nursery, tmp_path: Path) -> None:
    blob = base64.b64encode(BLOB.encode()).decode()
    blob_api = _api(
        "blobs",
        [_virtual("/b", "fromBlob", function_source_type="blob", function_source_uri=blob)],
    )
    file_api = _api("files", [_virtual("/page", "htmlPage")])
    javascript = JavascriptConfig(enable=True, disable_virtual_path_blobs=True)
    running = await _serve(nursery, tmp_path, [blob_api, file_api], javascript=javascript)
    assert (await _get(running, "/blobs/b?who=x")).status == 503
    assert (await _get(running, "/files/page")).status == 200


async def test_oas_virtual_endpoint(nursery: trio.Nursery, tmp_path: Path) -> None:
    blob = base64.b64encode(BLOB.encode()).decode()
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "oas-virtual", "version": "1"},
        "paths": {"/greet": {"get": {"operationId": "greetGET"}}},
        "x-tyk-api-gateway": {
            "info": {"id": "oasv", "name": "oasv", "state": {"active": True}},
            "upstream": {"url": "http://127.0.0.1:1/"},
            "server": {"listenPath": {"value": "/oasv/", "strip": True}},
            "middleware": {
                "operations": {
                    "greetGET": {
                        "virtualEndpoint": {
                            "enabled": True,
                            "functionName": "fromBlob",
                            "body": blob,
                        }
                    }
                }
            },
        },
    }
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "oasv-oas.json").write_text(json.dumps(doc))
    running = await _start(nursery, apps)
    response = await _get(running, "/oasv/greet?who=oas")
    assert (response.status, response.body) == (200, b"blob says oas")
    assert response.header("content-type") == b"text/plain; charset=utf-8"
    # POST is another operation: not the virtual endpoint (the upstream is down: 502).
    assert (await _get(running, "/oasv/greet", method="POST", body=b"")).status == 502


async def test_virtual_endpoint_calls_the_gateway_built_ins(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    doc = _api("v7", [_virtual("/agg", "aggregate")], config_data={"upstream": "{upstream}"})
    running = await _serve(nursery, tmp_path, [doc])
    response = await _get(running, "/v7/agg")
    assert (response.status, response.body) == (200, b"upstream saw /inner?x=1")



RESPONSE_HOOK = """
var markAnswer = new TykJS.TykMiddleware.NewMiddleware({});
markAnswer.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Response-Hook"] = "saw " + request.Body;
    return markAnswer.ReturnData(request, {});
});
"""


async def test_answer_goes_out_as_tyk_sends_it(nursery: trio.Nursery, tmp_path: Path) -> None:
    # Tyk's forceResponse: Server and Date set by the gateway, the API's response middleware
    # runs over the answer, and a keyed API's X-RateLimit-* headers are on it.
    store = MemorySessionStore()
    await store.put_session("key-1", Session(quota_max=10, quota_remaining=10))
    doc = _api(
        "v9",
        [_virtual("/count", "counter")],
        keyless=False,
        use_standard_auth=True,
        auth={"auth_header_name": "Authorization"},
    )
    hook_file = tmp_path / "js" / "response.js"
    doc["custom_middleware"] = {
        "driver": "otto",
        "response": [{"name": "markAnswer", "path": str(hook_file)}],
    }
    hook_file.parent.mkdir()
    hook_file.write_text(RESPONSE_HOOK)
    running = await _serve(nursery, tmp_path, [doc], store)
    response = await _get(running, "/v9/count", headers=[("Authorization", "key-1")])
    assert (response.status, response.body) == (200, b"visits before: 0")
    headers = {k.decode().lower(): v.decode() for k, v in response.headers}
    assert headers["x-response-hook"] == "saw visits before: 0"
    assert headers["server"] == "tyk"
    assert headers["date"].endswith(" GMT")
    assert headers["x-ratelimit-limit"] == "10"
    assert headers["x-ratelimit-remaining"] == "9"
