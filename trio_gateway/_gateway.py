"""The gateway's request handler: route, walk the API's pipeline, proxy, answer.

An :class:`ApiSnapshot` is built once per (re)load from API definitions: the router, and for each
API its compiled upstream target and plugin pipeline. Requests read the snapshot they started
with; a reload builds a new one and swaps it in one assignment.
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from ._apidef.model import ApiDefinition, FailureMode
from ._apidef.unsupported import coprocess_refusal
from ._auth import AuthServices, build_api_auth
from ._bundles.apply import resolve_bundles
from ._config.model import GatewayConfig
from ._driver_settings import DriverSettings, DriverStore, GrpcSettings, JsSettings
from ._error_body import error_response
from ._exchange import Request, Response
from ._jsvm_folder import with_folder_middleware
from ._metrics import current_metrics
from ._pipeline import ApiPipeline, HookDefaults, build_pipeline
from ._pipeline.walk import ApiRuntime, Upstream
from ._routing import Router, Target, listen_path_key
from ._session.memory import MemorySessionStore
from ._tracecontext import trace_for
from ._upstream.connection import Origin, UpstreamPool
from .errors import PluginDriverError

log = logging.getLogger("trio_gateway")


@attrs.define(eq=False)
class ApiSnapshot:
    router: Router
    runtimes: dict[str, ApiRuntime]
    #: Requests being handled on this snapshot. A reload swaps a new snapshot in, then closes
    #: this one's pipelines once its count reaches 0 (``_reload.py``). ``Gateway.handle`` reads
    #: the snapshot and counts itself in without a checkpoint between, so after the swap the
    #: count only falls.
    in_flight: int = 0
    _drained: trio.Event | None = None

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    async def wait_drained(self) -> None:
        """Return once no request is in flight on this snapshot (the caller bounds the wait)."""
        while self.in_flight:
            self._drained = trio.Event()
            await self._drained.wait()

    async def aclose(self) -> None:
        for runtime in self.runtimes.values():
            if runtime.pipeline is not None:
                with trio.CancelScope(shield=True):
                    await runtime.pipeline.aclose()


def driver_settings(
    config: GatewayConfig,
    *,
    store: DriverStore | None = None,
    shared: Mapping[str, Any] | None = None,
) -> DriverSettings:
    """What every driver is built with: the gateway's hook and coprocess settings, the store
    (sessions, plugin data), and the drivers' shared resources (``plugin_drivers.open_shared``)."""
    hooks, coprocess = config.hooks, config.coprocess
    return DriverSettings(
        timeout=hooks.timeout,
        failure_mode=hooks.failure_mode,
        thread_limit=hooks.thread_limit,
        max_body_bytes=hooks.max_body_bytes,
        blocking_threshold=hooks.blocking_threshold,
        grpc=GrpcSettings(
            enable=coprocess.enable,
            server=coprocess.grpc_server,
            authority=coprocess.grpc_authority,
            tls=coprocess.grpc_tls,
            ca_file=coprocess.grpc_ca_file,
            recv_max_size=coprocess.grpc_recv_max_size,
            send_max_size=coprocess.grpc_send_max_size,
            keepalive_interval=coprocess.grpc_keepalive_interval,
            keepalive_timeout=coprocess.grpc_keepalive_timeout,
        ),
        javascript=JsSettings(
            enable=config.javascript.enable,
            timeout=config.javascript.timeout,
            tyk_js_path=config.javascript.tyk_js_path,
            memory_limit=config.javascript.memory_limit,
            underscore_path=config.javascript.underscore_path,
            disable_virtual_path_blobs=config.javascript.disable_virtual_path_blobs,
            middleware_path=config.bundles.middleware_path,
            ssl_insecure_skip_verify=config.upstream.ssl_insecure_skip_verify,
            ca_file=config.upstream.ca_file,
        ),
        store=store,
        shared=shared if shared is not None else {},
    )


async def build_snapshot(
    apis: Sequence[ApiDefinition],
    config: GatewayConfig,
    *,
    auth: AuthServices | None = None,
    driver_shared: Mapping[str, Any] | None = None,
) -> ApiSnapshot:
    """Compile every API; a plugin load failure marks only that API broken (it answers 503).

    ``auth`` carries the gateway's session store; without it keyed APIs get a private in-memory
    store (fine for one-off snapshots in tests, not for serving). ``driver_shared`` is what
    ``plugin_drivers.open_shared`` yielded (the gRPC channels), passed to every driver.
    """
    if auth is None:
        auth = AuthServices(store=MemorySessionStore(hash_keys=config.storage.hash_keys))
    settings = driver_settings(config, store=auth.store, shared=driver_shared)
    defaults = HookDefaults(
        timeout=config.hooks.timeout,
        failure_mode=FailureMode(config.hooks.failure_mode),
        thread_limit=config.hooks.thread_limit,
    )
    # Plugin bundles first (fetched concurrently): their manifests replace the APIs' hooks.
    resolved = await resolve_bundles(apis, config.bundles)
    apis = resolved.apis
    if config.javascript.enable:
        # Tyk's directory-loaded JavaScript middleware (reads the disk: off the event loop).
        folder = config.bundles.middleware_path
        apis = await trio.to_thread.run_sync(
            lambda: [with_folder_middleware(api, folder) for api in apis]
        )
    runtimes: dict[str, ApiRuntime] = {}
    metrics = current_metrics()
    for api in apis:
        target = Target.from_url(api.target_url)
        pipeline: ApiPipeline | None = None
        broken: str | None = None
        listen_prefix = listen_path_key(api.listen_path)
        refusal = resolved.failures.get(api.api_id) or coprocess_refusal(
            api, coprocess_enabled=config.coprocess.enable
        )
        if refusal is not None:
            broken = refusal
            log.error("API %s (%s) will answer 503: %s", api.api_id, api.source, refusal)
        try:
            # Keyless APIs without plugins or global_rate_limit keep the no-pipeline fast path.
            api_auth = build_api_auth(api, auth, listen_prefix)
            if broken is None and (not api.middleware.is_empty() or not api_auth.is_empty()):
                pipeline = await build_pipeline(
                    api,
                    defaults,
                    builtins=api_auth.builtins,
                    authenticate=api_auth.authenticate,
                    finish=api_auth.finish,
                    driver_settings=settings,
                )
            if pipeline is not None:
                pipeline.metrics = metrics
        except PluginDriverError as exc:
            broken = f"plugin bundle {api.bundle!r}: {exc}" if api.bundle else str(exc)
            log.error("API %s (%s) will answer 503: %s", api.api_id, api.source, broken)
        runtimes[api.api_id] = ApiRuntime(
            api=api,
            target=target,
            origin=Origin(scheme=target.scheme, host=target.host, port=target.port),
            listen_prefix=listen_prefix,
            pipeline=pipeline,
            broken=broken,
            timeout=api.request_timeout or config.proxy_default_timeout,
        )
    return ApiSnapshot(router=Router.build(list(apis)), runtimes=runtimes)


def make_ssl_context(config: GatewayConfig) -> ssl.SSLContext:
    """Client TLS for https upstreams: verified against the system store (or ``ca_file``)."""
    ctx = ssl.create_default_context(cafile=config.upstream.ca_file)
    if config.upstream.ssl_insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: Request IDs are this process's random prefix plus a counter: unique across processes and
#: restarts, and free of a system call per request (os.urandom per request cost ~4% of the
#: keyless proxy's CPU; docs/decisions.md). They are identifiers, not secrets.
_REQUEST_ID_PREFIX = os.urandom(6).hex()
_request_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):012x}"


@attrs.define(eq=False)
class Gateway:
    """Routes each request to its API and proxies it, walking the API's hooks."""

    config: GatewayConfig
    snapshot: ApiSnapshot
    pool: UpstreamPool
    #: The scheme clients reach us with (for X-Forwarded-Proto).
    scheme: str = "http"
    #: The session store and clock every snapshot's built-ins share (reloads pass it on).
    auth: AuthServices | None = None
    #: The drivers' shared resources (the gRPC channels) every snapshot's drivers get.
    driver_shared: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``hooks.max_body_bytes``, read per request on APIs with plugin hooks.
    hook_body_limit: int = attrs.field(init=False)
    #: The upstream step of every request's walk (the pool, X-Forwarded-Proto, body timeout).
    upstream: Upstream = attrs.field(init=False)
    #: ``analytics.enable_detailed_recording`` (with analytics on): every API records raw data.
    record_details: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.hook_body_limit = self.config.hooks.max_body_bytes
        self.upstream = Upstream(
            pool=self.pool, body_timeout=self.config.limits.body_read_timeout, scheme=self.scheme
        )
        analytics = self.config.analytics
        self.record_details = analytics.enable and analytics.enable_detailed_recording

    async def handle(self, request: Request) -> Response:
        request_id = request.header(b"x-request-id")
        request.request_id = request_id.decode("latin-1") if request_id else _new_request_id()
        path = request.path
        if not path.startswith("/"):
            if path == "*":
                return error_response(404, "Not Found")
            # absolute-form (RFC 9112 §3.2.2): keep only the path for routing
            path = urlsplit(path).path or "/"
        host_header = request.header(b"host")
        host = host_header.decode("latin-1") if host_header else None
        snapshot = self.snapshot
        snapshot.in_flight += 1
        try:
            response = await self._dispatch(snapshot, request, path, host, host_header)
        finally:
            snapshot.leave()
        if request.record_detail:
            request.response = response  # its head (and body, if held) go into the record
        return response

    async def _dispatch(
        self,
        snapshot: ApiSnapshot,
        request: Request,
        path: str,
        host: str | None,
        host_header: bytes | None,
    ) -> Response:
        match = snapshot.router.match(host, path)
        if match is None:
            return error_response(404, "Not Found")
        # From here on, hooks and access rules see the normalised path (as routing did).
        request.path = match.path
        runtime = snapshot.runtimes[match.api.api_id]
        request.api_id = runtime.api.api_id
        # Kept, or started and added to the headers: the upstream and every hook see it.
        request.trace = trace_for(request.headers)
        request.record_detail = self.record_details or runtime.api.detailed_recording
        if runtime.broken is not None:
            return error_response(503, "Service Unavailable")
        return await runtime.run(request, host_header, self.upstream, self.hook_body_limit)
