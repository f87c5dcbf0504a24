"""One API's hooks, loaded once and run per request: the chain, failure policies, statistics.

:class:`ApiPipeline` holds what an API's walk needs (its chain of hooks, the driver, built-in
authentication, built-ins, the finisher) and answers a failed hook by its policy (``_fail``),
counting it and logging it once. The walk itself, one function for every API with or without a
pipeline, is :func:`.steps.walk`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from .._apidef.model import ApiDefinition, FailureMode
from .._exchange import Request, Response
from .._logsummary import FailureLog
from .._metrics import GatewayMetrics, HookSeries
from ..hooks import ApiInfo, Driver, HookRef
from .chain import Chain
from .exchange import Exchange
from .policy import (
    FailureKind,
    failure_response,
)
from .steps import AUTHENTICATE_STEP, BUILTINS_STEP, GuardedWalk, walk, walk_builtins_guarded

if TYPE_CHECKING:
    from .walk import ApiRuntime, Upstream

log = logging.getLogger("trio_gateway.pipeline")
#: Hook failures: one line per API, hook and cause per interval (an outage must not flood).
_failure_log = FailureLog(log)

T = TypeVar("T")

#: Bound on closing a driver (it runs shielded, so it needs its own limit).
CLOSE_TIMEOUT = 5.0

#: A built-in middleware (keys, quotas... issue 4): a response to send, or None to continue.
#: (An ``async def`` or an object with an ``async def __call__``: the walk drives the coroutine.)
Builtin = Callable[[Request, Exchange], Coroutine[Any, Any, Response | None]]

#: Runs once after the request walk, whatever its outcome (persists session changes).
Finisher = Callable[[Exchange], Awaitable[None]]


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
    #: Whether a request walks anything before the upstream (hooks, auth or built-ins), and
    #: whether the response walks hooks. Plain attributes: the gateway reads them per request.
    has_request_hooks: bool = attrs.field(init=False)
    has_response_hooks: bool = attrs.field(init=False)
    #: Whether the walk may run without a scope when the connection keeps the request's
    #: deadline (steps.GuardedWalk): built-in steps only, or native Python hooks (which read
    #: no deadline off a scope, unlike the gRPC and JS drivers) that all fail closed (a hook
    #: timeout then ends the request, as the connection's guard does; fail open goes on).
    guardable: bool = attrs.field(init=False)
    #: Built-in steps only (no hooks at all): a guarded request walks them without the general
    #: walk's per-step machinery (steps.walk_builtins_guarded).
    builtins_only: bool = attrs.field(init=False)
    _calls: int = 0
    _responded: int = 0
    _failures: dict[FailureKind, int] = attrs.field(factory=lambda: dict.fromkeys(FailureKind, 0))
    _failed_open: int = 0
    _failures_by_hook: dict[str, int] = attrs.field(factory=dict)
    #: Per-hook latency and outcomes for /metrics (set by the gateway when metrics are on).
    metrics: GatewayMetrics | None = None
    #: Per hook (a HookRef hashes by identity: no label made per call).
    _hook_series: dict[HookRef, HookSeries] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._info = ApiInfo.from_api(self.api)
        chain = self.chain
        # The whole request walk is one flat list, so it runs under one cancel scope.
        builtins = (BUILTINS_STEP,) if self.builtins else ()
        authenticate = (AUTHENTICATE_STEP,) if self.authenticate is not None else ()
        self._before_endpoint = chain.pre + authenticate + chain.auth + chain.post_auth + builtins
        self._request_steps = self._before_endpoint + chain.post
        self.has_request_hooks = (
            chain.has_request_hooks or bool(self.builtins) or self.authenticate is not None
        )
        self.has_response_hooks = chain.has_response_hooks
        self.builtins_only = not chain.hooks
        self.guardable = self.driver is None or (
            self.api.middleware.driver == "python"
            and all(hook.failure_mode is FailureMode.CLOSED for hook in chain.hooks)
        )

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
        steps = self._steps_for(request)
        if not steps:
            return None
        answer = await walk(self, steps, request, exchange.deadline, exchange)
        if self.finish is not None:
            await self.finish(exchange)
        return answer

    def _steps_for(self, request: Request) -> tuple[HookRef, ...]:
        """The request walk's steps, with the endpoint hook that matches the request (if any)."""
        if self.chain.endpoints:
            hook = self.chain.match_endpoint(request.method, request.path)
            if hook is not None:
                return (*self._before_endpoint, hook, *self.chain.post)
        return self._request_steps

    async def run(
        self,
        request: Request,
        exchange: Exchange,
        upstream: Upstream,
        runtime: ApiRuntime,
    ) -> Response:
        """The whole walk of one request (:func:`walk`, under ``exchange.deadline``): the
        request steps, the finisher, ``upstream.call`` and the RESPONSE hooks.

        Returns what the client gets: a hook's (or a failure policy's) answer, the upstream's
        response (as RESPONSE hooks left it), or the 504 when the request's deadline passed.
        """
        # The connection keeps the request's deadline (``_deadlines``) for walks that need no
        # scope (steps.GuardedWalk); built-in steps alone walk without the per-step machinery.
        guard = request.deadline_guard
        if guard is not None and not (self.builtins_only or self.guardable):
            guard = None
        if guard is not None:
            guard.arm(exchange.deadline, runtime.timed_out)
        try:
            if guard is not None and self.builtins_only:
                answer: Response | None = await walk_builtins_guarded(
                    self, request, exchange, upstream, runtime
                )
            else:
                answer = await walk(
                    self,
                    self._steps_for(request),
                    request,
                    exchange.deadline,
                    exchange,
                    None,
                    upstream,
                    runtime,
                    exchange.host_header,
                    GuardedWalk(guard, exchange.deadline, runtime.timed_out, self)
                    if guard is not None
                    else None,
                )
        finally:
            if guard is not None:
                guard.disarm()
        if self.finish is not None and not exchange.finished:
            await self.finish(exchange)  # a hook or a failure policy answered before the upstream
        assert answer is not None  # with the upstream step, the walk always ends in a response
        return answer

    async def run_response(
        self, request: Request, response: Response, exchange: Exchange
    ) -> Response:
        """RESPONSE hooks over the upstream's response; returns what the client gets."""
        if not self.chain.response:
            return response
        deadline = exchange.deadline
        answer = await walk(self, self.chain.response, request, deadline, exchange, response)
        return answer if answer is not None else response

    async def aclose(self) -> None:
        if self.driver is not None:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
                await self.driver.aclose()

    def _series(self, hook: HookRef) -> HookSeries:
        series = self._hook_series.get(hook)
        if series is None:
            assert self.metrics is not None
            builtin = hook is AUTHENTICATE_STEP or hook is BUILTINS_STEP
            driver = "builtin" if builtin else self.api.middleware.driver
            series = self.metrics.hook_series(self.api.api_id, hook.stage.value, hook.label, driver)
            self._hook_series[hook] = series
        return series

    def hook_timed_out(self, hook: HookRef, elapsed: float) -> Response:
        """``hook`` (failing closed) ran past its deadline: its policy's answer, counted."""
        answer = self._fail(hook, FailureKind.TIMEOUT, None, elapsed)
        assert answer is not None  # guarded walks have fail-closed hooks only
        return answer

    def _fail(
        self,
        hook: HookRef,
        kind: FailureKind,
        error: Exception | None,
        elapsed: float | None = None,
    ) -> Response | None:
        self._failures[kind] += 1
        label = hook.label
        self._failures_by_hook[label] = self._failures_by_hook.get(label, 0) + 1
        answer = failure_response(kind, hook.stage, hook.failure_mode)
        if answer is None:
            self._failed_open += 1
        if self.metrics is not None:
            self._series(hook).failed(kind.value, elapsed, failed_open=answer is None)
        # Logged here only: one line with the exception's type and message (its traceback at
        # debug), repeats summarised per API, hook and cause.
        policy = "open" if answer is None else "closed"
        _failure_log.warning(
            (self.api.api_id, label, kind, type(error)),
            f"hook failed ({kind.value}): api={self.api.api_id} stage={hook.stage.value} "
            f"hook={label} policy={policy}",
            error,
        )
        return answer
