"""One request's walk through its API: every step under the request's one deadline scope.

``ApiRuntime.run`` is the request path after routing. Every API, with or without a pipeline,
walks through :func:`.steps.walk`, the one place that opens the request's deadline scope: the
request steps (PRE, built-in auth, AUTH, POST_AUTH, built-ins, ENDPOINT, POST, each hook under
``min(its timeout, the deadline)``), the finisher, the upstream call (:class:`Upstream`, the
deadline moved back to the request's) and the RESPONSE hooks. An API without a pipeline (keyless,
no plugins, no limits) walks the upstream step alone, in that same one scope. There is no
callback into the gateway: the upstream call is a step of the walk like the others.

Errors become responses in fixed places: a hook's failure by its policy
(``policy.failure_response``), an upstream failure here (:meth:`Upstream.failed`, the error's own
status), the request deadline in :func:`.steps.walk` by :func:`policy.request_timed_out` (the one
504 producer, whose answer hook timeouts share).
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any

import attrs
import trio

from .._apidef.model import ApiDefinition
from .._error_body import error_response
from .._exchange import Request, Response
from .._logsummary import FailureLog
from .._routing import Target
from .._upstream.connection import Origin, UpstreamPool
from .._upstream.proxy import UpstreamRequest, discard_body, forward
from ..errors import GatewayError
from .exchange import Exchange
from .policy import log, request_timed_out
from .runner import ApiPipeline
from .steps import walk

__all__ = ["RESPONSE_HOOK_BODY_LIMIT", "ApiRuntime", "Upstream"]

#: Upstream failures: one line per API and cause per interval.
_failure_log = FailureLog(log)

#: Upper bound on a response body read whole for Response hooks (beyond it: 502).
RESPONSE_HOOK_BODY_LIMIT = 64 * 1024 * 1024


@attrs.define(eq=False, slots=True)
class ApiRuntime:
    """One API as served: its definition, compiled target and pipeline (or why it is broken)."""

    api: ApiDefinition
    target: Target
    #: Where the pool connects (scheme, host, port), from ``target``.
    origin: Origin
    #: The listen path as routing sees it (normalised, no trailing slash; "" for "/").
    listen_prefix: str
    pipeline: ApiPipeline | None
    #: Set when the API's plugins failed to load: the API answers 503 until fixed.
    broken: str | None = None
    #: Seconds a request may take up to the upstream's response head (the API's
    #: ``proxy.request_timeout``, else the gateway's ``proxy_default_timeout``).
    timeout: float = math.inf

    def timed_out(self) -> Response:
        """The answer when a request's deadline passes (504, logged as this API's timeout)."""
        return request_timed_out(self.api.api_id, self.timeout)

    def run(
        self, request: Request, host_header: bytes | None, upstream: Upstream, hook_body_limit: int
    ) -> Coroutine[Any, Any, Response]:
        """The request's walk under its deadline (:attr:`timeout` seconds from now), to await:
        what the client gets. Every API walks through :func:`~.steps.walk`, which owns the
        deadline's scope and answers its passing (the one 504 for it).

        Not ``async``: it hands back the walk's own coroutine, so the request path pays for no
        coroutine of its own here.
        """
        # A client hang-up cancels the connection's scope around this one (_server.py), which
        # takes the hooks, the upstream request and all they started.
        deadline = trio.current_time() + self.timeout
        pipeline = self.pipeline
        if pipeline is None:
            # With the upstream step, the walk always ends in a response (never None).
            return walk(  # type: ignore[return-value]
                None, (), request, deadline, None, None, upstream, self, host_header
            )
        if pipeline.driver is not None:
            # Plugin hooks may read the body whole: bounded (413), unlike a streamed body.
            request.body_limit = hook_body_limit
        exchange = Exchange(api=self.api, deadline=deadline, host_header=host_header)
        return pipeline.run(request, exchange, upstream, self)


@attrs.define(eq=False, slots=True)
class Upstream:
    """How requests reach their upstreams (one per gateway): the step after the request hooks."""

    pool: UpstreamPool
    #: Per-chunk bound on a stalled upstream body (``limits.body_read_timeout``).
    body_timeout: float
    #: The scheme clients reach us with (for X-Forwarded-Proto).
    scheme: str = "http"

    async def call(
        self,
        request: Request,
        runtime: ApiRuntime,
        host_header: bytes | None,
        exchange: Exchange | None,
    ) -> Response:
        """Forward ``request``: the upstream's response. Raises the upstream's
        :class:`GatewayError` (the caller answers it with :meth:`failed`), or the client's
        :class:`ClientProtocolError` when its body broke mid-forward (413, a bad chunk).

        Runs under the request's deadline (the caller's scope). With Response hooks to come, the
        body is read whole (bounded by :data:`RESPONSE_HOOK_BODY_LIMIT`).
        """
        up = self.request_for(request, runtime, host_header)
        if exchange is not None:  # for analytics
            request.api_key = exchange.session_key
            if exchange.session is not None:
                request.key_alias = exchange.session.alias
        # The clock's own method, looked up once: trio.current_time() is one more call each time.
        clock = trio.lowlevel.current_clock()
        started = clock.current_time()
        response = await forward(request, up, self.pool, body_timeout=self.body_timeout)
        request.upstream_latency = clock.current_time() - started
        if request.body_bytes is None:
            # The body streamed upstream and is spent: Response hooks see none (and no 413 for
            # a Content-Length over the hooks' limit: nothing of it is held here).
            request.body_source = None
        if exchange is None:
            return response
        if exchange.response_headers:
            response.headers.extend(exchange.response_headers)
        pipeline = runtime.pipeline
        if pipeline is not None and pipeline.has_response_hooks and response.tunnel is None:
            target = runtime.target
            response.upstream_url = (
                f"{target.scheme}://{target.host_header}{up.target.decode('latin-1')}"
            )
            try:
                await response.read_body(RESPONSE_HOOK_BODY_LIMIT)
            except BaseException:
                discard_body(response)  # too large, or the upstream failed: drop its connection
                raise
        return response

    @staticmethod
    def failed(runtime: ApiRuntime, exc: GatewayError) -> Response:
        """The client's answer for an upstream failure (the error's own status), logged."""
        api_id = runtime.api.api_id
        _failure_log.warning(
            (api_id, "upstream", type(exc)), f"upstream of API {api_id} failed", exc
        )
        return error_response(exc.status_hint, exc.public_message)

    def request_for(
        self, request: Request, runtime: ApiRuntime, host_header: bytes | None
    ) -> UpstreamRequest:
        api = runtime.api
        target = runtime.target
        path = request.path
        if api.strip_listen_path and runtime.listen_prefix:
            prefix = runtime.listen_prefix
            if path.startswith(prefix):
                path = path[len(prefix) :] or "/"
                if not path.startswith("/"):
                    path = "/" + path
        upstream_path = target.join(path)
        if request.query:
            upstream_path += "?" + request.query
        xff = request.header(b"x-forwarded-for")
        client = request.client_addr.encode("latin-1")
        forwarded = [
            (b"X-Forwarded-For", xff + b", " + client if xff else client),
            (b"X-Forwarded-Proto", self.scheme.encode("ascii")),
            (b"X-Request-ID", request.request_id.encode("latin-1")),
        ]
        if host_header:
            forwarded.append((b"X-Forwarded-Host", host_header))
        if api.preserve_host_header and host_header:
            host = host_header
        else:
            host = target.host_header.encode("ascii")
        return UpstreamRequest(
            origin=runtime.origin,
            target=upstream_path.encode("latin-1"),
            host=host,
            forwarded=forwarded,
        )
