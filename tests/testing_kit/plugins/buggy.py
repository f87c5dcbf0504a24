"""One deliberately buggy native plugin per kind of bug the battery looks for, and its fix.

``bug_<kind>`` has the bug; ``fixed_<kind>`` is the same plugin done right. The battery must flag
every ``bug_*`` (with a shrunk example) and pass every ``fixed_*`` (test_battery.py).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time

import trio

from trio_gateway.hooks import HookContext, Session


# 1. an exception on some valid input (a missing header)
async def bug_no_errors(ctx: HookContext) -> None:
    ctx.request.set_header("X-Client", ctx.request.get_header("User-Agent").lower())  # type: ignore[union-attr]


async def fixed_no_errors(ctx: HookContext) -> None:
    ctx.request.set_header("X-Client", (ctx.request.get_header("User-Agent") or "").lower())


# 2. a deadline overrun on a slow path (long paths)
async def bug_deadlines(ctx: HookContext) -> None:
    if len(ctx.request.path) > 12:
        await trio.sleep(5)  # far past the hook's 1 s deadline


async def fixed_deadlines(ctx: HookContext) -> None:
    if len(ctx.request.path) > 12:
        with trio.move_on_after(0.2):  # bounded well inside the deadline
            await trio.sleep(5)


# 3. an async hook that blocks the event loop (a blocking call for all but GET)
async def bug_event_loop(ctx: HookContext) -> None:
    if ctx.request.method != "GET":
        time.sleep(0.15)  # noqa: ASYNC251 - the bug under test


async def fixed_event_loop(ctx: HookContext) -> None:
    if ctx.request.method != "GET":
        await trio.sleep(0.15)


# 4. swallowing cancellation
async def bug_cancellation(ctx: HookContext) -> None:
    try:
        await trio.sleep(0.2)
    except trio.Cancelled:
        pass  # the request moves on as if nothing happened


async def fixed_cancellation(ctx: HookContext) -> None:
    await trio.sleep(0.2)


# 5. state leaking between requests (a module-level "last user" fallback)
_LAST: dict[str, str] = {}


async def bug_state_isolation(ctx: HookContext) -> None:
    user = ctx.request.get_header("X-User")
    if user:
        _LAST["user"] = user
    elif "user" in _LAST:
        ctx.request.set_header("X-User", _LAST["user"])


async def fixed_state_isolation(ctx: HookContext) -> None:
    user = ctx.request.get_header("X-User")
    if user:
        ctx.request.set_header("X-User", user)


# 6. a write the stage forbids (the request, from a Response hook)
async def bug_stage_writes(ctx: HookContext) -> None:
    ctx.request.set_header("X-Served", "yes")


async def fixed_stage_writes(ctx: HookContext) -> None:
    assert ctx.response is not None
    ctx.response.set_header("X-Served", "yes")


# 7. custom auth that lets any Authorization value through
async def bug_custom_auth(ctx: HookContext) -> None:
    token = ctx.request.get_header("Authorization")
    if token is not None:
        ctx.set_session(token or "anonymous", Session())


async def fixed_custom_auth(ctx: HookContext) -> None:
    if ctx.request.get_header("Authorization") == "Bearer good-token":
        ctx.set_session("good-token", Session())


# 8. a Response hook whose Content-Length does not match the body it left
async def bug_response_consistency(ctx: HookContext) -> None:
    response = ctx.response
    assert response is not None
    old = response.body or b""
    response.set_body(b'{"wrapped": true}')
    response.set_header("Content-Length", str(len(old)))


async def fixed_response_consistency(ctx: HookContext) -> None:
    response = ctx.response
    assert response is not None
    response.set_body(b'{"wrapped": true}')
    # The new body is plain: the upstream's coding no longer applies (the battery's first run
    # on this "fixed" version found that it was missing).
    response.delete_header("Content-Encoding")


# 9. declared deterministic, but the result depends on a counter
_COUNTER = itertools.count()


async def bug_determinism(ctx: HookContext) -> None:
    ctx.request.set_header("X-Shard", str(next(_COUNTER) % 4))


async def fixed_determinism(ctx: HookContext) -> None:
    shard = hashlib.sha256(ctx.request.path.encode()).digest()[0] % 4
    ctx.request.set_header("X-Shard", str(shard))


# 10. a module-level "current request" that another request overwrites while this one waits
_CURRENT: dict[str, str | None] = {}


async def bug_concurrency(ctx: HookContext) -> None:
    _CURRENT["user"] = ctx.request.get_header("X-User")
    await trio.sleep(0.01)
    user = _CURRENT["user"]
    if user:
        ctx.request.set_header("X-Seen-User", user)


async def fixed_concurrency(ctx: HookContext) -> None:
    user = ctx.request.get_header("X-User")
    await trio.sleep(0.01)
    if user:
        ctx.request.set_header("X-Seen-User", user)


# A hook that never gives control back on some inputs (holds the interpreter in a loop).
async def bug_never_yields(ctx: HookContext) -> None:
    if ctx.request.method != "GET":
        while True:
            pass


# 1 again: an invalid result (a header value the body can fill with a line break)
async def bug_invalid_value(ctx: HookContext) -> None:
    body = await ctx.request.read_body()
    ctx.request.set_header("X-Body", body.decode("latin-1"))


async def fixed_invalid_value(ctx: HookContext) -> None:
    body = await ctx.request.read_body()
    ctx.request.set_header("X-Body", body.hex())


# 1 with sessions (token auth): a Post-auth hook that assumes a meta_data key every session has
async def bug_session_meta(ctx: HookContext) -> None:
    assert ctx.session is not None
    ctx.request.set_header("X-Plan", str(ctx.session.meta_data["plan"]))


async def fixed_session_meta(ctx: HookContext) -> None:
    assert ctx.session is not None
    ctx.request.set_header("X-Plan", str(ctx.session.meta_data.get("plan", "free")))


# 4 again: work started by the hook that outlives the request
async def bug_leaves_task(ctx: HookContext) -> None:
    trio.lowlevel.spawn_system_task(trio.sleep, 30)  # owned by no nursery of the request


async def bug_leaves_thread(ctx: HookContext) -> None:
    threading.Thread(target=time.sleep, args=(2,), name="plugin-audit", daemon=True).start()


async def fixed_leaves_task(ctx: HookContext) -> None:
    async with trio.open_nursery() as nursery:  # the hook waits for what it starts
        nursery.start_soon(trio.sleep, 0.01)


# 6 again: a result of the wrong shape (a dict where a decision is expected)
async def bug_wrong_shape(ctx: HookContext) -> object:
    if ctx.request.method != "GET":
        return {"status": 400}
    return None


async def fixed_wrong_shape(ctx: HookContext) -> object:
    if ctx.request.method != "GET":
        return ctx.respond(400, "no")
    return None
