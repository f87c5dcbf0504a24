"""The public plugin facade: what a hook sees, what it returns, and what a driver implements.

.. versionadded:: 0.1  (``HOOK_API_VERSION = 1``)

A request walks Tyk's hook stages in order::

    PRE -> AUTH (custom auth) -> POST_AUTH -> built-ins -> ENDPOINT -> POST -> upstream -> RESPONSE

A *hook* is one plugin entry of an API definition (:class:`HookRef`). For every call the pipeline
builds a :class:`HookContext` and hands it to the API's :class:`Driver`, which returns a decision:
:data:`CONTINUE` (go on, with the changes the hook made through the context) or :class:`Respond`
(answer the client now: later stages do not run and the upstream is not called).

What a hook may see and change follows Tyk's table, enforced by the typed views below. A write to a
part the stage may not change raises :class:`ReadOnlyError` naming the stage; nothing is silently
dropped.

=====================  =====  =============  ===============  ===============  ==========
data                   PRE    AUTH           POST_AUTH        POST, ENDPOINT   RESPONSE
=====================  =====  =============  ===============  ===============  ==========
``ctx.api``            read   read           read             read             read
``ctx.request``        write  write          write            write            read
``ctx.session``        None   creates it     read, meta_data  read, meta_data  read
``ctx.response``       None   None           None             None             write
=====================  =====  =============  ===============  ===============  ==========

Native Python plugins use the views (``ctx.request.set_header(...)``). Tyk-style drivers (gRPC,
Tyk Python files, JS) need the whole exchange with Tyk's own semantics instead; they use the
``raw_*`` accessors, which bypass the views (see :class:`HookContext`).

How a driver reports a failure (the pipeline turns it into the hook's failure policy):

* raise :class:`~trio_gateway.errors.PluginDriverError` when the plugin cannot be reached or run at
  all (gRPC server down, thread limit full): kind *unavailable*;
* raise :class:`~trio_gateway.errors.HookTimeout` when the far side reports a deadline it missed:
  kind *timeout* (the pipeline's own deadline needs no help from the driver);
* any other ``Exception`` (a plugin's own exception, an invalid return): kind *error*.

``trio.Cancelled`` must always propagate: it means the client went away or the deadline passed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, final

import attrs

from ._apidef.model import ApiDefinition, FailureMode, PluginRef, Stage
from ._config.model import DEFAULT_THREAD_LIMIT
from ._exchange import Request, Response
from ._session.model import Session
from ._tracecontext import TraceContext
from ._views import ReadOnlyError, RequestView, ResponseView, SessionView, refuse

# The views are defined in ``_views`` (this module is the facade); they are public here.
for _cls in (ReadOnlyError, RequestView, ResponseView, SessionView):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "CONTINUE",
    "HOOK_API_VERSION",
    "ApiDefinition",
    "ApiInfo",
    "Continue",
    "Decision",
    "Driver",
    "FailureMode",
    "HookContext",
    "HookRef",
    "Phase",
    "PluginRef",
    "ReadOnlyError",
    "RequestView",
    "Respond",
    "ResponseView",
    "Session",
    "SessionView",
    "Stage",
    "TraceContext",
]

#: The version of this contract. It only grows; a change that breaks plugins bumps it.
HOOK_API_VERSION: Final = 1

#: Tyk calls stages "phases" in places; both names mean the same enum.
Phase = Stage


# --------------------------------------------------------------------------------------------
# Decisions


@final
@attrs.frozen
class Continue:
    """Go on with the walk, keeping the changes the hook made through its context."""


#: The one :class:`Continue` instance (a hook may also just return ``None``).
CONTINUE: Final = Continue()


@final
@attrs.frozen(kw_only=True)
class Respond:
    """Answer the client with this response; the walk stops and the upstream is not called.

    In the RESPONSE stage it replaces the upstream's response and ends the response chain.
    ``headers`` is a mapping or a sequence of pairs (``str`` or ``bytes``); ``body`` is bytes, or
    text sent as UTF-8.
    """

    status: int
    headers: Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]] = ()
    body: bytes | str = b""
    #: Before the upstream: send this as the upstream's answer would be sent, through the API's
    #: RESPONSE hooks and with the gateway's response headers (``X-RateLimit-*``), as Tyk sends
    #: a virtual endpoint's answer.
    as_upstream: bool = False

    def to_response(self) -> Response:
        """The gateway's :class:`Response` for this decision."""
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        # Names keep the case they were given: Tyk-protocol drivers hand over Go's canonical
        # forms, which is what Tyk's clients see.
        headers = [(_to_bytes(k), _to_bytes(v)) for k, v in pairs]
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return Response(status=self.status, headers=headers, body_bytes=body)


Decision = Continue | Respond


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


# --------------------------------------------------------------------------------------------
# Hook entries, as the pipeline hands them to drivers


@final
@attrs.frozen(kw_only=True, eq=False)
class HookRef:
    """One hook of one API, resolved at load time.

    Identity-hashed (``eq=False``) so a driver can key its loaded plugins by the ``HookRef`` itself
    at the cost of a pointer hash on the hot path.
    """

    stage: Stage
    #: The entry as written in the definition (``name``, ``path``, ``raw_body_only``...).
    plugin: PluginRef
    #: Position within its stage, from 0 (for messages and stable ordering).
    index: int
    #: The resolved deadline (seconds) and failure policy: hook, then API, then gateway default.
    timeout: float
    failure_mode: FailureMode
    #: Worker threads a driver that runs plugin code in threads may use per plugin function
    #: (the API's ``thread_limit``, else the gateway's ``hooks.thread_limit``).
    thread_limit: int = DEFAULT_THREAD_LIMIT
    #: For ENDPOINT hooks, the endpoint (path relative to the listen path) and method.
    endpoint_path: str = ""
    endpoint_method: str = ""

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def label(self) -> str:
        """How logs and errors name this hook, e.g. ``pre[0] add_header``."""
        return f"{self.stage.value}[{self.index}] {self.plugin.name or '<unnamed>'}"


class Driver(Protocol):
    """What every plugin driver implements (one instance per API definition that uses it).

    ``load`` resolves and loads every hook the API uses (files, modules, connections) and raises
    :class:`~trio_gateway.errors.PluginDriverError` naming the API and hook when one cannot load.
    ``call`` runs one hook; it is called inside a cancel scope carrying the hook's deadline and must
    let ``trio.Cancelled`` through. ``aclose`` releases what ``load`` acquired.
    """

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None: ...

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision: ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Views


@final
@attrs.frozen(kw_only=True)
class ApiInfo:
    """The API's configuration as plugins see it (read-only)."""

    api_id: str
    org_id: str
    name: str
    #: ``config_data`` from the definition (None when absent or disabled). Do not mutate it.
    config_data: Mapping[str, Any] | None

    @classmethod
    def from_api(cls, api: ApiDefinition) -> ApiInfo:
        return cls(api_id=api.api_id, org_id=api.org_id, name=api.name, config_data=api.config_data)


# --------------------------------------------------------------------------------------------
# The context


@final
class HookContext:
    """Everything one hook call may see, for one stage of one request.

    Plugins use ``stage``, ``api``, ``hook_name``, ``request``, ``session``, ``response``,
    :meth:`set_session` (AUTH only) and :meth:`respond`. Views are built on first access, so a hook
    that touches nothing costs nothing extra.

    Drivers that speak a Tyk protocol use ``raw_request``, ``raw_response``, ``raw_session`` and
    ``session_key``: the live objects, without the visibility checks. Such a driver applies Tyk's
    semantics itself (e.g. it ignores session changes returned by a Post hook) and reports custom
    auth with :meth:`set_session`.

    Built by the pipeline (``HookContext._create``), never by plugins.
    """

    __slots__ = (
        "_meta_data_changed",
        "_request",
        "_request_view",
        "_response",
        "_response_view",
        "_session",
        "_session_key",
        "_session_view",
        "api",
        "hook",
        "stage",
    )

    stage: Stage
    api: ApiInfo
    hook: HookRef
    _request: Request
    _response: Response | None
    _session: Session | None
    _session_key: str
    _request_view: RequestView | None
    _response_view: ResponseView | None
    _session_view: SessionView | None
    _meta_data_changed: bool

    @classmethod
    def _create(
        cls,
        *,
        stage: Stage,
        api: ApiInfo,
        hook: HookRef,
        request: Request,
        session: Session | None = None,
        session_key: str = "",
        response: Response | None = None,
    ) -> HookContext:
        self = object.__new__(cls)
        self.stage = stage
        self.api = api
        self.hook = hook
        self._request = request
        self._response = response if stage is Stage.RESPONSE else None
        # Tyk's table: no session before auth (the AUTH stage creates it).
        has_session = stage not in (Stage.PRE, Stage.AUTH)
        self._session = session if has_session else None
        self._session_key = session_key if has_session else ""
        self._request_view = None
        self._response_view = None
        self._session_view = None
        self._meta_data_changed = False
        return self

    def __init__(self) -> None:
        raise TypeError("HookContext is built by the gateway, not by plugins")

    @property
    def hook_name(self) -> str:
        return self.hook.plugin.name

    @property
    def trace(self) -> TraceContext | None:
        """The request's W3C trace context (``trace.trace_id``, ``trace.header``): the client's
        ``traceparent`` when valid, else one the gateway started. Read-only."""
        return self._request.trace

    @property
    def request(self) -> RequestView:
        view = self._request_view
        if view is None:
            view = self._request_view = RequestView(self._request, self.stage)
        return view

    @property
    def session(self) -> SessionView | None:
        """The session (None in PRE, on keyless APIs, and in AUTH until :meth:`set_session`)."""
        if self._session is None:
            return None
        view = self._session_view
        if view is None:
            view = self._session_view = SessionView(self._session, self)
        return view

    @property
    def response(self) -> ResponseView | None:
        """The upstream's response in RESPONSE; None in every other stage."""
        if self._response is None:
            return None
        view = self._response_view
        if view is None:
            view = self._response_view = ResponseView(self._response)
        return view

    def set_session(self, key: str, session: Session | None = None) -> Session:
        """Custom auth only: authenticate the request as ``key`` with ``session``.

        Returns the session (a new empty one when none is given) so the hook can fill it. Its
        ``org_id`` is forced to the API's, as Tyk does. A custom auth hook that continues without
        calling this gets Tyk's answer, 403 ``Forbidden``.
        """
        if self.stage is not Stage.AUTH:
            raise refuse("the session", self.stage)
        if not key:
            raise ValueError("a session key must not be empty")
        if session is None:
            session = Session()
        session.org_id = self.api.org_id
        self._session = session
        self._session_key = key
        self._session_view = None
        return session

    @staticmethod
    def respond(
        status: int,
        body: bytes | str = b"",
        headers: Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]] = (),
    ) -> Respond:
        """Build a :class:`Respond` decision: ``return ctx.respond(400, "bad input")``."""
        return Respond(status=status, headers=headers, body=body)

    # -- for drivers ---------------------------------------------------------------------

    @property
    def raw_request(self) -> Request:
        return self._request

    @property
    def raw_response(self) -> Response | None:
        return self._response

    @property
    def raw_session(self) -> Session | None:
        return self._session

    @property
    def session_key(self) -> str:
        return self._session_key

    def mark_meta_data_changed(self) -> None:
        """Drivers that change ``raw_session.meta_data`` directly say so here (for the store)."""
        self._meta_data_changed = True

    def _fork(self) -> HookContext:
        """A detached copy for a hook that may be abandoned mid-run (a sync hook in a thread).

        Its changes reach the real exchange only through :meth:`_merge`, so an abandoned thread can
        never write into a request that has moved on.
        """
        request = self._request
        req = attrs.evolve(request, headers=list(request.headers))
        resp = self._response
        if resp is not None:
            resp = attrs.evolve(resp, headers=list(resp.headers))
        session = self._session
        if session is not None:
            session = attrs.evolve(session, meta_data=copy.deepcopy(session.meta_data))
        fork = HookContext._create(
            stage=self.stage,
            api=self.api,
            hook=self.hook,
            request=req,
            session=session,
            session_key=self._session_key,
            response=resp,
        )
        if self.stage is Stage.AUTH:
            fork._session, fork._session_key = session, self._session_key
        return fork

    def _merge(self, fork: HookContext) -> None:
        """Apply a fork's changes (what its stage allowed) to this context's live objects."""
        if self.stage is not Stage.RESPONSE:
            src, dst = fork._request, self._request
            dst.method, dst.path, dst.query = src.method, src.path, src.query
            dst.headers[:] = src.headers
            if src.body_bytes is not dst.body_bytes and src.body_bytes is not None:
                dst.body_bytes, dst.body_source = src.body_bytes, src.body_source
                dst.content_length = src.content_length
        if fork._response is not None and self._response is not None:
            dst_resp, src_resp = self._response, fork._response
            dst_resp.status, dst_resp.reason = src_resp.status, src_resp.reason
            dst_resp.headers[:] = src_resp.headers
            dst_resp.body_bytes, dst_resp.body_source = src_resp.body_bytes, src_resp.body_source
            dst_resp.transfer_coding = src_resp.transfer_coding
        if self.stage is Stage.AUTH:
            self._session, self._session_key = fork._session, fork._session_key
        elif fork._meta_data_changed and self._session is not None and fork._session is not None:
            self._session.meta_data = fork._session.meta_data
            self._meta_data_changed = True
