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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
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
from .engine import JsError, JsLoadError, JsTimeoutError
from .host import GatewayJsHost, make_ssl_context
from .request_object import (
    GatewayRequest,
    JsErrorReply,
    JsResult,
    JsResultError,
    apply_js_request,
    override_reply,
    parse_js_result,
    to_js_request,
    updated_meta_data,
)
from .scripts import ApiScripts, JsSource

__all__ = ["JsDriver", "create"]

T = TypeVar("T")

#: Stages whose hooks see the session (with ``require_session``) and write ``meta_data`` back.
_SESSION_STAGES: Final = frozenset({Stage.POST_AUTH, Stage.ENDPOINT, Stage.POST})
_FRAMING: Final = (b"content-length", b"transfer-encoding")
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


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
    #: The file each hook's middleware comes from, for messages.
    _files: dict[HookRef, str] = attrs.field(init=False, factory=dict)
    #: Calls abandoned at their deadline while their thread waited on the VM (it returns once the
    #: engine's time limit stops the script).
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
        files: list[str] = []
        for hook in hooks:
            path = hook.plugin.path
            filename = resolve_path(path, api.source) if path else ""
            self._files[hook] = filename or "<no file>"
            if filename and filename not in files:
                files.append(filename)
        self._limiter = trio.CapacityLimiter(hooks[0].thread_limit if hooks else 1)
        settings = self.settings
        self._host = host = GatewayJsHost(
            api_id=api.api_id,
            store=self.store,
            trio_token=trio.lowlevel.current_trio_token(),
            ssl_context=make_ssl_context(
                insecure_skip_verify=settings.ssl_insecure_skip_verify, ca_file=settings.ca_file
            ),
        )

        def build() -> ApiScripts:
            sources: list[JsSource] = []
            if settings.tyk_js_path:
                sources.append(_read(Path(settings.tyk_js_path), "tyk_js_path"))
            sources.extend(_read(Path(name), "plugin file") for name in files)
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
        """``fn(scripts)`` in a worker thread under the API's thread limit, within the caller's
        deadline (a thread still running at the deadline is abandoned; it ends when the engine's
        time limit stops the script). Engine errors propagate as raised by ``fn``."""
        scripts, limiter = self.scripts, self._limiter
        assert limiter is not None
        return await run_limited(limiter, fn, scripts, on_abandon=self._count_abandoned)

    def _count_abandoned(self) -> None:
        self.abandoned += 1

    async def _call_virtual(self, hook: HookRef, ctx: HookContext) -> Decision:
        raise PluginDriverError("virtual endpoints not wired")

    # -- calls -----------------------------------------------------------------------------

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        if getattr(hook.plugin, "virtual", None) is not None:
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
        js_request = to_js_request(current)
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
        timeout = self.call_timeout(hook)
        name = hook.plugin.name

        def run(scripts: ApiScripts) -> JsResult:
            out = scripts.run_middleware(name, js_request, session_json, config, timeout=timeout)
            return parse_js_result(out)

        try:
            result = await self.run_on_vm(hook, run)
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
            new_meta = updated_meta_data(
                session.meta_data, result, pre=False, use_session=True
            )
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


def _checked_headers(pairs: Sequence[tuple[str, str]], what: str) -> list[tuple[bytes, bytes]]:
    """Headers from a script, as bytes, refused unless every name is a token and no value holds
    a control character (nothing a plugin hands us reaches a wire unchecked)."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
        if not name or any(c not in _TOKEN_CHARS for c in name):
            raise JsResultError(f"{what}: {name!r} is not a valid header name")
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise JsResultError(f"{what}: the value of {name} holds a control character")
        try:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            out.append((name.encode("latin-1"), value.encode("utf-8")))
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
    headers = _checked_headers(changed.headers, "Request.SetHeaders")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in changed.url):
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
    if getattr(hook.plugin, "virtual", None) is not None:
        return  # virtual endpoints name a plain function, checked by virtual.py
    try:
        defined = scripts.defines(name, "DoProcessRequest")
    except ValueError:
        raise _LoadFailure(f"{where}: {name!r} is not a JavaScript name") from None
    if not defined:
        raise _LoadFailure(
            f"{where}: no middleware object {name!r} with DoProcessRequest is defined "
            "(var NAME = new TykJS.TykMiddleware.NewMiddleware({}); NAME.NewProcessRequest(...))"
        )
