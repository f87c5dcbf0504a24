"""Header injection: tag every request before it reaches the upstream (a Pre hook).

API definition: examples/apps-plugins/add-headers.json
"""

from __future__ import annotations

from trio_gateway.hooks import HookContext


async def add_headers(ctx: HookContext) -> None:
    config = ctx.api.config_data or {}
    ctx.request.set_header("X-Gateway", str(config.get("gateway_name", "trio-gateway")))
    ctx.request.set_header("X-Api-Id", ctx.api.api_id)
    ctx.request.delete_header("X-Internal-Debug")  # never let clients set it
