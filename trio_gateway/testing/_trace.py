"""The hook trace: a wrapper around an API's driver that records every hook call.

It wraps whatever driver the API names (the registry builds it as the gateway would), so every
driver, present and future, is traced without knowing it. The record of the request being served
lives in a context variable: the pipeline runs hooks inline in the request's task, so a call
always sees its own request's record, even when requests run concurrently.
"""

from __future__ import annotations

import contextvars
import math
import time
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

import attrs
import trio

from .._apidef.model import ApiDefinition, Stage
from .._proto.writer import check_request, check_response
from ..hooks import Decision, Driver, HookContext, HookRef, Respond
from ._model import HookCall


@attrs.define(eq=False)
class RequestTrace:
    """The hook calls of one request, and the session key the walk ended with."""

    calls: list[HookCall] = attrs.field(factory=list)
    session_key: str = ""
    #: Set by a check that cancels the request: a hook that goes on after this scope's cancel
    #: reached it swallowed the cancellation.
    cancel_scope: trio.CancelScope | None = None


CURRENT_TRACE: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar(
    "trio_gateway_testing_trace", default=None
)


@attrs.define(eq=False)
class _Steps:
    longest: float = 0.0
    #: Trio time the hook last got control back (after its last wait).
    last_resumed: float = -math.inf


@types.coroutine
def _timed(coro: Coroutine[Any, Any, Decision], steps: _Steps) -> Generator[Any, Any, Decision]:
    """``await coro``, measuring on the wall clock how long each step held the event loop."""
    send: Any = None
    throw: BaseException | None = None
    first = True
    while True:
        if not first:
            steps.last_resumed = trio.current_time()
        first = False
        start = time.perf_counter()
        try:
            yielded = coro.throw(throw) if throw is not None else coro.send(send)
        except StopIteration as stop:
            result: Decision = stop.value
            return result
        finally:
            steps.longest = max(steps.longest, time.perf_counter() - start)
        try:
            send, throw = (yield yielded), None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # handed to the hook, as await would
            send, throw = None, exc


@attrs.define(eq=False)
class TracingDriver:
    """Delegates to ``inner`` and records each call in the current request's trace."""

    inner: Driver

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        await self.inner.load(api, hooks)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        trace = CURRENT_TRACE.get()
        steps = _Steps()
        started = trio.current_time()

        def record(outcome: str, **extra: Any) -> None:
            if trace is None:
                return
            duration = trio.current_time() - started
            if outcome in ("continue", "respond", "cancelled") and duration >= hook.timeout:
                outcome = "timeout"  # the pipeline answers a late result as a timeout
            trace.calls.append(
                HookCall(
                    stage=hook.stage,
                    name=hook.name,
                    label=hook.label,
                    outcome=outcome,
                    duration=duration,
                    longest_step=steps.longest,
                    **extra,
                )
            )
            if ctx.session_key:
                trace.session_key = ctx.session_key

        try:
            decision = await _timed(self.inner.call(hook, ctx), steps)
        except trio.Cancelled:
            record("cancelled")
            raise
        except Exception as exc:
            record("error", error=f"{type(exc).__name__}: {exc}")
            raise
        # The pipeline refuses values that would corrupt a head after the hook returns; say so
        # here too, so the trace names the hook that set them.
        try:
            if isinstance(decision, Respond):
                answer = decision.to_response()
                check_response(answer.status, answer.headers)
            elif hook.stage is Stage.RESPONSE:
                response = ctx.raw_response
                if response is not None:
                    check_response(response.status, response.headers)
            else:
                req = ctx.raw_request
                check_request(req.method, req.path, req.query, req.headers)
        except Exception as exc:
            record("error", error=f"invalid value set: {exc}")
            return decision
        scope = trace.cancel_scope if trace is not None else None
        # Trio delivers a cancel when the task next resumes from a wait: a hook that resumed
        # at or after the scope's deadline was handed trio.Cancelled, and returning normally
        # means it caught it.
        if scope is not None and scope.cancel_called and steps.last_resumed >= scope.deadline:
            record("swallowed-cancel", error="the hook caught trio.Cancelled and went on")
            return decision
        if isinstance(decision, Respond):
            record("respond", status=decision.status)
        else:
            after = None
            response = ctx.raw_response
            if hook.stage is Stage.RESPONSE and response is not None:
                headers = tuple(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers
                )
                after = (response.status, headers, response.body_bytes or b"")
            record("continue", response_after=after)
        return decision
