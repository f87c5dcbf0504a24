"""Per-request script state, as in Tyk: every request starts from the globals as loaded.

Tyk runs each request on a copy of the API's VM; here one VM serves the API and its globals are
put back before every call (``builtins.js``, "Per-request script state"). Through real sockets:
what a request writes into globals is gone for the next one, sequential or concurrent.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.helpers.js_gateway import JsGateway, api, seen_headers, start_gateway

#: Changes global state in every way the issue names, and reports what it saw before changing it.
STATEFUL = """
var n = 0;
var seen = [];
var settings = {mode: "loaded", nested: {tags: ["a"]}};
var greeting = "hello";
var stateful = new TykJS.TykMiddleware.NewMiddleware({});
stateful.NewProcessRequest(function (request, session, config) {
    n++;
    seen.push(request.Params["id"][0]);
    var before = {
        n: n,
        seen: seen.join(","),
        mode: settings.mode,
        extra: typeof settings.extra,
        tags: settings.nested.tags.length,
        greeting: greeting,
        leaked: typeof leaked,
        onMiddleware: typeof stateful.note
    };
    settings.extra = request.Params["id"][0];
    settings.mode = "changed";
    settings.nested.tags.push("b");
    greeting = "changed by " + request.Params["id"][0];
    leaked = request.Params["id"][0];
    stateful.note = "x";
    request.SetHeaders["X-State"] = JSON.stringify(before);
    return stateful.ReturnData(request, {});
});

var asksGateway = new TykJS.TykMiddleware.NewMiddleware({});
asksGateway.NewProcessRequest(function (request, session, config) {
    n++;
    var first = TykGetKeyData("no-such-key", config.APIID);
    var second = TykGetKeyData("no-such-key-either", config.APIID);
    request.SetHeaders["X-Count"] = String(n);
    return asksGateway.ReturnData(request, {});
});
"""

FRESH = {
    "n": 1,
    "mode": "loaded",
    "extra": "undefined",
    "tags": 1,
    "greeting": "hello",
    "leaked": "undefined",
    "onMiddleware": "undefined",
}


async def gateway(nursery: trio.Nursery, tmp_path: Path, name: str) -> JsGateway:
    path = str(tmp_path / "js" / "state.js")
    doc = api("state", middleware={"pre": [{"name": name, "path": path}]})
    return await start_gateway(nursery, tmp_path, [doc], {"state.js": STATEFUL})


async def state_seen(gw: JsGateway, request_id: int) -> dict[str, object]:
    response = await gw.request("GET", f"/state/?id={request_id}")
    assert response.status == 200
    [text] = seen_headers(response)["x-state"]
    state: dict[str, object] = json.loads(text)
    return state


async def test_sequential_requests_each_start_from_the_loaded_state(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw = await gateway(nursery, tmp_path, "stateful")
    for i in range(20):
        # The counter, the array, the object's fields, the reassigned and the implicit global,
        # and the property added to the middleware object: all as loaded, every time; the array
        # holds this request's id only (request i-1's push is not visible).
        assert await state_seen(gw, i) == {**FRESH, "seen": str(i)}


async def test_concurrent_requests_never_see_each_others_writes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw = await gateway(nursery, tmp_path, "stateful")
    results: dict[int, dict[str, object]] = {}

    async def one(i: int) -> None:
        results[i] = await state_seen(gw, i)

    async with trio.open_nursery() as inner:
        for i in range(20):
            inner.start_soon(one, i)
    assert results == {i: {**FRESH, "seen": str(i)} for i in range(20)}


async def test_a_call_replayed_for_gateway_requests_changes_globals_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Two TykGetKeyData calls make the call run three times (suspend and replay); each run starts
    # from the loaded state, so the script sees n == 1 as it would in Tyk, on every request.
    gw = await gateway(nursery, tmp_path, "asksGateway")
    for _ in range(3):
        response = await gw.request("GET", "/state/?id=0")
        assert response.status == 200
        assert seen_headers(response)["x-count"] == ["1"]
