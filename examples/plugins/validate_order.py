"""Request validation: refuse an order without a JSON body holding ``item`` and ``quantity``.

A Post hook; it answers 400 itself, so a bad request never reaches the upstream.
API definition: examples/apps-plugins/validate-order.json
"""

from __future__ import annotations

import json

from trio_gateway.hooks import HookContext, Respond

MAX_BODY = 64 * 1024


def _problem(message: str) -> Respond:
    body = json.dumps({"error": message})
    return Respond(status=400, headers={"Content-Type": "application/json"}, body=body)


async def validate_order(ctx: HookContext) -> Respond | None:
    if ctx.request.method not in ("POST", "PUT"):
        return None
    raw = await ctx.request.read_body(limit=MAX_BODY)
    try:
        order = json.loads(raw)
    except ValueError:
        return _problem("body must be JSON")
    if not isinstance(order, dict) or "item" not in order:
        return _problem("missing field: item")
    quantity = order.get("quantity")
    if not isinstance(quantity, int) or quantity < 1:
        return _problem("quantity must be a positive integer")
    return None
