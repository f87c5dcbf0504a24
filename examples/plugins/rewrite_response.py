"""Response rewriting: wrap the upstream's JSON answer in an envelope (a Response hook).

A plain ``def``: the gateway runs it in a worker thread, so heavy JSON work never stalls
other requests. API definition: examples/apps-plugins/rewrite-response.json
"""

from __future__ import annotations

import json

from trio_gateway.hooks import HookContext


def wrap_response(ctx: HookContext) -> None:
    response = ctx.response
    if response is None or response.body is None:
        return
    content_type = response.get_header("content-type", "") or ""
    if "json" not in content_type:
        return
    try:
        data = json.loads(response.body)
    except ValueError:
        return
    envelope = {"data": data, "status": response.status, "api": ctx.api.api_id}
    response.set_body(json.dumps(envelope))
    response.set_header("X-Rewritten-By", "trio-gateway")
