"""Plugins the harness's own tests load."""

from __future__ import annotations

import trio

from trio_gateway.hooks import HookContext, Respond


async def tag(ctx: HookContext) -> None:
    ctx.request.set_header("X-Tagged", "yes")


async def slow(ctx: HookContext) -> None:
    await trio.sleep(30)


async def teapot(ctx: HookContext) -> Respond:
    return ctx.respond(418, "short and stout")


async def reads_capped(ctx: HookContext) -> None:
    await ctx.request.read_body(limit=1000)


async def quote_token(ctx: HookContext) -> None:
    ctx.request.set_header("X-Quoted", repr(ctx.request.get_header("X-Token")))
