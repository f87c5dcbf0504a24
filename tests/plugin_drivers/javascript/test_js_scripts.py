"""One API's scripts on the real engine: Tyk's JS library, built-ins, gateway requests."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import attrs
import pytest

from plugin_drivers.javascript.engine import JsError, JsLoadError, JsMemoryError, JsTimeoutError
from plugin_drivers.javascript.request_object import GatewayRequest, to_js_request_parts
from plugin_drivers.javascript.scripts import ApiScripts, JsSource, find_underscore

MIDDLEWARE = """
var headerMw = new TykJS.TykMiddleware.NewMiddleware({});
headerMw.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Api"] = config.APIID + ":" + config.config_data.greeting;
    request.Body = request.Body.toUpperCase();
    return headerMw.ReturnData(request, {seen: "yes"});
});

var authMw = new TykJS.TykMiddleware.NewMiddleware({});
authMw.NewProcessRequest(function (request, session) {
    var data = authMw.ReturnAuthData(request, {rate: 10, per: 1});
    data.AuthValue = request.Headers["Authorization"][0];
    return data;
});

var nothingMw = new TykJS.TykMiddleware.NewMiddleware({});
nothingMw.NewProcessRequest(function () { return null; });
"""


@attrs.define
class RecordingHost:
    """Answers the gateway built-ins from a table and records what the script asked."""

    logs: list[tuple[str, str]] = attrs.Factory(list)
    asked: list[tuple[Any, ...]] = attrs.Factory(list)
    http_answer: str | None = '{"Code": 200, "Body": "pong"}'

    def log(self, message: str) -> None:
        self.logs.append(("log", message))

    def rawlog(self, message: str) -> None:
        self.logs.append(("rawlog", message))

    def error(self, message: str) -> None:
        self.logs.append(("error", message))

    def make_http_request(self, request_json: str, *, timeout: float) -> str | None:
        self.asked.append(("http", json.loads(request_json), timeout))
        if self.http_answer == "raise":
            raise ConnectionError("refused")
        return self.http_answer

    def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None:
        self.asked.append(("get", key, api_id))
        return json.dumps({"meta_data": {"key": key}})

    def set_key_data(
        self, key: str, session_json: str, suppress_reset: str, *, timeout: float
    ) -> None:
        self.asked.append(("set", key, json.loads(session_json), suppress_reset))

    def batch_request(self, request_json: str, *, timeout: float) -> str | None:
        self.asked.append(("batch", request_json))
        return "[]"


def scripts(source: str, host: RecordingHost | None = None, **kw: Any) -> ApiScripts:
    return ApiScripts(
        api_id="api1",
        sources=[JsSource(name="mw.js", text=source)],
        host=host or RecordingHost(),
        **kw,
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIG = {"OrgID": "org", "APIID": "api1", "config_data": {"greeting": "hi"}}


def test_do_process_request_contract() -> None:
    api = scripts(MIDDLEWARE)
    request = {"Headers": {"Host": ["h"]}, "SetHeaders": {}, "Body": b64("héllo")}
    out = api.run_middleware("headerMw", request, {}, CONFIG, timeout=1)
    # Body decoded for the script, re-encoded on the way out; ReturnData shape; what the
    # gateway does not apply (Headers, Params, Method ..., untouched ReturnOverrides) is left out.
    assert out["SessionMeta"] == {"seen": "yes"}
    assert out["Request"] == {
        "SetHeaders": {"X-Api": "api1:hi"},
        "DeleteHeaders": [],
        "Body": b64("HÉLLO"),
        "AddParams": {},
        "ExtendedParams": {},
        "DeleteParams": [],
        "IgnoreBody": False,
    }
    api.close()


def test_the_script_sees_the_whole_request_object_in_tyks_field_order() -> None:
    """The gateway sends only the fields that vary (to_js_request_parts); the wrapper builds the
    rest, so a script that lists or serialises the object sees Tyk's MiniRequestObject."""
    api = scripts(
        """
        var orderMw = new TykJS.TykMiddleware.NewMiddleware({});
        orderMw.NewProcessRequest(function (request, session, config) {
            request.SetHeaders["X-Fields"] = Object.keys(request).join(",");
            request.SetHeaders["X-Overrides"] = JSON.stringify(request.ReturnOverrides);
            return orderMw.ReturnData(request, {});
        });
        """
    )
    parts = to_js_request_parts(
        GatewayRequest(
            method="GET", scheme="http", host="h", url="/a?x=1", request_uri="/a?x=1",
            headers=(("host", "h"),), body=b"",
        )
    )  # fmt: skip
    out = api.run_middleware("orderMw", parts, {}, CONFIG, timeout=1)
    assert out["Request"]["SetHeaders"] == {
        "X-Fields": "Headers,SetHeaders,DeleteHeaders,Body,URL,Params,AddParams,ExtendedParams,"
        "DeleteParams,ReturnOverrides,IgnoreBody,Method,RequestURI,Scheme",
        "X-Overrides": '{"ResponseCode":0,"ResponseError":"","ResponseBody":"",'
        '"ResponseHeaders":null,"OverrideError":false}',
    }
    api.close()


def test_return_auth_data_with_auth_value() -> None:
    api = scripts(MIDDLEWARE)
    request = {"Headers": {"Authorization": ["k1"]}, "Body": ""}
    out = api.run_middleware("authMw", request, {}, CONFIG, timeout=1)
    assert out["Session"] == {"rate": 10, "per": 1}
    assert out["AuthValue"] == "k1"
    api.close()


def test_middleware_without_a_return_is_an_error_and_is_logged() -> None:
    host = RecordingHost()
    api = scripts(MIDDLEWARE, host)
    with pytest.raises(JsError, match="nothingMw returned no request object"):
        api.run_middleware("nothingMw", {"Body": ""}, {}, CONFIG, timeout=1)
    assert ("log", "Middleware didn't return request object!") in host.logs
    api.close()


def test_missing_middleware_object_is_an_error() -> None:
    api = scripts(MIDDLEWARE)
    with pytest.raises(JsError, match="notThere is not defined"):
        api.run_middleware("notThere", {"Body": ""}, {}, CONFIG, timeout=1)
    api.close()


def test_string_built_ins_match_go_base64() -> None:
    api = scripts(
        "function enc(s) { return [b64enc(s), rawb64enc(s), b64dec(b64enc(s)),"
        " rawb64dec(rawb64enc(s)), b64dec(rawb64enc(s))]; }"
    )
    for text in ["", "a", "ab", "héllo wörld", "emoji 😀", "\u0000bin"]:
        std = base64.b64encode(text.encode()).decode()
        assert api._call("enc", text, timeout=1) == [std, std.rstrip("="), text, text, text]
    api.close()


def test_bad_base64_is_logged_and_gives_undefined() -> None:
    host = RecordingHost()
    api = scripts("function dec(s) { return typeof b64dec(s); }", host)
    assert api._call("dec", "***", timeout=1) == "undefined"
    assert [kind for kind, _ in host.logs] == ["error"]
    api.close()


def test_log_and_rawlog_reach_the_host_in_order() -> None:
    host = RecordingHost()
    api = scripts("function f() { log('one'); rawlog('two'); log({a: 1}); return 1; }", host)
    assert api._call("f", timeout=1) == 1
    assert host.logs == [("log", "one"), ("rawlog", "two"), ("log", "[object Object]")]
    api.close()


def test_gateway_built_ins_reach_the_host_once_each() -> None:
    host = RecordingHost()
    api = scripts(
        """
        function f() {
            log("start");
            var r = JSON.parse(TykMakeHttpRequest(JSON.stringify(
                {Method: "GET", Domain: "http://up", Resource: "/ping"})));
            var s = JSON.parse(TykGetKeyData("key1", "api1"));
            TykSetKeyData("key1", JSON.stringify({meta_data: {n: 1}}), "1");
            var b = TykBatchRequest("{}");
            return [r.Body, s.meta_data.key, b];
        }
        """,
        host,
    )
    assert api._call("f", timeout=2) == ["pong", "key1", "[]"]
    assert [a[0] for a in host.asked] == ["http", "get", "set", "batch"]
    assert host.asked[0][1] == {"Method": "GET", "Domain": "http://up", "Resource": "/ping"}
    assert 0 < host.asked[0][2] <= 2  # the host gets the time the call has left
    assert host.asked[2][1:] == ("key1", {"meta_data": {"n": 1}}, "1")
    assert host.logs == [("log", "start")]  # replays do not log twice
    api.close()


def test_failed_gateway_request_gives_undefined_as_in_tyk() -> None:
    host = RecordingHost(http_answer="raise")
    api = scripts("function f() { return typeof TykMakeHttpRequest('{}'); }", host)
    assert api._call("f", timeout=1) == "undefined"
    assert host.logs == [("error", "TykMakeHttpRequest failed: ConnectionError: refused")]
    api.close()


def test_script_catching_around_a_gateway_request_still_gets_the_answer() -> None:
    host = RecordingHost()
    api = scripts(
        "function f() { try { return TykMakeHttpRequest('{}'); } catch (e) { return 'caught'; } }",
        host,
    )
    assert api._call("f", timeout=1) == '{"Code": 200, "Body": "pong"}'
    api.close()


@pytest.mark.slow
def test_endless_loop_after_a_gateway_request_is_stopped() -> None:
    api = scripts(
        "function f() { TykGetKeyData('k', 'a'); while (true) {} }"
        " function ok() { return TykGetKeyData('k', 'a'); }"
    )
    with pytest.raises(JsTimeoutError):
        api._call("f", timeout=0.3)
    assert json.loads(api._call("ok", timeout=1)) == {"meta_data": {"key": "k"}}
    api.close()


def test_memory_cap_rebuilds_the_vm_from_its_sources() -> None:
    api = scripts(
        "var kept = []; var loads = (typeof loads === 'number') ? loads + 1 : 1;"
        " function hog() { while (true) { kept.push('x'.repeat(1000) + kept.length); } }"
        " function count() { return kept.length; }",
        memory_limit=16 * 1024 * 1024,
    )
    with pytest.raises(JsMemoryError):
        api._call("hog", timeout=30)
    assert api.rebuilds == 1
    assert api._call("count", timeout=1) == 0  # a fresh VM: the global array is gone
    api.close()


def test_a_configured_underscore_that_is_missing_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(JsLoadError, match=r"absent\.js: the configured Underscore\.js"):
        scripts("var a = 1;", underscore=tmp_path / "absent.js")


def test_load_error_names_the_api_file() -> None:
    with pytest.raises(JsLoadError, match=r"mw\.js:1:"):
        scripts("var = 1;")


def test_user_globals_load_before_the_api_files() -> None:
    api = ApiScripts(
        api_id="api1",
        sources=[
            JsSource(name="globals.js", text="var prefix = 'p-';"),
            JsSource(name="a.js", text="function f() { return prefix + g(); }"),
            JsSource(name="b.js", text="function g() { return 'b'; }"),
        ],
        host=RecordingHost(),
    )
    assert api._call("f", timeout=1) == "p-b"
    api.close()


def test_underscore_is_preloaded_from_the_installed_package() -> None:
    # scripts/test installs Debian's libjs-underscore, the package that ships it here.
    api = scripts("function f() { return _.map([1, 2], function (x) { return x * 2; }); }")
    assert api.underscore == find_underscore()
    assert api.underscore is not None
    assert api._call("f", timeout=1) == [2, 4]
    api.close()


def test_without_underscore_a_script_using_it_gets_a_clear_error(tmp_path: Path) -> None:
    api = scripts(
        "function f() { return _.size([1]); }", underscore_locations=[tmp_path / "absent.js"]
    )
    assert api.underscore is None
    with pytest.raises(JsError, match=r"Underscore\.js .* is not available.*libjs-underscore"):
        api._call("f", timeout=1)
    api.close()


def test_without_underscore_a_script_may_define_its_own(tmp_path: Path) -> None:
    api = scripts(
        "var _ = {size: function (a) { return a.length; }}; function f() { return _.size([1]); }",
        underscore_locations=[],
    )
    assert api._call("f", timeout=1) == 1
    api.close()


async def test_calls_from_trio_worker_threads_under_a_limiter() -> None:
    """How the driver will call it: synchronously, from worker threads, several at once."""
    import trio

    api = scripts(MIDDLEWARE)
    limiter = trio.CapacityLimiter(4)
    results: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        request = {"Headers": {}, "SetHeaders": {}, "Body": b64(f"r{i}")}
        out = await trio.to_thread.run_sync(
            lambda: api.run_middleware("headerMw", request, {}, CONFIG, timeout=2),
            limiter=limiter,
        )
        results.append(out)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(one, i)
    assert sorted(base64.b64decode(r["Request"]["Body"]).decode() for r in results) == sorted(
        f"R{i}" for i in range(20)
    )
    await trio.to_thread.run_sync(api.close)


def test_underscore_stays_usable_on_every_call() -> None:
    # `_` is evaluated on its first read, during a call; putting the globals back before the next
    # call must not drop it.
    api = scripts("function f() { return _.map([1, 2], function (x) { return x + 1; }); }")
    assert [api._call("f", timeout=1) for _ in range(3)] == [[2, 3]] * 3
    api.close()


def test_maps_sets_and_key_order_are_as_loaded_on_every_call() -> None:
    source = """
var cache = new Map([["a", 1]]);
var ids = new Set(["x"]);
var doc = {first: 1, second: 2};
function f(tag) {
    var before = [Array.from(cache), Array.from(ids), JSON.stringify(doc)];
    cache.set(tag, 2); cache.set("a", 9); ids.add(tag);
    delete doc.first; doc.first = tag; doc.third = 3;
    return before;
}
"""
    api = scripts(source)
    loaded = [[["a", 1]], ["x"], '{"first":1,"second":2}']
    assert [api._call("f", tag, timeout=1) for tag in ("t1", "t2")] == [loaded, loaded]
    api.close()


def test_a_state_too_large_to_put_back_is_left_alone_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = """
var table = [];
for (var i = 0; i < 30000; i++) { table.push(i); }
function f() { table.push(0); return table.length; }
"""
    with caplog.at_level(logging.WARNING, logger="trio_gateway.plugins.jsvm"):
        api = scripts(source)
    assert "global state is larger than 20000 values" in caplog.text
    assert [api._call("f", timeout=5) for _ in range(2)] == [30001, 30002]
    api.close()
