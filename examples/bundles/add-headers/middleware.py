"""The header-injection example (examples/plugins/add_headers.py) shipped as a Tyk bundle.

``helpers`` is this bundle's own module: a bundle is its own module namespace, so another bundle's
``helpers.py`` is never seen here (docs/bundles.md).
"""

from __future__ import annotations

from helpers import gateway_name

from trio_gateway.hooks import HookContext


async def add_headers(ctx: HookContext) -> None:
    ctx.request.set_header("X-Gateway", gateway_name(ctx.api.config_data))
    ctx.request.set_header("X-Api-Id", ctx.api.api_id)
    ctx.request.delete_header("X-Internal-Debug")  # never let clients set it
