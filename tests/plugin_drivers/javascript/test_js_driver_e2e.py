"""The ``otto`` driver end to end: a real gateway, a real upstream, real sockets.

Each test writes Tyk-style JavaScript middleware and Classic API definitions to a temporary
folder and talks to the gateway over TCP.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from tests.helpers.client import RawResponse
from tests.helpers.js_gateway import UPSTREAM, api, echo, seen_headers, start_gateway
from tests.helpers.upstream import start_upstream, tls_server_context, write_ca_file
from trio_gateway._config.model import BundlesConfig, JavascriptConfig, UpstreamConfig
from trio_gateway._exchange import Request, Response


def middleware(name: str, body: str, *, auth: bool = False) -> str:
    """A Tyk middleware object ``name`` whose function has ``body`` (request, session, config)."""
    ret = "ReturnAuthData" if auth else "ReturnData"
    return f"""
var {name} = new TykJS.TykMiddleware.NewMiddleware({{}});
{name}.NewProcessRequest(function (request, session, config) {{
{body}
    return {name}.{ret}(request, session.meta_data || {{}});
}});
"""


ADD_HEADER = middleware("addHeader", '    request.SetHeaders["X-Js"] = "from-" + config.APIID;')


async def test_pre_hook_sets_a_header_the_upstream_sees(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    js = tmp_path / "js" / "add.js"
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("js1", middleware={"pre": [{"name": "addHeader", "path": str(js)}]})],
        {"add.js": ADD_HEADER},
    )
    response = await gw.request("GET", "/js1/x")
    assert response.status == 200, response.body
    assert seen_headers(response)["x-js"] == ["from-js1"]


async def test_javascript_alias_and_relative_path_from_the_definition(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # "path" relative to the API definition's folder (apps/), driver named "javascript".
    doc = api("alias", middleware={"pre": [{"name": "addHeader", "path": "../js/add.js"}]})
    doc["custom_middleware"]["driver"] = "javascript"
    gw = await start_gateway(nursery, tmp_path, [doc], {"add.js": ADD_HEADER})
    response = await gw.request("GET", "/alias/")
    assert seen_headers(response)["x-js"] == ["from-alias"]


APPLY_ALL = middleware(
    "applyAll",
    """
    request.DeleteHeaders.push("X-Remove");
    request.SetHeaders["x-added"] = request.Headers["X-Keep"][0] + "+js";
    request.SetHeaders["X-Method-Seen"] = request.Method;
    request.SetHeaders["X-Scheme-Seen"] = request.Scheme;
    request.SetHeaders["X-Body-Seen"] = request.Body;
    request.SetHeaders["X-Param-Seen"] = request.Params["a"].join(",");
    request.SetHeaders["X-Host-Seen"] = request.Headers["Host"][0];
    request.SetHeaders["X-Config"] = config.config_data.greeting + "/" + config.OrgID;
    request.Body = "rewritten:" + request.Body;
    request.URL = "/new/path?keep=1&drop=2";
    request.DeleteParams.push("drop");
    request.AddParams["added"] = "yes";
    request.ExtendedParams["multi"] = ["1", "2"];
    request.Method = "DELETE";
""",
)


async def test_every_applied_field_reaches_the_upstream(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw = await start_gateway(
        nursery,
        tmp_path,
        [
            api(
                "fields",
                middleware={"pre": [{"name": "applyAll", "path": str(tmp_path / "js/a.js")}]},
                config_data={"greeting": "hello"},
            )
        ],
        {"a.js": APPLY_ALL},
    )
    response = await gw.request(
        "POST",
        "/fields/orig?a=1&a=2",
        [("X-Remove", "gone"), ("X-Keep", "kept")],
        b"payload",
    )
    assert response.status == 200, response.body
    seen = response.json()
    headers = seen_headers(response)
    assert "x-remove" not in headers
    assert headers["x-added"] == ["kept+js"]
    assert headers["x-method-seen"] == ["POST"]
    assert headers["x-scheme-seen"] == ["http"]
    assert headers["x-body-seen"] == ["payload"]
    assert headers["x-param-seen"] == ["1,2"]
    assert headers["x-host-seen"] == ["test.local"]
    assert headers["x-config"] == ["hello/org1"]
    assert seen["body"] == "rewritten:payload"
    assert headers["content-length"] == [str(len("rewritten:payload"))]
    # The returned URL, then DeleteParams, AddParams, ExtendedParams; keys sorted as Go encodes.
    assert seen["path"] == "/new/path"
    assert seen["query"] == "added=yes&keep=1&multi=1&multi=2"
    assert seen["method"] == "POST"  # Method is not applied, as in Tyk


OVERRIDES = middleware(
    "overrides",
    """
    var mode = request.Headers["X-Mode"] ? request.Headers["X-Mode"][0] : "";
    if (mode === "error") {
        request.ReturnOverrides.ResponseCode = 400;
        request.ReturnOverrides.ResponseError = "bad input";
        request.ReturnOverrides.ResponseHeaders = {"X-Why": "validation"};
    } else if (mode === "forced") {
        request.ReturnOverrides.ResponseCode = 200;
        request.ReturnOverrides.ResponseBody = "made by js";
    } else if (mode === "override-error") {
        request.ReturnOverrides.responsecode = 418;
        request.ReturnOverrides.responsebody = '{"tea": true}';
        request.ReturnOverrides.overrideerror = true;
        request.ReturnOverrides.ResponseHeaders = {"Content-Type": "application/json"};
    }
""",
)


async def test_return_overrides_answer_without_the_upstream(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("ov", middleware={"pre": [{"name": "overrides", "path": str(tmp_path / "js/o.js")}]})],
        {"o.js": OVERRIDES},
    )
    error = await gw.request("GET", "/ov/", [("X-Mode", "error")])
    assert error.status == 400
    assert error.json() == {"error": "bad input"}
    assert error.header("x-why") == b"validation"
    assert error.header("x-upstream") is None

    forced = await gw.request("GET", "/ov/", [("X-Mode", "forced")])
    assert (forced.status, forced.body) == (200, b"made by js")
    assert forced.header("content-type") == b"text/plain; charset=utf-8"
    assert forced.header("x-upstream") is None

    # Field names match case-insensitively (Go's decoder); OverrideError sends the body as is.
    teapot = await gw.request("GET", "/ov/", [("X-Mode", "override-error")])
    assert (teapot.status, teapot.json()) == (418, {"tea": True})

    passed = await gw.request("GET", "/ov/")
    assert passed.status == 200
    assert passed.header("x-upstream") == b"yes"


AUTH = """
var jsAuth = new TykJS.TykMiddleware.NewMiddleware({});
jsAuth.NewProcessRequest(function (request, session, config) {
    var token = request.Headers["Authorization"] ? request.Headers["Authorization"][0] : "";
    if (token !== "Bearer ann-secret") {
        request.ReturnOverrides.ResponseCode = 401;
        request.ReturnOverrides.ResponseError = "who are you?";
        return jsAuth.ReturnAuthData(request, {});
    }
    var out = jsAuth.ReturnAuthData(request, {"meta_data": {"user": "ann", "visits": 0},
                                              "org_id": "ignored"});
    out.AuthValue = "ann-key";
    return out;
});
var noKey = new TykJS.TykMiddleware.NewMiddleware({});
noKey.NewProcessRequest(function (request, session, config) {
    return noKey.ReturnAuthData(request, {"meta_data": {}});
});
"""

POST_WITH_SESSION = """
var countVisits_with_session = new TykJS.TykMiddleware.NewMiddleware({});
countVisits_with_session.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-User"] = session.meta_data.user;
    var meta = {"user": session.meta_data.user, "visits": session.meta_data.visits + 1};
    return countVisits_with_session.ReturnData(request, meta);
});
var seeSession = new TykJS.TykMiddleware.NewMiddleware({});
seeSession.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Post-Visits"] = session.meta_data ? "seen" : "none";
    request.SetHeaders["X-Without-Session"] = JSON.stringify(session);
    return seeSession.ReturnData(request, {});
});
"""


def auth_api(api_id: str, tmp_path: Path, auth_name: str = "jsAuth") -> dict[str, Any]:
    doc = api(
        api_id,
        keyless=False,
        middleware={
            "auth_check": {"name": auth_name, "path": str(tmp_path / "js/auth.js")},
            "post_key_auth": [
                {
                    "name": "countVisits_with_session",
                    "path": str(tmp_path / "js/post.js"),
                    "require_session": True,
                }
            ],
            "post": [{"name": "seeSession", "path": str(tmp_path / "js/post.js")}],
        },
    )
    doc["enable_coprocess_auth"] = True
    return doc


async def test_custom_auth_creates_the_session_and_post_hooks_see_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw = await start_gateway(
        nursery,
        tmp_path,
        [auth_api("authed", tmp_path), auth_api("nokey", tmp_path, "noKey")],
        {"auth.js": AUTH, "post.js": POST_WITH_SESSION},
    )
    denied = await gw.request("GET", "/authed/", [("Authorization", "Bearer nope")])
    assert (denied.status, denied.json()) == (401, {"error": "who are you?"})

    ok = await gw.request("GET", "/authed/", [("Authorization", "Bearer ann-secret")])
    assert ok.status == 200, ok.body
    headers = seen_headers(ok)
    # The Post-Auth hook (require_session) saw the session custom auth made.
    assert headers["x-user"] == ["ann"]
    # The Post hook has no require_session: it gets an empty session object.
    assert headers["x-without-session"] == ["{}"]
    assert headers["x-post-visits"] == ["none"]

    # A session without AuthValue authenticates nobody.
    no_key = await gw.request("GET", "/nokey/", [("Authorization", "Bearer ann-secret")])
    assert (no_key.status, no_key.json()) == (403, {"error": "Key not authorised"})


async def test_meta_data_written_back_by_post_auth_is_seen_by_the_post_hook(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    check = """
var readVisits_with_session = new TykJS.TykMiddleware.NewMiddleware({});
readVisits_with_session.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Visits"] = String(session.meta_data.visits);
    return readVisits_with_session.ReturnData(request, session.meta_data);
});
"""
    doc = auth_api("meta", tmp_path)
    doc["custom_middleware"]["post"] = [
        {
            "name": "readVisits_with_session",
            "path": str(tmp_path / "js/check.js"),
            "require_session": True,
        }
    ]
    gw = await start_gateway(
        nursery, tmp_path, [doc], {"auth.js": AUTH, "post.js": POST_WITH_SESSION, "check.js": check}
    )
    first = await gw.request("GET", "/meta/", [("Authorization", "Bearer ann-secret")])
    assert seen_headers(first)["x-visits"] == ["1"]


async def test_a_body_the_script_leaves_alone_passes_byte_for_byte(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # A gzip body is not UTF-8 text: the script sees it decoded (bad bytes as U+FFFD), and
    # sending that text back would corrupt it. Left unchanged, it must arrive as it was.
    coded = bytes([0x1F, 0x8B, 0x08, 0x00, 0xFF, 0xFE, 0x80, 0x00]) + b"rest"

    async def gzip_upstream(request: Request) -> Response:
        await request.read_body()
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        return Response(status=200, headers=headers, body_bytes=coded)

    tag_only = middleware("tagOnly", 'request.SetHeaders["X-Tagged"] = "js";')
    gw = await start_gateway(
        nursery,
        tmp_path,
        [
            api(
                "bin",
                middleware={"response": [{"name": "tagOnly", "path": str(tmp_path / "js/t.js")}]},
            )
        ],
        {"t.js": tag_only},
        upstream_handler=gzip_upstream,
    )
    response = await gw.request("GET", "/bin/")
    assert response.status == 200
    assert response.header("x-tagged") == b"js"
    assert response.body == coded


async def test_response_hook_changes_the_upstream_response(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    response_js = middleware(
        "rewriteResponse",
        """
    var upstream = JSON.parse(request.Body);
    request.SetHeaders["X-Rewritten"] = "js";
    request.DeleteHeaders.push("X-Upstream");
    request.Body = JSON.stringify({"path_was": upstream.path, "status_was": request.StatusCode});
""",
    )
    gw = await start_gateway(
        nursery,
        tmp_path,
        [
            api(
                "resp",
                middleware={
                    "response": [{"name": "rewriteResponse", "path": str(tmp_path / "js/r.js")}]
                },
            )
        ],
        {"r.js": response_js},
    )
    response = await gw.request("GET", "/resp/abc")
    assert response.status == 200
    # StatusCode: the upstream's status, read by the hook (our extension to Tyk's object).
    assert response.json() == {"path_was": "/abc", "status_was": 200}
    assert response.header("x-rewritten") == b"js"
    assert response.header("x-upstream") is None
    assert response.header("content-length") == str(len(response.body)).encode()


async def test_per_endpoint_hook_runs_only_on_its_endpoint(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    doc = api("ep", middleware={})
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "go_plugin": [
            {
                "path": "/only/here",
                "method": "GET",
                "plugin_path": str(tmp_path / "js/add.js"),
                "func_name": "addHeader",
            }
        ]
    }
    gw = await start_gateway(nursery, tmp_path, [doc], {"add.js": ADD_HEADER})
    here = await gw.request("GET", "/ep/only/here")
    assert seen_headers(here)["x-js"] == ["from-ep"]
    elsewhere = await gw.request("GET", "/ep/other")
    assert "x-js" not in seen_headers(elsewhere)


async def test_directory_loaded_middleware_runs_in_its_stages(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = tmp_path / "middleware" / "dir-api"
    order = (
        '    request.SetHeaders["X-Order"] ='
        ' (request.Headers["X-Order"] || []).concat(["%s"]).join(",");'
    )
    scripts = {
        "pre/b_second.js": middleware("b_second", order % "folder-b"),
        "pre/a_first.js": middleware("a_first", order % "folder-a"),
        "post/tagIt_with_session.js": middleware(
            "tagIt_with_session",
            '    request.SetHeaders["X-Session-Keys"] = Object.keys(session).length > 0 '
            '? "session" : "none";',
        ),
    }
    for name, source in scripts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(source)
    (folder / "pre" / "notes.txt").write_text("not a script")
    # An API without plugins in its definition gets Tyk's default driver for its folder, otto.
    plain = tmp_path / "middleware" / "dir-plain" / "pre" / "a_first.js"
    plain.parent.mkdir(parents=True)
    plain.write_text(scripts["pre/a_first.js"])
    definition = tmp_path / "js" / "definition.js"
    doc = api("dir-api", middleware={"pre": [{"name": "fromDefinition", "path": str(definition)}]})
    no_driver = api("dir-plain", middleware={})
    del no_driver["custom_middleware"]
    gw = await start_gateway(
        nursery,
        tmp_path,
        [doc, no_driver],
        {"definition.js": middleware("fromDefinition", order % "definition")},
        bundles=BundlesConfig(middleware_path=str(tmp_path / "middleware")),
    )
    response = await gw.request("GET", "/dir-api/")
    assert response.status == 200, response.body
    headers = seen_headers(response)
    # The definition's Pre hook first, then the folder's files in name order (as Tyk does).
    assert headers["x-order"] == ["definition,folder-a,folder-b"]
    # A keyless API has no session: the _with_session hook gets an empty object.
    assert headers["x-session-keys"] == ["none"]
    plain_response = await gw.request("GET", "/dir-plain/")
    assert seen_headers(plain_response)["x-order"] == ["folder-a"]


async def test_a_directory_loaded_auth_file_replaces_the_definitions(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = tmp_path / "middleware" / "dir-auth" / "auth"
    folder.mkdir(parents=True)
    (folder / "jsAuth.js").write_text(AUTH.replace("Bearer ann-secret", "Bearer folder-secret"))
    gw = await start_gateway(
        nursery,
        tmp_path,
        [auth_api("dir-auth", tmp_path)],
        {"auth.js": AUTH, "post.js": POST_WITH_SESSION},
        bundles=BundlesConfig(middleware_path=str(tmp_path / "middleware")),
    )
    old = await gw.request("GET", "/dir-auth/", [("Authorization", "Bearer ann-secret")])
    assert old.status == 401
    new = await gw.request("GET", "/dir-auth/", [("Authorization", "Bearer folder-secret")])
    assert new.status == 200, new.body


async def test_without_enable_jsvm_the_api_answers_503_and_others_serve(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = api("off", middleware={"pre": [{"name": "addHeader", "path": str(tmp_path / "js/a.js")}]})
    plain = api("plain", middleware={})
    plain["custom_middleware"] = {}
    gw = await start_gateway(
        nursery,
        tmp_path,
        [doc, plain],
        {"a.js": ADD_HEADER},
        javascript=JavascriptConfig(enable=False),
    )
    assert (await gw.request("GET", "/off/")).status == 503
    assert (await gw.request("GET", "/plain/")).status == 200
    assert "enable_jsvm" in caplog.text


# ------------------------------------------------------------------------------------------------
# Built-ins


BUILTINS = middleware(
    "builtins",
    """
    log("hello from " + config.APIID);
    rawlog("raw line");
    request.SetHeaders["X-B64"] = b64enc("héllo");
    request.SetHeaders["X-B64-Back"] = b64dec(b64enc("hello"));
    request.SetHeaders["X-Raw"] = rawb64enc("hi?");
    request.SetHeaders["X-Raw-Back"] = rawb64dec(rawb64enc("hi?"));
    request.SetHeaders["X-Underscore"] = String(_.contains([1, 2, 3], 2));
    request.SetHeaders["X-Batch"] = String(TykBatchRequest("{}"));
    request.SetHeaders["X-Batch-Bad"] = String(TykBatchRequest("not json"));
""",
)


async def test_string_builtins_logs_underscore_and_empty_batches(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_gateway.plugins.jsvm")
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("bi", middleware={"pre": [{"name": "builtins", "path": str(tmp_path / "js/b.js")}]})],
        {"b.js": BUILTINS},
    )
    response = await gw.request("GET", "/bi/")
    assert response.status == 200, response.body
    headers = seen_headers(response)
    assert headers["x-b64"] == [base64.b64encode("héllo".encode()).decode()]
    assert headers["x-b64-back"] == ["hello"]
    assert headers["x-raw"] == ["aGk/"]
    assert headers["x-raw-back"] == ["hi?"]
    assert headers["x-underscore"] == ["true"]
    assert headers["x-batch"] == ["[]"]  # no requests: Tyk's empty answer array
    assert headers["x-batch-bad"] == ["undefined"]
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("trio_gateway.plugins.jsvm", logging.INFO, "jsvm: hello from bi") in messages
    assert ("trio_gateway.plugins.jsvm.raw", logging.INFO, "raw line") in messages
    assert any("TykBatchRequest failed" in m for _, _, m in messages)


MAKE_REQUEST = middleware(
    "callOut",
    """
    var reply = TykMakeHttpRequest(JSON.stringify({
        "method": "POST",
        "domain": config.config_data.upstream,
        "resource": "/lookup?x=1",
        "headers": {"X-Asked-By": "js"},
        "formdata": {"b": "2", "a": "1"}
    }));
    if (reply === undefined) {
        request.SetHeaders["X-Lookup"] = "failed";
    } else {
        var parsed = JSON.parse(reply);
        var seen = JSON.parse(parsed.Body);
        request.SetHeaders["X-Lookup-Code"] = String(parsed.Code) + "/" + String(parsed.code);
        request.SetHeaders["X-Lookup-Body"] = seen.body;
        request.SetHeaders["X-Lookup-Path"] = seen.path + "?" + seen.query;
        request.SetHeaders["X-Lookup-Header"] = parsed.Headers["X-Upstream"][0];
    }
""",
)


async def test_tyk_make_http_request_reaches_a_real_server(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    hook = {"pre": [{"name": "callOut", "path": str(tmp_path / "js/m.js")}]}
    doc = api("mk", middleware=hook, config_data={"upstream": UPSTREAM})
    bad = api("mkbad", middleware=hook, config_data={"upstream": "http://127.0.0.1:1"})
    gw = await start_gateway(nursery, tmp_path, [doc, bad], {"m.js": MAKE_REQUEST})
    response = await gw.request("GET", "/mk/")
    assert response.status == 200, response.body
    headers = seen_headers(response)
    assert headers["x-lookup-code"] == ["200/200"]
    assert headers["x-lookup-body"] == ["a=1&b=2"]  # FormData, URL-encoded, as no Body was set
    assert headers["x-lookup-path"] == ["/lookup?x=1"]
    assert headers["x-lookup-header"] == ["yes"]
    # A request that fails gives the script undefined; the hook goes on.
    failed = await gw.request("GET", "/mkbad/")
    assert seen_headers(failed)["x-lookup"] == ["failed"]


BATCH = middleware(
    "batch",
    """
    var up = config.config_data.upstream;
    var answers = JSON.parse(TykBatchRequest(JSON.stringify({
        "requests": [
            {"method": "POST", "relative_url": up + "/one?x=1",
             "headers": {"x-asked-by": "js"}, "body": "first"},
            {"relative_url": up + "/two"},
            {"method": "GET", "relative_url": "http://127.0.0.1:1/refused"}
        ],
        "suppress_parallel_execution": request.Headers["X-Sequential"] !== undefined
    })));
    var first = JSON.parse(answers[0].body), second = JSON.parse(answers[1].body);
    request.SetHeaders["X-Batch-Urls"] = answers[0].relative_url.replace(up, "") + " " +
        answers[1].relative_url.replace(up, "") + " " + JSON.stringify(answers[2].relative_url);
    request.SetHeaders["X-Batch-Codes"] = answers.map(function (a) { return a.code; }).join(",");
    request.SetHeaders["X-Batch-First"] = [first.method, first.path, first.query, first.body,
        answers[0].headers["X-Upstream"][0]].join(" ");
    request.SetHeaders["X-Batch-Second"] = second.method + " " + second.path;
    request.SetHeaders["X-Batch-Asked-By"] = first.headers.filter(
        function (h) { return h[0].toLowerCase() === "x-asked-by"; })[0][1];
    request.SetHeaders["X-Batch-Failed"] = JSON.stringify(answers[2]);
""",
)


@pytest.mark.parametrize("sequential", [False, True])
async def test_tyk_batch_request_reaches_a_real_server(
    nursery: trio.Nursery, tmp_path: Path, sequential: bool
) -> None:
    hook = {"pre": [{"name": "batch", "path": str(tmp_path / "js/batch.js")}]}
    doc = api("bt", middleware=hook, config_data={"upstream": UPSTREAM})
    gw = await start_gateway(nursery, tmp_path, [doc], {"batch.js": BATCH})
    asked = [("X-Sequential", "1")] if sequential else []
    response = await gw.request("GET", "/bt/", headers=asked)
    assert response.status == 200, response.body
    headers = seen_headers(response)
    # Answers in the order asked, each with its URL, status, Go-style headers and body; a
    # request that fails is Tyk's empty unit.
    assert headers["x-batch-urls"] == ['/one?x=1 /two ""']
    assert headers["x-batch-codes"] == ["200,200,0"]
    assert headers["x-batch-first"] == ["POST /one x=1 first yes"]
    assert headers["x-batch-second"] == ["GET /two"]
    assert headers["x-batch-asked-by"] == ["js"]
    assert json.loads(headers["x-batch-failed"][0]) == {
        "relative_url": "",
        "code": 0,
        "headers": None,
        "body": "",
    }


KEY_DATA = middleware(
    "keyData",
    """
    var action = request.Headers["X-Action"][0];
    if (action === "set") {
        TykSetKeyData("js-key", JSON.stringify({"org_id": "org1", "rate": 7, "per": 1,
                                                 "meta_data": {"set_by": "js"}}), "1");
    } else {
        var found = JSON.parse(TykGetKeyData(request.Headers["X-Key"][0], config.APIID));
        request.SetHeaders["X-Rate"] = String(found.rate);
        request.SetHeaders["X-Set-By"] = String(found.meta_data ? found.meta_data.set_by : "");
        request.SetHeaders["X-Status"] = String(found.status);
    }
""",
)


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_key_data_builtins_use_the_session_store(
    nursery: trio.Nursery, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    from trio_gateway._config.model import StorageConfig

    storage = StorageConfig()
    if store == "redis":
        server = request.getfixturevalue("redis_db")
        storage = StorageConfig(type="redis", host=server.host, port=server.port)
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("kd", middleware={"pre": [{"name": "keyData", "path": str(tmp_path / "js/k.js")}]})],
        {"k.js": KEY_DATA},
        storage=storage,
    )
    assert (await gw.request("GET", "/kd/", [("X-Action", "set")])).status == 200
    got = await gw.request("GET", "/kd/", [("X-Action", "get"), ("X-Key", "js-key")])
    headers = seen_headers(got)
    assert (headers["x-rate"], headers["x-set-by"]) == (["7"], ["js"])
    missing = await gw.request("GET", "/kd/", [("X-Action", "get"), ("X-Key", "nope")])
    assert seen_headers(missing)["x-status"] == ["error"]  # Tyk's "Key not found" object


@pytest.mark.parametrize(
    ("setting", "preloaded", "uses", "expected"),
    [
        # tyk_js_path: user globals loaded before the API's files.
        ("tyk_js_path", "function greet(w) { return 'hi ' + w; }", "greet('you')", "hi you"),
        # underscore_path: a stand-in for Underscore.js; the setting decides what `_` is.
        ("underscore_path", 'var _ = {"VERSION": "configured"};', "_.VERSION", "configured"),
    ],
)
async def test_files_the_settings_name_are_loaded_before_the_api_files(
    nursery: trio.Nursery, tmp_path: Path, setting: str, preloaded: str, uses: str, expected: str
) -> None:
    file = tmp_path / "preloaded.js"
    file.write_text(preloaded + "\n")
    script = middleware("usesIt", f'    request.SetHeaders["X-Seen"] = {uses};')
    hook = {"pre": [{"name": "usesIt", "path": str(tmp_path / "js/u.js")}]}
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("pl", middleware=hook)],
        {"u.js": script},
        javascript=JavascriptConfig(enable=True, **{setting: str(file)}),
    )
    response = await gw.request("GET", "/pl/")
    assert seen_headers(response)["x-seen"] == [expected]


async def test_the_vm_serves_other_requests_while_a_script_waits_for_its_http_request(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    slow_started, release = trio.Event(), trio.Event()

    async def upstream(request: Request) -> Response:
        if request.path == "/slow":
            slow_started.set()
            with trio.fail_after(10):
                await release.wait()
        return await echo(request)

    calls_out = middleware(
        "maybeCall",
        """
    if (request.Headers["X-Call"]) {
        var reply = TykMakeHttpRequest(JSON.stringify(
            {"Method": "GET", "Domain": config.config_data.upstream, "Resource": "/slow"}));
        request.SetHeaders["X-Called"] = String(JSON.parse(reply).Code);
    }
""",
    )
    hook = {"pre": [{"name": "maybeCall", "path": str(tmp_path / "js/c.js"), "timeout": 10}]}
    gw = await start_gateway(
        nursery,
        tmp_path,
        [api("wait", middleware=hook, config_data={"upstream": UPSTREAM})],
        {"c.js": calls_out},
        upstream_handler=upstream,
    )
    waiting: list[RawResponse] = []
    answered = trio.Event()

    async def slow_request() -> None:
        waiting.append(await gw.request("GET", "/wait/", [("X-Call", "1")]))
        answered.set()

    nursery.start_soon(slow_request)
    with trio.fail_after(10):
        await slow_started.wait()
    # The first request's script is suspended in TykMakeHttpRequest: the same API's VM answers.
    quick = await gw.request("GET", "/wait/")
    assert quick.status == 200
    assert not waiting
    release.set()
    with trio.fail_after(10):
        await answered.wait()
    assert seen_headers(waiting[0])["x-called"] == ["200"]


async def test_an_oas_api_runs_its_javascript_plugins(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    js = str(tmp_path / "js" / "add.js")
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "oas-js", "version": "1"},
        "paths": {},
        "x-tyk-api-gateway": {
            "info": {"id": "oas-js", "name": "oas-js", "orgId": "org1", "state": {"active": True}},
            "server": {"listenPath": {"value": "/oas-js/", "strip": True}},
            "middleware": {
                "global": {
                    "pluginConfig": {"driver": "otto"},
                    "prePlugins": [{"enabled": True, "functionName": "addHeader", "path": js}],
                }
            },
        },
    }
    gw = await start_gateway(nursery, tmp_path, [doc], {"add.js": ADD_HEADER})
    response = await gw.request("GET", "/oas-js/x")
    assert response.status == 200, response.body
    assert seen_headers(response)["x-js"] == ["from-oas-js"]


async def test_tyk_make_http_request_goes_through_the_proxy_from_the_environment(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Go's client reads HTTP_PROXY / NO_PROXY; so does ours. The echo upstream plays the proxy:
    # it receives the request for the unreachable host in absolute form.
    seen: list[str] = []

    async def proxy(request: Request) -> Response:
        seen.append(request.path)
        return await echo(request)

    via = middleware(
        "viaProxy",
        """
    var reply = TykMakeHttpRequest(JSON.stringify(
        {"Method": "GET", "Domain": "http://backend.invalid", "Resource": "/through"}));
    request.SetHeaders["X-Proxied"] =
        reply === undefined ? "failed" : String(JSON.parse(reply).Code);
""",
    )
    hook = {"pre": [{"name": "viaProxy", "path": str(tmp_path / "js/v.js")}]}
    gw = await start_gateway(
        nursery, tmp_path, [api("px", middleware=hook)], {"v.js": via}, upstream_handler=proxy
    )
    host, port = gw.upstream
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://{host}:{port}")
    response = await gw.request("GET", "/px/")
    assert seen_headers(response)["x-proxied"] == ["200"]
    assert "http://backend.invalid/through" in seen
    # NO_PROXY names the host: no proxy, and the unreachable host fails the request.
    monkeypatch.setenv("NO_PROXY", "backend.invalid")
    response = await gw.request("GET", "/px/")
    assert seen_headers(response)["x-proxied"] == ["failed"]


@pytest.mark.parametrize("trusted", [True, False])
async def test_tyk_make_http_request_uses_the_upstream_tls_settings(
    nursery: trio.Nursery, tmp_path: Path, trusted: bool
) -> None:
    ca = trustme.CA()
    server = await start_upstream(nursery, tls=tls_server_context(ca))
    call = middleware(
        "callTls",
        """
    var reply = TykMakeHttpRequest(JSON.stringify(
        {"Method": "GET", "Domain": config.config_data.target, "Resource": "/tls"}));
    request.SetHeaders["X-Tls"] =
        reply === undefined ? "failed" : String(JSON.parse(reply).Code);
""",
    )
    hook = {"pre": [{"name": "callTls", "path": str(tmp_path / "js/t.js")}]}
    doc = api("tls", middleware=hook, config_data={"target": server.url})
    upstream = UpstreamConfig(ca_file=str(write_ca_file(ca, tmp_path)) if trusted else None)
    gw = await start_gateway(nursery, tmp_path, [doc], {"t.js": call}, upstream=upstream)
    response = await gw.request("GET", "/tls/")
    # With the CA the gateway trusts for upstreams, the script's request is verified and
    # answered; without it, the unverified server gets nothing and the script gets undefined.
    assert seen_headers(response)["x-tls"] == (["200"] if trusted else ["failed"])
    assert [r.target for r in server.requests] == ([b"/tls"] if trusted else [])
