"""JavaScript that misbehaves, end to end: loops, memory runaways, load and run-time errors.

The client gets the policy's answer in bounded time, the log names API, hook and file, and the
API (and every other API) goes on serving.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers.js_gateway import api, seen_headers, start_gateway
from trio_gateway._config.model import JavascriptConfig

#: Loops forever when the request object mentions "please-loop" anywhere (header, URL or, in a
#: Response hook, the upstream's echo of them); otherwise passes the request on.
LOOPS = """
function wantsLoop(request) { return JSON.stringify(request).indexOf("please-loop") >= 0; }
var loop = new TykJS.TykMiddleware.NewMiddleware({});
loop.NewProcessRequest(function (request, session, config) {
    if (wantsLoop(request)) { while (true) {} }
    request.SetHeaders["X-Passed"] = "yes";
    return loop.ReturnData(request, {});
});
var loopAuth = new TykJS.TykMiddleware.NewMiddleware({});
loopAuth.NewProcessRequest(function (request, session, config) {
    if (request.Headers["X-Auth-Loop"]) { while (true) {} }
    var out = loopAuth.ReturnAuthData(request, {"meta_data": {}});
    out.AuthValue = "someone";
    return out;
});
var passThrough = new TykJS.TykMiddleware.NewMiddleware({});
passThrough.NewProcessRequest(function (request, session, config) {
    return passThrough.ReturnData(request, {});
});
var grow = new TykJS.TykMiddleware.NewMiddleware({});
grow.NewProcessRequest(function (request, session, config) {
    if (wantsLoop(request)) {
        var keep = [];
        while (true) { keep.push(new Array(10000).join("x") + keep.length); }
    }
    return grow.ReturnData(request, {});
});
"""

#: Time allowed beyond the limit: the engine's limit is processor time, and this machine is shared.
MARGIN = 3.0


def hook(name: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": str(tmp_path / "js" / "loops.js"), **extra}


def stage_api(stage: str, tmp_path: Path) -> dict[str, Any]:
    """An API whose ``stage`` hook is ``loop`` (custom auth: ``loopAuth``), hook timeout 10 s."""
    auth = hook("loopAuth", tmp_path, timeout=10)
    loop = hook("loop", tmp_path, timeout=10)
    if stage == "endpoint":
        doc = api("s-endpoint", middleware={})
        doc["version_data"]["versions"]["Default"]["extended_paths"] = {
            "go_plugin": [
                {
                    "path": "/{rest}",
                    "method": "GET",
                    "plugin_path": loop["path"],
                    "func_name": "loop",
                    "timeout": 10,
                }
            ]
        }
        return doc
    key = {"pre": "pre", "post_auth": "post_key_auth", "post": "post", "response": "response"}
    if stage == "auth":
        middleware: dict[str, Any] = {"auth_check": auth}
    elif stage == "post_auth":
        middleware = {"auth_check": auth, "post_key_auth": [loop]}
    else:
        middleware = {key[stage]: [loop]}
    keyed = stage in ("auth", "post_auth")
    doc = api(f"s-{stage.replace('_', '-')}", middleware=middleware, keyless=not keyed)
    if keyed:
        doc["enable_coprocess_auth"] = True
    return doc


STAGES = ["pre", "auth", "post_auth", "post", "response", "endpoint"]


@pytest.mark.slow
async def test_an_endless_loop_at_any_stage_is_stopped_at_jsvm_timeout(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    jsvm_timeout = 0.3
    gw = await start_gateway(
        nursery,
        tmp_path,
        [stage_api(stage, tmp_path) for stage in STAGES],
        {"loops.js": LOOPS},
        javascript=JavascriptConfig(enable=True, timeout=jsvm_timeout),
    )
    for stage in STAGES:
        prefix = f"/s-{stage.replace('_', '-')}"
        marker = [("X-Auth-Loop", "1")] if stage == "auth" else [("X-Marker", "please-loop")]
        start = trio.current_time()
        stopped = await gw.request("GET", f"{prefix}/x", marker)
        elapsed = trio.current_time() - start
        assert stopped.status == 504, (stage, stopped.body)
        assert elapsed < jsvm_timeout + MARGIN, (stage, elapsed)
        # The same API, the same VM: the next request runs normally.
        after = await gw.request("GET", f"{prefix}/x")
        assert after.status == 200, (stage, after.body)


async def test_a_hook_deadline_shorter_than_jsvm_timeout_wins(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The endpoint hook loops with a 0.3 s deadline (jsvm_timeout is 5 s); the Pre hook of the
    # same API (the same VM) has 10 s, so the next request shows when the VM is free again.
    doc = api("short", middleware={"pre": [hook("passThrough", tmp_path, timeout=10)]})
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "go_plugin": [
            {
                "path": "/loop",
                "method": "GET",
                "plugin_path": str(tmp_path / "js" / "loops.js"),
                "func_name": "loop",
                "timeout": 0.3,
            }
        ]
    }
    gw = await start_gateway(nursery, tmp_path, [doc], {"loops.js": LOOPS})
    start = trio.current_time()
    stopped = await gw.request("GET", "/short/loop", [("X-Marker", "please-loop")])
    assert stopped.status == 504
    assert trio.current_time() - start < 0.3 + MARGIN
    # The engine stopped the script at the hook's deadline, not at jsvm_timeout.
    after = await gw.request("GET", "/short/other")
    assert after.status == 200
    assert trio.current_time() - start < 0.3 + MARGIN


async def test_memory_runaway_is_a_500_and_the_api_keeps_serving(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = api("mem", middleware={"pre": [hook("grow", tmp_path, timeout=10)]})
    gw = await start_gateway(
        nursery,
        tmp_path,
        [doc],
        {"loops.js": LOOPS},
        javascript=JavascriptConfig(enable=True, memory_limit=16 * 1024 * 1024),
    )
    for _ in range(2):
        runaway = await gw.request("GET", "/mem/", [("X-Marker", "please-loop")])
        assert runaway.status == 500
        assert (await gw.request("GET", "/mem/")).status == 200
    assert "memory cap" in caplog.text


BROKEN = {
    "syntax.js": "var broken = new TykJS.TykMiddleware.NewMiddleware({};\n",
    "good.js": """
var good = new TykJS.TykMiddleware.NewMiddleware({});
good.NewProcessRequest(function (request, session, config) {
    var mode = request.Headers["X-Mode"] ? request.Headers["X-Mode"][0] : "";
    if (mode === "undefined-name") { return notDefinedAnywhere(request); }
    if (mode === "falsy") { return undefined; }
    if (mode === "wrong-type") { request.SetHeaders = "not an object"; }
    if (mode === "bad-header") { request.SetHeaders["X-Bad"] = "a\\r\\nInjected: yes"; }
    if (mode === "bad-url") { request.URL = "no-slash"; }
    return good.ReturnData(request, {});
});
var notJson = {DoProcessRequest: function () { return "this is not JSON"; }};
""",
}


async def test_load_errors_refuse_only_their_api_naming_api_hook_and_file(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    js = tmp_path / "js"
    apis = [
        api("syntax", middleware={"pre": [{"name": "broken", "path": str(js / "syntax.js")}]}),
        api("missing", middleware={"post": [{"name": "nowhere", "path": str(js / "good.js")}]}),
        api("nofile", middleware={"pre": [{"name": "good", "path": str(js / "absent.js")}]}),
        api("fine", middleware={"pre": [{"name": "good", "path": str(js / "good.js")}]}),
    ]
    gw = await start_gateway(nursery, tmp_path, apis, BROKEN)
    for api_id in ("syntax", "missing", "nofile"):
        assert (await gw.request("GET", f"/{api_id}/")).status == 503, api_id
    assert (await gw.request("GET", "/fine/")).status == 200
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    syntax = next(line for line in lines if "'syntax'" in line)
    assert "pre[0] broken" in syntax
    assert str(js / "syntax.js") in syntax
    assert "SyntaxError" in syntax
    missing = next(line for line in lines if "'missing'" in line)
    assert "post[0] nowhere" in missing
    assert str(js / "good.js") in missing
    assert "no middleware object 'nowhere'" in missing
    nofile = next(line for line in lines if "'nofile'" in line)
    assert str(js / "absent.js") in nofile


@pytest.mark.parametrize(
    "mode", ["undefined-name", "falsy", "wrong-type", "bad-header", "bad-url"]
)
async def test_run_time_errors_are_500s_naming_api_hook_and_file(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    js = tmp_path / "js"
    apis = [api("rt", middleware={"pre": [{"name": "good", "path": str(js / "good.js")}]})]
    gw = await start_gateway(nursery, tmp_path, apis, BROKEN)
    failed = await gw.request("GET", "/rt/", [("X-Mode", mode)])
    assert failed.status == 500
    assert failed.json() == {"error": "Middleware error"}
    assert (await gw.request("GET", "/rt/")).status == 200
    line = next(r.getMessage() for r in caplog.records if "hook failed" in r.getMessage())
    assert "api=rt" in line
    assert "pre[0] good" in line
    assert str(js / "good.js") in line


async def test_a_non_json_return_is_a_500(nursery: trio.Nursery, tmp_path: Path) -> None:
    js = tmp_path / "js"
    apis = [api("nj", middleware={"pre": [{"name": "notJson", "path": str(js / "good.js")}]})]
    gw = await start_gateway(nursery, tmp_path, apis, BROKEN)
    assert (await gw.request("GET", "/nj/")).status == 500


async def test_concurrent_requests_each_get_their_own_answer(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # One VM per API serialises its calls; every request still sees only its own request object.
    echo_id = """
var echoId = new TykJS.TykMiddleware.NewMiddleware({});
echoId.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Echo"] = "id-" + request.Params["id"][0];
    return echoId.ReturnData(request, {});
});
"""
    doc = api("conc", middleware={"pre": [{"name": "echoId", "path": str(tmp_path / "js/e.js")}]})
    gw = await start_gateway(nursery, tmp_path, [doc], {"e.js": echo_id})
    results: dict[int, list[str]] = {}

    async def one(i: int) -> None:
        response = await gw.request("GET", f"/conc/?id={i}")
        results[i] = seen_headers(response)["x-echo"]

    async with trio.open_nursery() as inner:
        for i in range(20):
            inner.start_soon(one, i)
    assert results == {i: [f"id-{i}"] for i in range(20)}
