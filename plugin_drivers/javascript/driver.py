"""The ``otto`` (alias ``javascript``) driver: Tyk JSVM middleware on the embedded engine.

One VM per API (``ApiScripts``), preloaded at load time in a worker thread: built-ins,
Underscore.js, the TykJS library, ``tyk_js_path``, then the API's files. Each call runs in a
Trio worker thread under the API's thread limit (``plugin_drivers.threads.run_limited``, as sync
Python hooks do), with the JS time limit ``min(jsvm_timeout, the hook's remaining deadline)``.
The call's request object, session and config go in as JSON; what comes back is decoded and
checked in that thread, then applied to the live request on the event loop
(``request_object``: Tyk's order and rules). docs/javascript.md has the whole contract.

Failures: a stop at the JS time limit is a :class:`HookTimeout` (the hook's timeout policy, 504
by default); a thrown error, a memory-cap stop, a missing middleware object or a return value
that cannot be applied is a :class:`HookError` (500; 403 for custom auth), its message naming the
API, the hook (stage and name) and the file.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import attrs
import outcome
import trio

from trio_gateway.drivers import (
    CONTINUE,
    ERROR_HEADERS,
    ApiDefinition,
    Decision,
    DriverSettings,
    DriverStore,
    HookContext,
    HookError,
    HookRef,
    HookTimeout,
    JsSettings,
    PluginDriverError,
    Request,
    Respond,
    Response,
    Stage,
    error_body,
    session_from_json,
    session_to_json,
)

from ..python.loader import resolve_path
from ..threads import run_limited
from .engine import JsError, JsJob, JsLoadError, JsTimeoutError, JsVm, JsVmClosedError
from .host import GatewayJsHost
from .request_object import (
    GatewayRequest,
    JsErrorReply,
    JsResult,
    JsResultError,
    apply_js_request,
    override_reply,
    parse_js_result,
    to_js_request_parts,
    updated_meta_data,
)
from .scripts import ApiScripts, JsCall, JsPending, JsSource, middleware_result
from .virtual import call_virtual, refused_blobs, virtual_blobs, virtual_function_problem

__all__ = ["JsDriver", "create"]

T = TypeVar("T")

#: Stages whose hooks see the session (with ``require_session``) and write ``meta_data`` back.
_SESSION_STAGES: Final = frozenset({Stage.POST_AUTH, Stage.ENDPOINT, Stage.POST})
_FRAMING: Final = (b"content-length", b"transfer-encoding")
#: An HTTP field name (RFC 9110 token) and what a field value must not hold (controls but HTAB).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: What a request target cannot hold: spaces, controls, anything outside ASCII.
_URL_UNSAFE: Final = re.compile(r"[^\x21-\x7e]")


@attrs.frozen
class _Finished(Generic[T]):
    """A call's last step: what ``finish`` made of the function's value."""

    value: T


@attrs.frozen
class _Returned:
    """A call's last step: the function's value, small enough to decode on the event loop."""

    value: Any


#: A value longer than this (characters of JSON text) is decoded on the VM's thread, so that a
#: large body never blocks the event loop; a shorter one on the loop, which costs less CPU
#: (Python run on the VM thread just after a switch runs cold: ~7 us per request measured,
#: bench/js_cpu_cost.py, docs/performance.md).
_DECODE_ON_LOOP_MAX: Final = 16 * 1024


class _VmCall:
    """A task waiting for the VM thread; the borrower of its thread-limit token, and the job's
    completion callback (on the VM thread)."""

    __slots__ = ("abandoned", "hand_over", "task")

    def __init__(self, task: trio.lowlevel.Task, hand_over: _VmHandOver) -> None:
        self.task = task
        self.hand_over = hand_over
        self.abandoned = False

    def __call__(self, result: outcome.Outcome[Any]) -> None:
        self.hand_over.finished(self, result)


class _VmHandOver:
    """Jobs from Trio to one API's VM thread and their outcomes back, in batches both ways.

    This hand-over is most of what a JavaScript hook costs beyond the script itself: with the
    event loop and the VM thread sharing a core, every wake-up of one by the other is a context
    switch and a GIL hand-off (docs/performance.md, "JavaScript hooks"). So neither side is woken
    per call:

    * Trio -> VM: jobs made during one pass of Trio's scheduler wait in an outbox and go to the
      VM's queue together, from a ``run_sync_soon`` callback (the next pass): one wake-up of the
      VM thread for all the requests that reached a JS hook meanwhile.
    * VM -> Trio: the VM thread adds each finished job to a list; only the first since the last
      delivery asks Trio (``run_sync_soon``) to deliver them all.

    Measured (bench/js_cpu_cost.py): from 4.4 to 0.4 context switches per request, and 246 to
    205 us of CPU per request with a JS Pre hook.
    """

    __slots__ = ("_finished", "_limiter", "_lock", "_outbox", "_scripts", "_token")

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        limiter: trio.CapacityLimiter,
        scripts: Callable[[], ApiScripts | None],
    ) -> None:
        self._token = token
        self._limiter = limiter
        self._scripts = scripts
        self._outbox: list[JsJob[Any]] = []
        self._lock = threading.Lock()
        self._finished: list[tuple[_VmCall, outcome.Outcome[Any]]] = []

    def send(self, job: JsJob[Any]) -> None:
        """On Trio: queue ``job`` for the VM thread (from the next scheduler pass)."""
        self._outbox.append(job)
        if len(self._outbox) == 1:
            self._token.run_sync_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        jobs, self._outbox = self._outbox, []
        scripts = self._scripts()
        if scripts is not None:
            scripts.post_jobs(jobs)
            return
        for job in jobs:  # the driver was closed meanwhile
            if JsVm.withdraw(job):
                job.done(outcome.Error(JsVmClosedError("the JavaScript driver is closed")))

    def finished(self, call: _VmCall, result: outcome.Outcome[Any]) -> None:
        """On the VM thread (or on Trio, for a job that never ran), once ``call`` is done."""
        with self._lock:
            self._finished.append((call, result))
            first = len(self._finished) == 1
        if first:
            with contextlib.suppress(trio.RunFinishedError):  # the gateway has stopped
                self._token.run_sync_soon(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._finished = self._finished, []
        for call, result in ready:
            self._limiter.release_on_behalf_of(call)
            if not call.abandoned:
                trio.lowlevel.reschedule(call.task, result)


def create(settings: DriverSettings) -> JsDriver:
    """The driver factory (``plugin_drivers.DRIVERS``, names ``otto`` and ``javascript``)."""
    return JsDriver(settings=settings.javascript, store=settings.store)


@attrs.define(eq=False)
class JsDriver:
    """Runs one API's JavaScript middleware."""

    settings: JsSettings = attrs.field(factory=JsSettings)
    store: DriverStore | None = None

    _api_id: str = attrs.field(init=False, default="")
    _scripts: ApiScripts | None = attrs.field(init=False, default=None)
    _host: GatewayJsHost | None = attrs.field(init=False, default=None)
    _limiter: trio.CapacityLimiter | None = attrs.field(init=False, default=None)
    _trio_token: trio.lowlevel.TrioToken | None = attrs.field(init=False, default=None)
    _hand_over: _VmHandOver | None = attrs.field(init=False, default=None)
    #: The file each hook's middleware comes from, for messages.
    _files: dict[HookRef, str] = attrs.field(init=False, factory=dict)
    #: Steps (or gateway built-ins' worker threads) abandoned at their caller's deadline while
    #: still running; a step ends when the engine's time limit stops the script.
    abandoned: int = attrs.field(init=False, default=0)

    # -- load ------------------------------------------------------------------------------

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        self._api_id = api.api_id
        if not self.settings.enable:
            raise PluginDriverError(
                f"API {api.api_id!r}: JavaScript plugins run only with enable_jsvm set to true "
                "(tyk.conf; or TYK_GW_ENABLEJSVM=true, or enable = true under [javascript] in "
                "gateway.toml)"
            )
        if self.settings.disable_virtual_path_blobs:
            refusal = refused_blobs(hooks)
            if refusal:
                raise PluginDriverError(f"API {api.api_id!r}: {refusal}")
        files: list[str] = []
        for hook in hooks:
            path = hook.plugin.path
            filename = resolve_path(path, api.source) if path else ""
            self._files[hook] = filename or "<no file>"
            if filename and filename not in files:
                files.append(filename)
        self._limiter = trio.CapacityLimiter(hooks[0].thread_limit if hooks else 1)
        self._trio_token = trio.lowlevel.current_trio_token()
        self._hand_over = _VmHandOver(self._trio_token, self._limiter, lambda: self._scripts)
        settings = self.settings
        self._host = host = GatewayJsHost(
            api_id=api.api_id,
            store=self.store,
            trio_token=self._trio_token,
            insecure_skip_verify=settings.ssl_insecure_skip_verify,
            ca_file=settings.ca_file,
        )

        def build() -> ApiScripts:
            sources: list[JsSource] = []
            if settings.tyk_js_path:
                sources.append(_read(Path(settings.tyk_js_path), "tyk_js_path"))
            sources.extend(_read(Path(name), "plugin file") for name in files)
            sources.extend(virtual_blobs(hooks))
            scripts = ApiScripts(
                api_id=api.api_id,
                sources=sources,
                host=host,
                memory_limit=settings.memory_limit,
                load_timeout=settings.timeout,
                underscore=Path(settings.underscore_path) if settings.underscore_path else None,
            )
            try:
                for hook in hooks:
                    _check_middleware(scripts, hook, self._files[hook])
            except BaseException:
                scripts.close()
                raise
            return scripts

        try:
            # Abandoned if the load's time bound passes (the engine's own limit ends it later).
            self._scripts = await trio.to_thread.run_sync(build, abandon_on_cancel=True)
        except JsLoadError as exc:
            stages = ", ".join(h.label for h, f in self._files.items() if f == exc.filename)
            where = f" (hook {stages})" if stages else ""
            raise PluginDriverError(f"API {api.api_id!r}{where}: {exc}") from exc
        except _LoadFailure as exc:
            raise PluginDriverError(f"API {api.api_id!r}: {exc}") from exc
        except (JsError, OSError, ValueError) as exc:
            message = f"API {api.api_id!r}: JavaScript failed to load: {exc}"
            raise PluginDriverError(message) from exc

    async def aclose(self) -> None:
        scripts, self._scripts = self._scripts, None
        if scripts is not None:
            # Closing waits for a running call, which the engine's time limit bounds.
            await trio.to_thread.run_sync(scripts.close, abandon_on_cancel=True)

    # -- what the virtual-endpoint code (virtual.py) builds on -------------------------------

    @property
    def scripts(self) -> ApiScripts:
        if self._scripts is None:
            raise PluginDriverError("the JavaScript driver is not loaded")
        return self._scripts

    @property
    def host(self) -> GatewayJsHost:
        if self._host is None:
            raise PluginDriverError("the JavaScript driver is not loaded")
        return self._host

    def call_timeout(self, hook: HookRef) -> float:
        """The JS time limit for ``hook``'s call made now: ``jsvm_timeout``, or the hook's own
        deadline, or the time the request has left, whichever is smallest.

        (The pipeline moves its scope to the hook's deadline only once the call first waits, so
        the scope may still show the request's: ``hook.timeout`` bounds it.)"""
        left = trio.current_effective_deadline() - trio.current_time()
        return max(0.0, min(self.settings.timeout, hook.timeout, left))

    async def run_on_vm(self, hook: HookRef, fn: Callable[[ApiScripts], T]) -> T:
        """``fn(scripts)`` on the API's VM thread, awaited from Trio without a worker thread of
        our own (a Trio worker thread handing over to the VM thread cost ~9x more per call,
        bench/js_vm_pool.py and docs/javascript.md). Raises what ``fn`` raises.

        Under the API's thread limit, as other sync plugin code: a call takes one of its
        ``thread_limit`` tokens (waiting for one within the caller's deadline) and holds it until
        the VM has finished the work, even when the caller gave up at its deadline (the engine's
        time limit ends the script). A call cancelled before the VM started it is withdrawn:
        it never runs. Engine calls made inside ``fn`` run inline; gateway built-ins must not be
        called inside it (they would hold the VM): use :meth:`call_function`, which performs
        them in a worker thread between steps.

        Jobs and their outcomes travel in batches (:class:`_VmHandOver`): no future, no event.
        """
        scripts, limiter, hand_over = self.scripts, self._limiter, self._hand_over
        assert limiter is not None
        assert hand_over is not None
        await trio.lowlevel.checkpoint_if_cancelled()
        call = _VmCall(trio.lowlevel.current_task(), hand_over)
        try:
            # A free token is taken without a scheduler round trip; the wait below yields.
            limiter.acquire_on_behalf_of_nowait(call)
        except trio.WouldBlock:
            await limiter.acquire_on_behalf_of(call)
        job = JsJob(functools.partial(fn, scripts), call)
        hand_over.send(job)

        def abort(_: object) -> trio.lowlevel.Abort:
            if scripts.withdraw(job):  # not started: it never will
                limiter.release_on_behalf_of(call)
            else:  # running: abandoned, it ends at its time limit and gives the token back
                call.abandoned = True
                self._count_abandoned()
            return trio.lowlevel.Abort.SUCCEEDED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    async def call_function(
        self,
        hook: HookRef,
        function: str,
        *args: Any,
        js_timeout: float,
        finish: Callable[[Any], T],
    ) -> T:
        """Call the global ``function(*args)`` (JSON-able arguments) on the API's VM within
        ``timeout`` seconds of JS time, and return ``finish(its value)`` (``finish`` runs on the
        VM's thread for a large value, so that decoding it stays off the event loop; on the loop
        for a small one, ``_DECODE_ON_LOOP_MAX``).

        Gateway built-ins the script calls (``TykMakeHttpRequest`` …) are performed between
        steps in a worker thread under the thread limit, so the VM serves the API's other
        requests meanwhile (suspend and replay: ``scripts.py``).
        """
        scripts = self.scripts
        call = JsCall.start(function, *args)
        deadline = time.monotonic() + js_timeout

        def step(vm: ApiScripts, budget: float) -> JsPending | _Finished[T] | _Returned:
            pending = vm.step(call, budget)
            if pending is not None:
                return pending
            out = call.out
            if isinstance(out, str) and len(out) <= _DECODE_ON_LOOP_MAX:
                return _Returned(out)
            return _Finished(finish(out))

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JsTimeoutError(f"{function}: no time left after its requests to the gateway")
            stepped = await self.run_on_vm(hook, functools.partial(step, budget=remaining))
            if isinstance(stepped, _Returned):
                return finish(stepped.value)
            if isinstance(stepped, _Finished):
                return stepped.value
            pending = stepped
            limiter = self._limiter
            assert limiter is not None
            await run_limited(
                limiter,
                scripts.answer,
                call,
                pending,
                deadline - time.monotonic(),
                on_abandon=self._count_abandoned,
            )

    def _count_abandoned(self) -> None:
        self.abandoned += 1

    async def _call_virtual(self, hook: HookRef, ctx: HookContext) -> Decision:
        return await call_virtual(self, self._api_id, hook, ctx)

    # -- calls -----------------------------------------------------------------------------

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        if hook.plugin.virtual is not None:
            return await self._call_virtual(hook, ctx)
        request = ctx.raw_request
        response = ctx.raw_response if hook.stage is Stage.RESPONSE else None
        if response is not None:
            body = await response.read_body()
            headers = response.headers
        else:
            body = await request.read_body()
            headers = request.headers
        url = request.path + ("?" + request.query if request.query else "")
        host_header = request.header(b"host") or b""
        current = GatewayRequest(
            method=request.method,
            scheme=request.scheme,
            host=host_header.decode("latin-1"),
            url=url,
            request_uri=url,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers),
            body=body,
        )
        js_request = to_js_request_parts(current)
        if response is not None:
            # A Response hook (our extension) also reads the upstream's status, under the name
            # Go's http.Response gives it. Read-only: ReturnOverrides changes what is sent.
            js_request["StatusCode"] = response.status
        session = ctx.raw_session
        uses_session = (
            hook.stage in _SESSION_STAGES and hook.plugin.require_session and session is not None
        )
        session_json: dict[str, Any] = (
            session_to_json(session) if uses_session and session is not None else {}
        )
        config: dict[str, Any] = {"OrgID": ctx.api.org_id, "APIID": ctx.api.api_id}
        if ctx.api.config_data is not None:
            config["config_data"] = dict(ctx.api.config_data)
        name = hook.plugin.name
        try:
            result = await self.call_function(
                hook,
                f"{name}.DoProcessRequest",
                js_request,
                session_json,
                config,
                js_timeout=self.call_timeout(hook),
                finish=lambda out: parse_js_result(middleware_result(name, out)),
            )
            if response is not None:
                return _apply_to_response(current, result, response)
            decision = _apply_to_request(current, result, request)
        except JsTimeoutError as exc:
            raise HookTimeout(self._where(hook, exc)) from exc
        except (JsError, JsResultError) as exc:
            raise HookError(self._where(hook, exc)) from exc
        if decision is not CONTINUE:
            return decision
        if hook.stage is Stage.AUTH:
            return self._authenticate(hook, ctx, result)
        if uses_session and session is not None:
            new_meta = updated_meta_data(session.meta_data, result, pre=False, use_session=True)
            if new_meta is not None:
                session.meta_data = new_meta
                ctx.mark_meta_data_changed()
        return CONTINUE

    def _authenticate(self, hook: HookRef, ctx: HookContext, result: JsResult) -> Decision:
        if result.session is None or not result.auth_value:
            return Respond(
                status=403, headers=list(ERROR_HEADERS), body=error_body("Key not authorised")
            )
        try:
            session = session_from_json(dict(result.session))
        except Exception as exc:
            raise HookError(self._where(hook, f"the returned Session is not valid: {exc}")) from exc
        ctx.set_session(result.auth_value, session)
        return CONTINUE

    def _where(self, hook: HookRef, exc: object) -> str:
        return f"API {self._api_id!r}: hook {hook.label} ({self._files.get(hook, '?')}): {exc}"


# ------------------------------------------------------------------------------------------------
# Applying a result


def _checked_headers(
    pairs: Sequence[tuple[str, str]], what: str, known: frozenset[tuple[str, str]] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """Headers from a script, as bytes, refused unless every name is a token and no value holds
    a control character (nothing a plugin hands us reaches a wire unchecked). Pairs in ``known``
    (the headers as the gateway already checked them) are not checked again."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
        if (name, value) in known:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
            continue
        if _TOKEN.fullmatch(name) is None:
            raise JsResultError(f"{what}: {name!r} is not a valid header name")
        if _CONTROL.search(value) is not None:
            raise JsResultError(f"{what}: the value of {name} holds a control character")
        try:
            out.append((name.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            out.append((name.encode("ascii"), value.encode("utf-8")))
    return out


def _with_length(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
    kept.append((b"Content-Length", str(len(body)).encode()))
    return kept


def _override(result: JsResult) -> Respond | None:
    reply = override_reply(result.request.return_overrides)
    if reply is None:
        return None
    headers = _checked_headers(reply.headers, "ReturnOverrides.ResponseHeaders")
    if isinstance(reply, JsErrorReply):
        own = {name.lower() for name, _ in ERROR_HEADERS}
        headers = [(k, v) for k, v in headers if k.lower() not in own] + list(ERROR_HEADERS)
        return Respond(status=reply.code, headers=headers, body=error_body(reply.message))
    body = reply.body.encode()
    if body and not any(k.lower() == b"content-type" for k, _ in headers):
        # Go's ResponseWriter sniffs a type when the handler sets none; a text body reads as this.
        headers.append((b"Content-Type", b"text/plain; charset=utf-8"))
    return Respond(status=reply.code, headers=headers, body=body)


def _apply_to_request(current: GatewayRequest, result: JsResult, request: Request) -> Decision:
    changed = apply_js_request(current, result.request)
    headers = _checked_headers(changed.headers, "Request.SetHeaders", frozenset(current.headers))
    if _URL_UNSAFE.search(changed.url) is not None:
        raise JsResultError(f"Request.URL {changed.url!r} holds characters a request line cannot")
    if changed.body != current.body:
        request.set_body(changed.body)
        headers = _with_length(headers, changed.body)
    request.headers[:] = headers
    path, _, query = changed.url.partition("?")
    request.path, request.query = path, query
    return _override(result) or CONTINUE


def _apply_to_response(current: GatewayRequest, result: JsResult, response: Response) -> Decision:
    """A Response hook (our extension): the object's ``Headers``/``Body`` are the upstream's
    response; header changes, the body and ``ReturnOverrides`` apply to it (URL and params do
    not: the request has gone)."""
    changed = apply_js_request(attrs.evolve(current, url="/"), result.request)
    headers = _checked_headers(changed.headers, "Request.SetHeaders")
    if changed.body != current.body:
        response.body_bytes = changed.body
        response.body_source = None
        response.transfer_coding = b""
        headers = _with_length(headers, changed.body)
    response.headers[:] = headers
    return _override(result) or CONTINUE


# ------------------------------------------------------------------------------------------------
# Loading


class _LoadFailure(Exception):
    """A hook cannot load: its file is missing, its name is not a JavaScript name, or its
    middleware object is not defined by any of the API's files."""


def _read(path: Path, what: str) -> JsSource:
    try:
        return JsSource.from_file(path)
    except FileNotFoundError:
        raise _LoadFailure(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _LoadFailure(f"{what} {path} cannot be read: {exc}") from None


def _check_middleware(scripts: ApiScripts, hook: HookRef, filename: str) -> None:
    name = hook.plugin.name
    where = f"hook {hook.label} ({filename})"
    if hook.plugin.virtual is not None:
        problem = virtual_function_problem(scripts, hook)
        if problem:
            raise _LoadFailure(f"{where}: {problem}")
        return
    try:
        defined = scripts.defines(name, "DoProcessRequest")
    except ValueError:
        raise _LoadFailure(f"{where}: {name!r} is not a JavaScript name") from None
    if not defined:
        raise _LoadFailure(
            f"{where}: no middleware object {name!r} with DoProcessRequest is defined "
            "(var NAME = new TykJS.TykMiddleware.NewMiddleware({}); NAME.NewProcessRequest(...))"
        )
