"""THE walk: one request through its API's steps, under the request's one deadline scope.

:func:`walk` is the whole request walk for the gateway (``walk.ApiRuntime.run``), for every API,
with or without a pipeline (``runner.ApiPipeline``): the request steps, the finisher, the
upstream call (a step like the others, its deadline moved back to the request's) and the RESPONSE
hooks, all in that one scope, so a request pays for one cancel scope whatever its API has, and
the request's deadline passing is answered in one place. Built-ins are steps of the same walk,
with or without plugin hooks. One shortcut: a pipeline without any hook, whose connection keeps
the request's deadline, walks its built-in steps in :func:`walk_builtins_guarded` (the same
steps and answers, none of the per-hook work).

Cost model (measured, see docs/decisions.md, "Hook pipeline"): a cancel scope costs a few µs, a
nursery tens of µs, moving a deadline ~2 µs. So the walk runs *all* its steps inside ONE cancel
scope whose deadline is moved to ``min(hook.timeout, the request's deadline)`` for each hook that
has to wait (see :func:`_await_with_deadline`); a new scope is opened only after a hook timed out
under fail-open (a cancelled scope cannot be reused). The walk starts no tasks of its own: hooks
run inline in the request's task, so anything a hook starts lives in a nursery the hook itself
owns, inside our scope, and is cancelled with it. A cancel from outside (client gone) propagates
untouched; it is never logged or counted as a failure.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._apidef.model import FailureMode, PluginRef, Stage
from .._error_body import error_response
from .._exchange import Request, Response
from .._proto.writer import check_request, check_response
from ..errors import ClientProtocolError, GatewayError
from ..hooks import HookContext, HookRef, Respond
from .exchange import Exchange
from .policy import (
    NO_SESSION_MESSAGE,
    NO_SESSION_STATUS,
    FailureKind,
    classify,
    request_timed_out,
)

if TYPE_CHECKING:
    from .._deadlines import DeadlineGuard
    from .runner import ApiPipeline
    from .walk import ApiRuntime, Upstream

__all__ = ["AUTHENTICATE_STEP", "BUILTINS_STEP", "walk", "walk_builtins_guarded"]

T = TypeVar("T")


class GuardedWalk:
    """Stands for the walk's cancel scope when the request's connection keeps its deadline
    (``request.deadline_guard``; :meth:`ApiPipeline.run` arms it for the whole walk), on
    pipelines that need no scope (``ApiPipeline.guardable``): built-in steps only, or native
    Python hooks that all fail closed.

    The built-in steps, the finisher and the upstream call run under the request's deadline,
    which the guard holds: if it passes, the connection answers the request's 504, as the walk
    would, and closes. A hook that has to wait gets its own deadline on the guard, with its
    timeout answer (the failure policy's), for as long as it runs (:func:`_await_with_deadline`):
    a hook that fails closed ends the request with that answer anyway. Such requests then open
    no Trio scope at all (a scope costs ~4 µs: ``bench/scope_cost.py``).
    """

    __slots__ = ("answer", "deadline", "guard", "pipeline")
    #: Never cancelled itself: the connection's scope is, and the whole request with it.
    cancelled_caught = False

    def __init__(
        self,
        guard: DeadlineGuard,
        deadline: float,
        answer: Callable[[], Response],
        pipeline: ApiPipeline,
    ) -> None:
        self.guard = guard
        self.deadline = deadline
        self.answer = answer
        self.pipeline = pipeline

    def __enter__(self) -> GuardedWalk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


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


async def walk(
    pipeline: ApiPipeline | None,
    hooks: tuple[HookRef, ...],
    request: Request,
    deadline: float,
    exchange: Exchange | None,
    response: Response | None = None,
    upstream: Upstream | None = None,
    runtime: ApiRuntime | None = None,
    host_header: bytes | None = None,
    guarded: GuardedWalk | None = None,
) -> Response | None:
    """Walk ``hooks`` in order under the request's ``deadline`` (absolute): THE walk, for every
    API. Returns a response that ends the walk, or None (without ``upstream``: every step passed).

    With ``upstream`` (the gateway's :class:`~.walk.Upstream`; ``runtime``, the API's): once every
    request step has passed, the finisher (if any) and the upstream call run in the same scope
    under the request's deadline, then the RESPONSE hooks over the upstream's response, and the
    walk returns what the client gets. An API without a pipeline (``pipeline`` and ``exchange``
    None, no hooks) walks the upstream step alone, in the same scope.

    This is the only place a request's deadline scope is opened, and the only place that answers
    the request's own deadline passing (:func:`request_timed_out`, the one 504 for it): in the
    upstream call, or in a built-in step (which has no deadline of its own). The exception is
    a request whose connection keeps its deadline (``request.deadline_guard``) on the plain
    proxy path (no pipeline) or on a pipeline that needs no scope (``guarded``, see
    :class:`GuardedWalk`): there the connection answers the same 504 when it passes.
    A hook's own timeout is its failure policy's (``ApiPipeline._fail``). A new scope is opened
    only after a hook timed out under fail-open (a cancelled scope cannot be reused).
    """
    if pipeline is None and upstream is not None and request.deadline_guard is not None:
        # The plain proxy path, from a connection that keeps the request's deadline for us
        # (``_deadlines``): no scope. If the deadline passes during the call, the connection's
        # scope is cancelled and the connection answers ``runtime.timed_out()`` (the same 504).
        guard = request.deadline_guard
        guard.arm(deadline, runtime.timed_out)  # type: ignore[union-attr]
        try:
            return await upstream.call(request, runtime, host_header, None)  # type: ignore[arg-type]
        except ClientProtocolError:
            raise  # the client's answer (413, a broken body), not the upstream's
        except GatewayError as exc:
            return upstream.failed(runtime, exc)  # type: ignore[arg-type]
        finally:
            guard.disarm()
    i, n = 0, len(hooks)
    if pipeline is not None:
        # What walking hooks needs (now, or RESPONSE hooks after the upstream). An API without a
        # pipeline has no hooks and skips it: its walk is the upstream step alone, kept as cheap
        # as the scope around it.
        driver = pipeline.driver
        # The clock's own method: trio.current_time() costs two more calls, twice per hook.
        current_time = trio.lowlevel.current_clock().current_time
        started = 0.0
        hooked = pipeline
        # Hooks come with an exchange (unchecked: an assert per step costs more than it tells).
        state: Exchange = exchange  # type: ignore[assignment]
        # Nothing to check without hooks (and no copy of the headers to pay for).
        checked = _known_good(request, response) if n else ()
    # Set where a step fails (a ``break`` out of the scope), or after the scope when it was
    # cancelled; declared only: the upstream step alone never needs them.
    failure: FailureKind
    error: Exception | None
    while True:
        # The scope starts at the request's deadline; a step that waits moves it to its own.
        with guarded if guarded is not None else trio.CancelScope(deadline=deadline) as scope:
            while True:
                if i == n:
                    if upstream is None:
                        return None
                    if response is not None:
                        return response  # RESPONSE hooks done: what the client gets
                    # The upstream step: under the request's deadline only (a step that waited
                    # moved it; with no steps, none did, and reading it back costs).
                    if n and scope.deadline != deadline:
                        scope.deadline = deadline
                    if exchange is not None and hooked.finish is not None:
                        exchange.finished = True
                        await hooked.finish(exchange)
                    try:
                        # ``runtime`` comes with ``upstream`` (unchecked: the hot path).
                        response = await upstream.call(
                            request,
                            runtime,  # type: ignore[arg-type]
                            host_header,
                            exchange,
                        )
                    except ClientProtocolError:
                        raise  # the client's answer (413, a broken body), not the upstream's
                    except GatewayError as exc:
                        return upstream.failed(runtime, exc)  # type: ignore[arg-type]
                    if pipeline is None:
                        return response
                    hooks = pipeline.chain.response
                    if not hooks or response.tunnel is not None:
                        return response
                    i, n = 0, len(hooks)
                    continue
                hook = hooks[i]
                # Read per step (not only for hooks with a timeout): /metrics times them all.
                started = current_time()
                step_deadline = started + hook.timeout
                if step_deadline > deadline:
                    step_deadline = deadline
                if hook is AUTHENTICATE_STEP:
                    assert hooked.authenticate is not None
                    try:
                        # Under the guard a built-in keeps the request's deadline as it is:
                        # nothing to move, so no driving wrapper (here and for the built-ins).
                        if guarded is not None:
                            answer = await hooked.authenticate(request, state)
                        else:
                            answer = await _await_with_deadline(
                                hooked.authenticate(request, state), scope, step_deadline
                            )
                    except Exception as exc:
                        failure, error = classify(exc), exc
                        break
                    if answer is not None:
                        return answer
                    i += 1
                    if state.session is not None:
                        i += len(hooked.chain.auth)  # authenticated: the AUTH hook is skipped
                    continue
                if hook is BUILTINS_STEP:
                    try:
                        for builtin in hooked.builtins:
                            if guarded is not None:
                                answer = await builtin(request, state)
                            else:
                                answer = await _await_with_deadline(
                                    builtin(request, state), scope, step_deadline
                                )
                            if answer is not None:
                                return answer
                    except Exception as exc:
                        failure, error = classify(exc), exc
                        break
                    i += 1
                    continue
                ctx = HookContext._create(
                    stage=hook.stage,
                    api=hooked._info,
                    hook=hook,
                    request=request,
                    session=state.session,
                    session_key=state.session_key,
                    response=response,
                )
                assert driver is not None  # a chain with hooks always has a driver
                hooked._calls += 1
                try:
                    decision = await _await_with_deadline(
                        driver.call(hook, ctx), scope, step_deadline, hook, started
                    )
                except ClientProtocolError:
                    # The client's body is over the hooks' limit (413) or broken: the
                    # client's answer, not a hook failure (fail open would forward a body
                    # already partly read).
                    raise
                except Exception as exc:  # Cancelled is a BaseException: it passes
                    failure, error = classify(exc), exc
                    break
                except trio.Cancelled:
                    if hooked.metrics is not None and current_time() < step_deadline:
                        hooked._series(hook).failed("cancelled", None, failed_open=False)
                    raise
                # A hook that never checkpoints cannot be interrupted; one that ran past its
                # deadline (or swallowed our cancel, which only its deadline sends) still
                # gets the timeout answer. (One clock read: also the hook's run time.)
                ended = current_time()
                if ended >= step_deadline:
                    failure, error = FailureKind.TIMEOUT, None
                    break
                if ctx._meta_data_changed:
                    state.meta_data_changed = True
                # Nothing a hook set reaches a wire unchecked: a value that would split or
                # corrupt a head is this hook's error (500 Middleware error), never sent.
                try:
                    checked = _check_fields(hook.stage, request, response, checked)
                    answer = _checked_answer(decision) if isinstance(decision, Respond) else None
                except Exception as exc:
                    failure, error = FailureKind.ERROR, exc
                    break
                elapsed = ended - started
                _add_stage_time(request, hook.stage, elapsed)
                if hooked.metrics is not None:
                    hooked._series(hook).ok(elapsed)
                if answer is not None:
                    hooked._responded += 1
                    # (An answer comes only from a Respond.)
                    as_upstream: bool = decision.as_upstream  # type: ignore[union-attr]
                    if not as_upstream or upstream is None or response is not None:
                        return answer
                    # Sent as the upstream's answer (a virtual endpoint's, as in Tyk): the
                    # gateway's response headers, the finisher, then the RESPONSE hooks.
                    if state.response_headers:
                        answer.headers.extend(state.response_headers)
                    if hooked.finish is not None:
                        state.finished = True
                        await hooked.finish(state)
                    response = answer
                    hooks = hooked.chain.response
                    i, n = 0, len(hooks)
                    continue
                if hook.stage is Stage.AUTH:
                    if ctx._session is None:
                        return error_response(NO_SESSION_STATUS, NO_SESSION_MESSAGE)
                    state.session, state.session_key = ctx._session, ctx._session_key
                    state.session_created = True
                i += 1
        # Out of the scope without an answer. With every step passed (i == n), only the upstream
        # step can have been under way, and only our scope cancelled (an outer cancel propagates).
        if i == n or (
            scope.cancelled_caught and upstream is not None and hooks[i].timeout == math.inf
        ):
            # The request's deadline passed: in the upstream call, or in built-in auth or the
            # built-ins, which have no deadline of their own. The same 504, logged as the
            # request's timeout.
            assert runtime is not None
            return request_timed_out(runtime.api.api_id, runtime.timeout)
        assert pipeline is not None  # without hooks, only the upstream step ends the scope
        hook = hooks[i]
        if scope.cancelled_caught:
            failure, error = FailureKind.TIMEOUT, None
        # (Every other way out of the scope set ``failure`` with its ``break``, or returned.)
        elapsed = current_time() - started
        _add_stage_time(request, hook.stage, elapsed)
        answer = pipeline._fail(hook, failure, error, elapsed)
        if answer is not None:
            return answer
        i += 1  # fail open: skip exactly this hook


async def walk_builtins_guarded(
    pipeline: ApiPipeline,
    request: Request,
    exchange: Exchange,
    upstream: Upstream,
    runtime: ApiRuntime,
) -> Response:
    """:func:`walk` for a pipeline of built-in steps only (``ApiPipeline.builtins_only``: auth,
    keys, limits; no hooks, so no RESPONSE hooks either) whose deadline the request's connection
    keeps (``request.deadline_guard``, armed by :meth:`ApiPipeline.run`).

    The same steps and answers as the general walk under a :class:`GuardedWalk`: built-in auth,
    the built-ins, the finisher, the upstream call, each under the request's deadline as the guard
    holds it; a step that raises gets its failure policy's answer (``ApiPipeline._fail``). What it
    leaves out is what only hooks need: a clock read and a deadline per step, the copy of the
    request's fields to check hooks' edits against, the step loop (measured: ~190 bytecodes of a
    keyed request, ``BENCH_TOKEN=1 bench/opcount_keyless.sh``). The clock is read once, for the
    run time a failing step reports (from the walk's start).
    """
    started = trio.lowlevel.current_clock().current_time()
    step = AUTHENTICATE_STEP
    try:
        if pipeline.authenticate is not None:
            answer = await pipeline.authenticate(request, exchange)
            if answer is not None:
                return answer
        step = BUILTINS_STEP
        for builtin in pipeline.builtins:
            answer = await builtin(request, exchange)
            if answer is not None:
                return answer
    except Exception as exc:  # Cancelled is a BaseException: it passes
        elapsed = trio.lowlevel.current_clock().current_time() - started
        _add_stage_time(request, step.stage, elapsed)
        failed = pipeline._fail(step, classify(exc), exc, elapsed)
        assert failed is not None  # built-in steps fail closed
        return failed
    if pipeline.finish is not None:
        exchange.finished = True
        await pipeline.finish(exchange)
    try:
        return await upstream.call(request, runtime, exchange.host_header, exchange)
    except ClientProtocolError:
        raise  # the client's answer (413, a broken body), not the upstream's
    except GatewayError as exc:
        return upstream.failed(runtime, exc)


#: The fields of a request (method, path, query, headers) or response (status, headers) known to
#: be good; the headers a copy, as hooks change the list in place.
_Fields = tuple[object, ...]


def _add_stage_time(request: Request, stage: Stage, seconds: float) -> None:
    """Add a hook's run time to its stage's total on the request (the access log's
    ``stages_ms``). Only requests that run hooks pay for it."""
    times = request.stage_times
    if times is None:
        request.stage_times = {stage: seconds}
    else:
        times[stage] = times.get(stage, 0.0) + seconds


def _known_good(request: Request, response: Response | None) -> _Fields:
    """The fields as a walk begins: the parser's (llhttp refuses every method, target, name and
    value the writer would, so a hook that leaves them as they are has set nothing to check),
    or what the gateway made of them. Whatever the source, the writer checks the head it sends."""
    if response is not None:
        return (response.status, response.headers[:])
    return (request.method, request.path, request.query, request.headers[:])


def _check_fields(
    stage: Stage, request: Request, response: Response | None, checked: _Fields
) -> _Fields:
    """Raise :class:`InvalidHead` if a hook set a value on the request (or the response) that
    the writer would refuse; returns the fields now known good.

    Only what a hook changed is checked: fields equal to ``checked`` (as the walk began, or as
    the check after an earlier hook passed them) cost a comparison, by identity first, element by
    element. A changed field list is checked whole (one pass in C for all its values).
    """
    if response is not None:
        fields: _Fields = (response.status, response.headers)
        if fields == checked:
            return checked
        check_response(response.status, response.headers)
        return (response.status, response.headers[:])
    if stage is Stage.RESPONSE:
        return checked  # the request is read-only there
    fields = (request.method, request.path, request.query, request.headers)
    if fields == checked:
        return checked
    check_request(request.method, request.path, request.query, request.headers)
    return (request.method, request.path, request.query, request.headers[:])


def _checked_answer(decision: Respond) -> Response:
    """The hook's answer; raises :class:`InvalidHead` if the writer would refuse it."""
    answer = decision.to_response()
    check_response(answer.status, answer.headers)
    return answer


@types.coroutine
def _await_with_deadline(
    coro: Coroutine[Any, Any, T],
    scope: trio.CancelScope | GuardedWalk,
    deadline: float,
    hook: HookRef | None = None,
    started: float = 0.0,
) -> Generator[Any, Any, T]:
    """``await coro`` in ``scope``, moving the scope's deadline to ``deadline`` only if ``coro``
    has to wait.

    Why: moving a Trio deadline costs ~2 µs, and most hooks (header edits, checks) finish without
    ever waiting. A step that does not wait cannot be cancelled anyway (Trio cancels only at a
    checkpoint, and none runs before this task yields), and the walk checks each step's run
    time when it returns. So the first step runs under whatever deadline the scope had; before
    the first yield to Trio the scope gets this step's own, and from there on this drives ``coro``
    exactly as ``await`` would. (The deadline is moved, never a scope entered here: a hook may
    open scopes of its own before its first yield, which a scope entered after it would corrupt.)

    In a :class:`GuardedWalk` the deadline moves on the connection's guard instead: for a
    ``hook`` (which started at ``started``) to its own, with its timeout answer, and back to the
    request's when it returns; a built-in step stays under the request's.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    if type(scope) is GuardedWalk:
        if hook is not None:
            guard = scope.guard
            guard.rearm(deadline, _hook_timeout_answer(scope.pipeline, hook, deadline - started))
            try:
                result = yield from _drive(coro, yielded)
            finally:
                guard.rearm(scope.deadline, scope.answer)
            return result
    elif scope.deadline != deadline:  # built-in steps keep the request's deadline: no move
        scope.deadline = deadline
    result = yield from _drive(coro, yielded)
    return result


def _hook_timeout_answer(
    pipeline: ApiPipeline, hook: HookRef, elapsed: float
) -> Callable[[], Response]:
    """What the connection answers if ``hook`` is still running at its deadline: its failure
    policy's timeout answer (counted and logged as that hook's timeout)."""
    return lambda: pipeline.hook_timed_out(hook, elapsed)


def _drive(coro: Coroutine[Any, Any, T], yielded: Any) -> Generator[Any, Any, T]:
    """Go on driving ``coro``, which has just yielded ``yielded``, exactly as ``await`` would."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # Cancelled included: handed to coro, which re-raises it
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                result: T = stop.value
                return result
            continue
        try:
            yielded = coro.send(sent)
        except StopIteration as stop:
            result = stop.value
            return result
