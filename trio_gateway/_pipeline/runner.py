"""Walks an API's chain for one request: deadlines, failure policies, cancellation.

Cost model (measured, see docs/decisions-pipeline.md): a cancel scope costs a few µs, a nursery
tens of µs. So a stage walks *all* its hooks inside ONE cancel scope whose deadline is moved before
each hook to ``min(hook.timeout, exchange.deadline)``; a new scope is opened only after a hook
timed out under fail-open (a cancelled scope cannot be reused). The pipeline starts no tasks of its
own: hooks run inline in the request's task, so anything a hook starts lives in a nursery the hook
itself owns, inside our scope, and is cancelled with it. A cancel from outside (client gone)
propagates untouched; it is never logged or counted as a failure.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from .._apidef.model import ApiDefinition, FailureMode, PluginRef, Stage
from .._error_body import error_response
from .._exchange import Request, Response
from ..hooks import ApiInfo, Driver, HookContext, HookRef, Respond
from .chain import Chain
from .exchange import Exchange
from .policy import (
    NO_SESSION_MESSAGE,
    NO_SESSION_STATUS,
    FailureKind,
    classify,
    failure_response,
)

log = logging.getLogger("trio_gateway.pipeline")

#: Bound on closing a driver (it runs shielded, so it needs its own limit).
CLOSE_TIMEOUT = 5.0

#: A built-in middleware (keys, quotas... issue 4): a response to send, or None to continue.
Builtin = Callable[[Request, Exchange], Awaitable[Response | None]]

#: Runs once after the request walk, whatever its outcome (persists session changes).
Finisher = Callable[[Exchange], Awaitable[None]]

#: Marks where the built-in authentication runs: before the AUTH hook, so that an authenticated
#: request (standard token auth, or a session cached by custom auth's ID extractor) skips it and
#: POST_AUTH hooks see the session. Bounded by the request deadline only, fail closed.
AUTHENTICATE_STEP = HookRef(
    stage=Stage.AUTH,
    plugin=PluginRef(name="built-in auth"),
    index=0,
    timeout=math.inf,
    failure_mode=FailureMode.CLOSED,
)

#: Marks where the built-ins run in the walk; bounded by the request deadline only, fail closed.
BUILTINS_STEP = HookRef(
    stage=Stage.POST_AUTH,
    plugin=PluginRef(name="built-ins"),
    index=0,
    timeout=math.inf,
    failure_mode=FailureMode.CLOSED,
)


@attrs.frozen(kw_only=True)
class PipelineStatistics:
    """Counters of one API's pipeline since it was built."""

    calls: int
    responded: int
    timeouts: int
    errors: int
    unavailable: int
    #: Failures a fail-open policy skipped (each also counted under its kind).
    failed_open: int
    #: Failures per hook label (``pre[0] name``).
    failures_by_hook: dict[str, int]


@attrs.define(eq=False)
class ApiPipeline:
    """One API's hooks, loaded once, run per request. Built by ``build_pipeline``."""

    api: ApiDefinition
    chain: Chain
    driver: Driver | None
    builtins: Sequence[Builtin] = ()
    #: Built-in authentication (see ``AUTHENTICATE_STEP``); None when the API has none.
    authenticate: Builtin | None = None
    finish: Finisher | None = None
    _info: ApiInfo = attrs.field(init=False)
    _before_endpoint: tuple[HookRef, ...] = attrs.field(init=False)
    _request_steps: tuple[HookRef, ...] = attrs.field(init=False)
    _calls: int = 0
    _responded: int = 0
    _failures: dict[FailureKind, int] = attrs.field(factory=lambda: dict.fromkeys(FailureKind, 0))
    _failed_open: int = 0
    _failures_by_hook: dict[str, int] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._info = ApiInfo.from_api(self.api)
        chain = self.chain
        # The whole request walk is one flat list, so it runs under one cancel scope.
        builtins = (BUILTINS_STEP,) if self.builtins else ()
        authenticate = (AUTHENTICATE_STEP,) if self.authenticate is not None else ()
        self._before_endpoint = chain.pre + authenticate + chain.auth + chain.post_auth + builtins
        self._request_steps = self._before_endpoint + chain.post

    @property
    def has_request_hooks(self) -> bool:
        return self.chain.has_request_hooks or bool(self.builtins) or self.authenticate is not None

    @property
    def has_response_hooks(self) -> bool:
        return self.chain.has_response_hooks

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(
            calls=self._calls,
            responded=self._responded,
            timeouts=self._failures[FailureKind.TIMEOUT],
            errors=self._failures[FailureKind.ERROR],
            unavailable=self._failures[FailureKind.UNAVAILABLE],
            failed_open=self._failed_open,
            failures_by_hook=dict(self._failures_by_hook),
        )

    async def run_request(self, request: Request, exchange: Exchange) -> Response | None:
        """PRE → AUTH → POST_AUTH → built-ins → ENDPOINT → POST.

        Returns the response to send instead of proxying, or None to go upstream.
        """
        steps = self._request_steps
        if self.chain.endpoints:
            hook = self.chain.match_endpoint(request.method, request.path)
            if hook is not None:
                steps = (*self._before_endpoint, hook, *self.chain.post)
        if not steps:
            return None
        if self.driver is None:
            # Built-ins only (no plugin hooks): one scope with the request's deadline, none of
            # the per-hook deadline moves of ``_walk``.
            answer = await self._walk_builtins(request, exchange)
        else:
            answer = await self._walk(steps, request, exchange, None)
        if self.finish is not None:
            await self.finish(exchange)
        return answer

    async def run_response(
        self, request: Request, response: Response, exchange: Exchange
    ) -> Response:
        """RESPONSE hooks over the upstream's response; returns what the client gets."""
        if not self.chain.response:
            return response
        answer = await self._walk(self.chain.response, request, exchange, response)
        return answer if answer is not None else response

    async def aclose(self) -> None:
        if self.driver is not None:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
                await self.driver.aclose()

    async def _walk_builtins(self, request: Request, exchange: Exchange) -> Response | None:
        """Authentication and the built-ins of an API without plugin hooks."""
        if exchange.deadline_enforced:
            return await self._run_builtins(request, exchange)
        with trio.CancelScope(deadline=exchange.deadline):
            return await self._run_builtins(request, exchange)
        return self._fail(BUILTINS_STEP, FailureKind.TIMEOUT, None)  # the deadline passed

    async def _run_builtins(self, request: Request, exchange: Exchange) -> Response | None:
        step = AUTHENTICATE_STEP
        try:
            if self.authenticate is not None:
                answer = await self.authenticate(request, exchange)
                if answer is not None:
                    return answer
            step = BUILTINS_STEP
            for builtin in self.builtins:
                answer = await builtin(request, exchange)
                if answer is not None:
                    return answer
        except Exception as exc:  # Cancelled is a BaseException: it passes
            return self._fail(step, classify(exc), exc)
        return None

    async def _walk(
        self,
        hooks: tuple[HookRef, ...],
        request: Request,
        exchange: Exchange,
        response: Response | None,
    ) -> Response | None:
        """Run ``hooks`` in order. Returns a response that ends the walk, or None."""
        driver = self.driver
        current_time = trio.current_time
        i, n = 0, len(hooks)
        while i < n:
            failure: FailureKind | None = None
            error: Exception | None = None
            with trio.CancelScope() as scope:
                while i < n:
                    hook = hooks[i]
                    deadline = current_time() + hook.timeout
                    if deadline > exchange.deadline:
                        deadline = exchange.deadline
                    scope.deadline = deadline
                    if hook is AUTHENTICATE_STEP:
                        assert self.authenticate is not None
                        try:
                            answer = await self.authenticate(request, exchange)
                        except Exception as exc:
                            failure, error = classify(exc), exc
                            break
                        if answer is not None:
                            return answer
                        i += 1
                        if exchange.session is not None:
                            i += len(self.chain.auth)  # authenticated: the AUTH hook is skipped
                        continue
                    if hook is BUILTINS_STEP:
                        try:
                            for builtin in self.builtins:
                                answer = await builtin(request, exchange)
                                if answer is not None:
                                    return answer
                        except Exception as exc:
                            failure, error = classify(exc), exc
                            break
                        i += 1
                        continue
                    ctx = HookContext._create(
                        stage=hook.stage,
                        api=self._info,
                        hook=hook,
                        request=request,
                        session=exchange.session,
                        session_key=exchange.session_key,
                        response=response,
                    )
                    assert driver is not None  # a chain with hooks always has a driver
                    self._calls += 1
                    try:
                        decision = await driver.call(hook, ctx)
                    except Exception as exc:  # Cancelled is a BaseException: it passes
                        failure, error = classify(exc), exc
                        break
                    # A hook that never checkpoints cannot be interrupted; one that ran past its
                    # deadline (or swallowed our cancel) still gets the timeout answer.
                    if scope.cancel_called or current_time() > deadline:
                        failure = FailureKind.TIMEOUT
                        break
                    if ctx._meta_data_changed:
                        exchange.meta_data_changed = True
                    if isinstance(decision, Respond):
                        self._responded += 1
                        return decision.to_response()
                    if hook.stage is Stage.AUTH:
                        if ctx._session is None:
                            return error_response(NO_SESSION_STATUS, NO_SESSION_MESSAGE)
                        exchange.session, exchange.session_key = ctx._session, ctx._session_key
                        exchange.session_created = True
                    i += 1
            if scope.cancelled_caught:
                failure = FailureKind.TIMEOUT
            if failure is None:
                break
            hook = hooks[i]
            answer = self._fail(hook, failure, error)
            if answer is not None:
                return answer
            i += 1  # fail open: skip exactly this hook
        return None

    def _fail(self, hook: HookRef, kind: FailureKind, error: Exception | None) -> Response | None:
        self._failures[kind] += 1
        label = hook.label
        self._failures_by_hook[label] = self._failures_by_hook.get(label, 0) + 1
        answer = failure_response(kind, hook.stage, hook.failure_mode)
        if answer is None:
            self._failed_open += 1
        # Logged once, here; the text of the exception stays in the log.
        log.warning(
            "hook failed (%s): api=%s stage=%s hook=%s policy=%s",
            kind.value,
            self.api.api_id,
            hook.stage.value,
            label,
            "open" if answer is None else "closed",
            exc_info=error,
        )
        return answer
