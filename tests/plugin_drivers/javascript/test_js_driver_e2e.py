"""The ``otto`` driver end to end: real gateway, real upstream, real sockets."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.helpers.js_gateway import api, seen_headers, start_gateway

ADD_HEADER = """
var addHeader = new TykJS.TykMiddleware.NewMiddleware({});
addHeader.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Js"] = "from-" + config.APIID;
    return addHeader.ReturnData(request, {});
});
"""


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
