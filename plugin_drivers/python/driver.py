"""The ``python`` driver: native hooks, ``async def hook(ctx)`` or ``def hook(ctx)``, and Tyk's.

* async hooks run inline in the request's task, under the pipeline's deadline scope. Each step of
  the coroutine (the code between two awaits) is timed with a wall clock; a step longer than
  ``blocking_threshold`` blocked the event loop and is reported (log + counter, with the hook name).
* sync hooks run in a worker thread (``plugin_drivers.threads``) under a per-plugin
  ``trio.CapacityLimiter`` of ``hook.thread_limit`` tokens (the API's ``thread_limit``, else the
  gateway's ``hooks.thread_limit``). When every token is borrowed a call waits for one within its
  hook's deadline; a deadline passing in that wait is a *timeout* (504 by default), like one
  passing in the thread. A thread cannot be interrupted: at the deadline the request gets its
  policy answer and the thread is abandoned; its token stays borrowed until it returns (released
  then). The thread works on a detached copy of the context, merged back only when it finishes in
  time, so an abandoned thread never writes into a live request.

Tyk-style ``@Hook`` objects (``from tyk.decorators import *``) are told apart by the object
itself (:mod:`.tyk_style`). They run in the same worker threads under the same limiter and
deadlines, on the call's own coprocess ``Object`` instead of a forked context; the reply is
applied with the translation the gRPC driver uses (``plugin_drivers/coprocess``). Their modules
see Tyk's ``tyk``, ``gateway`` and ``coprocess_*_pb2`` modules, and their ``print`` goes to the
gateway's log (:mod:`.tyk_api`), through their folder's module namespace.
"""

from __future__ import annotations

import functools
import inspect
import logging
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
    ApiInfo,
    Continue,
    Decision,
    DriverSettings,
    DriverStore,
    HookContext,
    HookError,
    HookRef,
    PluginDriverError,
    Respond,
    Stage,
)

from ..threads import run_in_worker_thread
from .loader import (
    LoadFailure,
    check_native_signature,
    find_hook,
    load_dotted,
    load_file_module,
    plugin_file,
    resolve_path,
)
from .namespace import ModuleNamespace
from .tyk_api import PluginServices, plugin_builtins, provided_modules
from .tyk_api.tyk.decorators import HANDLER_TYPES

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
    #: A Tyk-style ``@Hook``: how many positional parameters Tyk calls it with (0: native).
    tyk_arity: int = 0

    def count_abandoned(self) -> None:
        self.abandoned += 1


def create(settings: DriverSettings) -> PythonDriver:
    """The driver factory (``plugin_drivers.DRIVERS``)."""
    return PythonDriver(blocking_threshold=settings.blocking_threshold, store=settings.store)


@attrs.define(eq=False)
class PythonDriver:
    """Runs native Python hooks. One instance per API definition."""

    #: Seconds one async step may hold the event loop before it is reported
    #: (``hooks.blocking_threshold``).
    blocking_threshold: float = DEFAULT_BLOCKING_THRESHOLD
    #: The clock blocking is measured with (wall time; tests pass a fake).
    wall_clock: Callable[[], float] = time.perf_counter
    #: The gateway's store, for Tyk-style plugins' ``store_data`` / ``get_data``.
    store: DriverStore | None = None

    _loaded: dict[HookRef, _Loaded] = attrs.field(init=False, factory=dict)
    #: Each plugin function once (hooks may share one); kept after aclose for the statistics.
    _plugins: list[_Loaded] = attrs.field(init=False, factory=list)
    _calls: int = attrs.field(init=False, default=0)
    _blocking: dict[str, int] = attrs.field(init=False, factory=dict)
    _thread_waits: int = attrs.field(init=False, default=0)
    _api_id: str = attrs.field(init=False, default="")
    #: Plugin folder -> its module namespace for this load (released by aclose).
    _namespaces: dict[str, ModuleNamespace] = attrs.field(init=False, factory=dict)
    #: Tyk's ``spec`` map for Tyk-style calls, for the API it was made from (made once).
    _spec: dict[str, str] = attrs.field(init=False, factory=dict)
    _spec_api: ApiInfo | None = attrs.field(init=False, default=None)
    _bundle: str = attrs.field(init=False, default="")

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        self._api_id = api.api_id
        self._bundle = api.bundle
        services = PluginServices(
            api_id=api.api_id, store=self.store, trio_token=trio.lowlevel.current_trio_token()
        )
        # What a plugin folder's modules see: Tyk's modules, and a print that logs.
        make_namespace = functools.partial(
            ModuleNamespace,
            provided=provided_modules(services),
            builtins_overrides=plugin_builtins(services),
        )
        # One module object per file and one limiter per function: several hooks may share them.
        modules: dict[str, types.ModuleType] = {}
        by_function: dict[int, _Loaded] = {}
        for hook in hooks:
            try:
                # Abandoned when the load's time bound passes (the import may hang).
                fn = await trio.to_thread.run_sync(
                    functools.partial(
                        self._find, api, hook, modules, self._namespaces, make_namespace
                    ),
                    abandon_on_cancel=True,
                )
                arity = 0
                if isinstance(fn, HANDLER_TYPES):
                    # Only now the coprocess translation (and protobuf) is loaded.
                    from . import tyk_style

                    arity = tyk_style.tyk_arity(fn)
                else:
                    check_native_signature(fn, hook.name)
            except LoadFailure as exc:
                raise PluginDriverError(f"API {api.api_id!r}: hook {hook.label}: {exc}") from exc
            loaded = by_function.get(id(fn))
            if loaded is None:
                loaded = _Loaded(
                    fn=fn,
                    is_async=not arity and _is_async(fn),
                    limiter=trio.CapacityLimiter(hook.thread_limit),
                    label=hook.label,
                    tyk_arity=arity,
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
        make_namespace: Callable[[str], ModuleNamespace],
    ) -> Callable[..., Any]:
        plugin = hook.plugin
        if plugin.path:
            # A .py file, or a folder with middleware.py (a bundle's layout, without a bundle).
            filename = plugin_file(resolve_path(plugin.path, api.source))
            module = modules.get(filename)
            if module is None:
                module = modules[filename] = load_file_module(filename, namespaces, make_namespace)
            if not plugin.name:
                raise LoadFailure(f"no function name given for {filename}")
            return find_hook(module, plugin.name, filename)
        return load_dotted(plugin.name)

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        loaded = self._loaded[hook]
        self._calls += 1
        if loaded.tyk_arity:
            return await self._call_tyk_style(loaded, hook, ctx)
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

    async def _call_tyk_style(self, loaded: _Loaded, hook: HookRef, ctx: HookContext) -> Decision:
        from . import tyk_style  # loaded with the first Tyk-style hook (load)

        if ctx.api is not self._spec_api:
            self._spec = tyk_style.spec_map(ctx.api, self._bundle)
            self._spec_api = ctx.api
        obj = await tyk_style.call_object(hook, ctx)
        await self._run_in_thread(
            loaded,
            functools.partial(
                tyk_style.dispatch, loaded.fn, loaded.tyk_arity, obj, dict(self._spec), hook.label
            ),
        )
        return tyk_style.apply(obj, ctx, hook.label)

    async def _call_in_thread(self, loaded: _Loaded, hook: HookRef, ctx: HookContext) -> Any:
        request = ctx.raw_request
        if ctx.stage is not Stage.RESPONSE and request.body_bytes is None:
            # A thread cannot await the client's body: give it the whole body up front.
            await request.read_body()
        fork = ctx._fork()
        result = await self._run_in_thread(loaded, functools.partial(loaded.fn, fork))
        ctx._merge(fork)
        return result

    async def _run_in_thread(self, loaded: _Loaded, fn: Callable[[], Any]) -> Any:
        """``fn()`` in a worker thread under the plugin's limiter, abandoned at a cancel (the
        deadline); the caller's cancel scope bounds the wait for a thread too (a deadline
        passing in that wait started nothing, so nothing is abandoned)."""
        limiter = loaded.limiter
        if limiter.available_tokens < 1:
            self._thread_waits += 1
        return await run_in_worker_thread(fn, limiter, loaded.count_abandoned)

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
