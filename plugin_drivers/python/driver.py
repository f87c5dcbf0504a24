"""The ``python`` driver: native hooks, ``async def hook(ctx)`` or ``def hook(ctx)``.

* async hooks run inline in the request's task, under the pipeline's deadline scope. Each step of
  the coroutine (the code between two awaits) is timed with a wall clock; a step longer than
  ``blocking_threshold`` blocked the event loop and is reported (log + counter, with the hook name).
* sync hooks run in a worker thread under a per-plugin ``trio.CapacityLimiter`` of
  ``hook.thread_limit`` tokens (the API's ``thread_limit``, else the gateway's
  ``hooks.thread_limit``). When every token is borrowed a call waits for one within its hook's
  deadline; a deadline passing in that wait is a *timeout* (504 by default), like one passing in
  the thread. A thread cannot be interrupted: at the deadline the request gets its policy answer
  and the thread is abandoned; its token stays borrowed until it returns (Trio releases it then).
  The thread works on a detached copy of the context, merged back only when it finishes in time,
  so an abandoned thread never writes into a live request.

Tyk-style ``@Hook`` objects (``from tyk.decorators import *``) will be told apart by the object
itself in :func:`_plugin_form`; until they are supported they are refused at load time.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import types
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any

import attrs
import trio

from trio_gateway.drivers import (
    CONTINUE,
    DEFAULT_BLOCKING_THRESHOLD,
    ApiDefinition,
    Continue,
    Decision,
    DriverSettings,
    HookContext,
    HookError,
    HookRef,
    PluginDriverError,
    Respond,
    Stage,
)

from ..threads import run_limited
from .loader import (
    LoadFailure,
    check_native_signature,
    get_function,
    load_dotted,
    load_file_module,
    resolve_path,
)
from .namespace import ModuleNamespace

log = logging.getLogger("trio_gateway.plugins.python")


@attrs.frozen(kw_only=True)
class PythonDriverStatistics:
    calls: int
    #: Async steps that held the event loop longer than the threshold, per hook label.
    blocking_reports: dict[str, int]
    #: Threads abandoned at their deadline (or by a cancel) since load.
    threads_abandoned: int
    #: Worker threads currently alive (running or abandoned), over all plugins.
    threads_alive: int
    #: Calls that found every thread of their plugin busy and waited for one.
    thread_waits: int
    #: Per plugin function (keyed by the label of the first hook that uses it; hooks sharing a
    #: function share its threads): the same two counts, for ``/metrics``.
    threads_by_plugin: dict[str, PluginThreads]


@attrs.frozen(kw_only=True)
class PluginThreads:
    """One plugin function's worker threads."""

    abandoned: int
    alive: int


@attrs.define(eq=False)
class _Loaded:
    fn: Callable[[HookContext], Any]
    is_async: bool
    limiter: trio.CapacityLimiter
    label: str
    #: Threads of this function abandoned at their deadline (or by a cancel) since load.
    abandoned: int = 0

    def count_abandoned(self) -> None:
        self.abandoned += 1


def create(settings: DriverSettings) -> PythonDriver:
    """The driver factory (``plugin_drivers.DRIVERS``)."""
    return PythonDriver(blocking_threshold=settings.blocking_threshold)


@attrs.define(eq=False)
class PythonDriver:
    """Runs native Python hooks. One instance per API definition."""

    #: Seconds one async step may hold the event loop before it is reported
    #: (``hooks.blocking_threshold``).
    blocking_threshold: float = DEFAULT_BLOCKING_THRESHOLD
    #: The clock blocking is measured with (wall time; tests pass a fake).
    wall_clock: Callable[[], float] = time.perf_counter

    _loaded: dict[HookRef, _Loaded] = attrs.field(init=False, factory=dict)
    #: Each plugin function once (hooks may share one); kept after aclose for the statistics.
    _plugins: list[_Loaded] = attrs.field(init=False, factory=list)
    _calls: int = attrs.field(init=False, default=0)
    _blocking: dict[str, int] = attrs.field(init=False, factory=dict)
    _thread_waits: int = attrs.field(init=False, default=0)
    _api_id: str = attrs.field(init=False, default="")
    #: Plugin folder -> its module namespace for this load (released by aclose).
    _namespaces: dict[str, ModuleNamespace] = attrs.field(init=False, factory=dict)

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        self._api_id = api.api_id
        # One module object per file and one limiter per function: several hooks may share them.
        modules: dict[str, types.ModuleType] = {}
        by_function: dict[int, _Loaded] = {}
        for hook in hooks:
            try:
                # Abandoned when the load's time bound passes (the import may hang).
                fn = await trio.to_thread.run_sync(
                    self._find, api, hook, modules, self._namespaces, abandon_on_cancel=True
                )
                form = _plugin_form(fn)
                if form != "native":
                    raise LoadFailure(f"{form} plugins are not supported yet by the python driver")
                check_native_signature(fn, hook.name)
            except LoadFailure as exc:
                raise PluginDriverError(f"API {api.api_id!r}: hook {hook.label}: {exc}") from exc
            loaded = by_function.get(id(fn))
            if loaded is None:
                loaded = _Loaded(
                    fn=fn,
                    is_async=_is_async(fn),
                    limiter=trio.CapacityLimiter(hook.thread_limit),
                    label=hook.label,
                )
                by_function[id(fn)] = loaded
                self._plugins.append(loaded)
            self._loaded[hook] = loaded

    @staticmethod
    def _find(
        api: ApiDefinition,
        hook: HookRef,
        modules: dict[str, types.ModuleType],
        namespaces: dict[str, ModuleNamespace],
    ) -> Callable[..., Any]:
        plugin = hook.plugin
        if plugin.path.endswith(".py"):
            filename = resolve_path(plugin.path, api.source)
            module = modules.get(filename)
            if module is None:
                module = modules[filename] = load_file_module(filename, namespaces)
            if not plugin.name:
                raise LoadFailure(f"no function name given for {os.path.basename(filename)}")
            return get_function(module, plugin.name, os.path.basename(filename))
        if plugin.path:
            raise LoadFailure(f"path {plugin.path!r} is not a .py file")
        return load_dotted(plugin.name)

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        loaded = self._loaded[hook]
        self._calls += 1
        if loaded.is_async:
            # The first step inline: most hooks finish in it, without the step-timing driver.
            coro = loaded.fn(ctx)
            clock = self.wall_clock
            start = clock()
            try:
                first = coro.send(None)
            except StopIteration as stop:
                result = stop.value
                first = _FINISHED
            finally:
                elapsed = clock() - start
                if elapsed > self.blocking_threshold:
                    self._report_blocking(hook, elapsed)
            if first is not _FINISHED:
                result = await _timed_steps(coro, self, hook, first)
        else:
            result = await self._call_in_thread(loaded, hook, ctx)
        return _decision(result, hook)

    async def _call_in_thread(self, loaded: _Loaded, hook: HookRef, ctx: HookContext) -> Any:
        request = ctx.raw_request
        if ctx.stage is not Stage.RESPONSE and request.body_bytes is None:
            # A thread cannot await the client's body: give it the whole body up front.
            await request.read_body()
        fork = ctx._fork()
        limiter = loaded.limiter
        if limiter.available_tokens < 1:
            self._thread_waits += 1
        # The token is taken before the thread starts (``threads.run_limited``), so that a
        # deadline passing while we wait for it (nothing started, nothing to abandon) is told
        # apart from one passing while the thread runs (the thread is abandoned, keeps its token).
        result = await run_limited(limiter, loaded.fn, fork, on_abandon=loaded.count_abandoned)
        ctx._merge(fork)
        return result

    def _report_blocking(self, hook: HookRef, seconds: float) -> None:
        label = hook.label
        self._blocking[label] = self._blocking.get(label, 0) + 1
        log.warning(
            "async hook blocked the event loop for %.3f s: api=%s hook=%s "
            "(run blocking code in a plain def hook, which gets a thread)",
            seconds,
            self._api_id,
            label,
        )

    def statistics(self) -> PythonDriverStatistics:
        by_plugin = {
            loaded.label: PluginThreads(
                abandoned=loaded.abandoned, alive=loaded.limiter.borrowed_tokens
            )
            for loaded in self._plugins
            if not loaded.is_async
        }
        return PythonDriverStatistics(
            calls=self._calls,
            blocking_reports=dict(self._blocking),
            threads_abandoned=sum(plugin.abandoned for plugin in by_plugin.values()),
            threads_alive=sum(plugin.alive for plugin in by_plugin.values()),
            thread_waits=self._thread_waits,
            threads_by_plugin=by_plugin,
        )

    async def aclose(self) -> None:
        # Abandoned threads cannot be stopped; they end on their own and release their tokens.
        self._loaded.clear()
        # The plugin modules go from sys.modules (freed once no running call refers to them).
        for namespace in self._namespaces.values():
            namespace.release()
        self._namespaces.clear()


def _plugin_form(fn: Callable[..., Any]) -> str:
    """ "native" for a plain function; Tyk's ``@Hook`` decorator wraps functions in an object of
    a class named ``Hook``, which is how the Tyk-style form will be recognised."""
    if type(fn).__name__ == "Hook" and hasattr(fn, "f"):
        return "Tyk-style @Hook"
    return "native"


def _is_async(fn: Callable[..., Any]) -> bool:
    # An object with an async __call__ counts as async too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callability
    )


def _decision(result: Any, hook: HookRef) -> Decision:
    if result is None or isinstance(result, Continue):
        return CONTINUE
    if isinstance(result, Respond):
        return result
    # An invalid return is a plugin error (500 by policy); the type name is logged, not sent.
    raise HookError(
        f"hook {hook.label} returned {type(result).__name__}; expected None, Continue or Respond"
    )


#: Marks a hook coroutine that finished in its first step.
_FINISHED: Any = object()


@types.coroutine
def _timed_steps(
    coro: Coroutine[Any, Any, Any], driver: PythonDriver, hook: HookRef, first: Any
) -> Generator[Any, Any, Any]:
    """Go on driving ``coro``, whose first step yielded ``first``, exactly as ``await coro``
    would, timing each further step on the wall clock."""
    clock = driver.wall_clock
    limit = driver.blocking_threshold
    send: Any = None
    throw: BaseException | None = None
    try:
        send = yield first
    except GeneratorExit:
        coro.close()
        raise
    except BaseException as exc:  # handed to the hook, which re-raises Cancelled itself
        throw = exc
    while True:
        start = clock()
        try:
            if throw is not None:
                yielded = coro.throw(throw)
            else:
                yielded = coro.send(send)
        except StopIteration as stop:
            return stop.value
        finally:
            elapsed = clock() - start
            if elapsed > limit:
                driver._report_blocking(hook, elapsed)
        try:
            send = yield yielded
            throw = None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # handed to the hook, which re-raises Cancelled itself
            send, throw = None, exc
