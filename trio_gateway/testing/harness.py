"""The harness: an API definition with its plugins, served by the real gateway, in a test.

:func:`open_harness` loads the definition through the gateway's own loader (Classic or OAS, a
file, a folder, or a dict), builds its pipeline with the real driver (whatever
``custom_middleware.driver`` names: the registry builds it as the gateway does), and points the
API at a *recording upstream*. Each :meth:`Harness.request` goes through the real routing,
hooks, built-ins and proxy code; the :class:`~trio_gateway.testing.Result` carries what the client
got, what the upstream received, the session after the request and the hook trace.

Two transports, one API:

* in-process (the default): the request is handed to the gateway's request handler directly and
  the upstream is reached over in-memory streams (the real request writer and response parser
  run on them). No port, no kernel I/O: under ``trio.testing.MockClock(autojump_threshold=0)``
  a hook that sleeps past its deadline costs no wall time.
* ``sockets=True``: the gateway's HTTP server and the upstream listen on 127.0.0.1 (port 0) and
  the harness speaks HTTP/1.1 to them over real TCP connections.

Hooks that run in worker threads (sync Python, Tyk-style, JavaScript) take real time; use the
real clock for them (a mock clock under autojump jumps to the deadline while a thread works).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, final
from urllib.parse import urlsplit, urlunsplit

import attrs
import trio
import trio.testing

from .._apidef.model import ApiDefinition, EndpointPlugin, MiddlewareConfig, PluginRef
from .._apidef.source import (
    load_api_definition_file,
    load_api_definitions,
    parse_definition,
)
from .._apidef.unsupported import COPROCESS_DRIVERS, JS_DRIVERS
from .._auth import AuthServices
from .._config.model import GatewayConfig
from .._error_body import gateway_error_response
from .._exchange import BytesBody, Request, Response
from .._gateway import Gateway, build_snapshot, driver_settings
from .._proto.events import Data, EndOfMessage, ResponseHead
from .._proto.http1 import H1ClientParser
from .._proto.writer import check_request
from .._server import HttpServer
from .._session.memory import MemorySessionStore
from .._session.model import Session
from ..errors import ApiDefinitionError, ConfigError, GatewayError
from ..hooks import HookRef
from ._model import ClientRequest, Result, SeenRequest, echo_upstream
from ._plugin_server import open_plugin_server
from ._recording import RecordingUpstream, UpstreamScript, start_upstream
from ._trace import CURRENT_TRACE, RequestTrace, TracingDriver

__all__ = ["ApiSource", "Harness", "UpstreamScript", "load_apis", "open_harness"]

#: An API definition as the harness takes it: a dict (Classic or OAS), or the path of a file or
#: of a folder of definitions.
ApiSource = Mapping[str, Any] | str | os.PathLike[str]

#: The header the socket transport tags requests with to find their trace; removed before the
#: gateway sees the request, so no hook and no upstream ever sees it.
_TRACE_HEADER = b"x-trio-gateway-testing-trace"


def load_apis(
    source: ApiSource, *, base_dir: str | os.PathLike[str] | None = None
) -> list[ApiDefinition]:
    """Parse ``source`` with the gateway's loader; raises :class:`ConfigError` with its messages.

    Plugin paths of a dict definition are resolved against ``base_dir`` (default: the current
    directory); a file's against its folder, as the gateway does.
    """
    if isinstance(source, Mapping):
        api = parse_definition(source, "<harness definition>")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return [_absolute_plugin_paths(api, base)]
    path = Path(source)
    if path.is_dir():
        report = load_api_definitions(path)
        if report.errors:
            raise ConfigError(report.errors)
        return list(report.apis)
    return [load_api_definition_file(path)]


def _absolute_plugin_paths(api: ApiDefinition, base: Path) -> ApiDefinition:
    def fix(ref: PluginRef) -> PluginRef:
        if ref.path and not os.path.isabs(ref.path):
            return attrs.evolve(ref, path=str((base / ref.path).resolve()))
        return ref

    mw = api.middleware
    middleware = MiddlewareConfig(
        driver=mw.driver,
        pre=tuple(map(fix, mw.pre)),
        auth_check=fix(mw.auth_check) if mw.auth_check is not None else None,
        post_key_auth=tuple(map(fix, mw.post_key_auth)),
        post=tuple(map(fix, mw.post)),
        response=tuple(map(fix, mw.response)),
        endpoints=tuple(
            EndpointPlugin(path=e.path, method=e.method, plugin=fix(e.plugin)) for e in mw.endpoints
        ),
        id_extractor=mw.id_extractor,
        timeout=mw.timeout,
        failure_mode=mw.failure_mode,
        thread_limit=mw.thread_limit,
    )
    return attrs.evolve(api, middleware=middleware)


def _retarget(api: ApiDefinition, netloc: str) -> ApiDefinition:
    """The API pointed at the recording upstream (keeping the target's base path)."""
    parts = urlsplit(api.target_url)
    return attrs.evolve(api, target_url=urlunsplit(("http", netloc, parts.path, "", "")))


def _wire_request(request: ClientRequest) -> Request:
    """The gateway's :class:`Request` for ``request``, as its server would build it."""
    # The server's parser drops the whitespace around a field value (RFC 9110 section 5.5: it is
    # not part of the value); so does this transport, or "Bearer " would reach hooks here only.
    headers = [(k.encode("latin-1"), v.strip(" \t").encode("latin-1")) for k, v in request.headers]
    if not any(k.lower() == b"host" for k, _ in headers):
        headers.insert(0, (b"Host", b"gateway.test"))
    check_request(request.method, request.path, request.query, headers)
    body = request.body
    return Request(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=headers,
        client_addr="127.0.0.1",
        body_source=BytesBody(body) if body else None,
        content_length=len(body) if body else None,
    )


async def _http_over_tcp(
    address: tuple[str, int], request: ClientRequest, trace_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    if not any(k.lower() == b"host" for k, _ in headers):
        headers.insert(0, (b"Host", b"gateway.test"))
    lines = [f"{request.method} {request.target} HTTP/1.1".encode("latin-1")]
    lines += [k + b": " + v for k, v in headers]
    lines.append(_TRACE_HEADER + b": " + trace_id.encode())
    if request.body:
        lines.append(b"Content-Length: %d" % len(request.body))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + request.body
    parser = H1ClientParser()
    status, got, body = 0, [], []
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(data)
        while True:
            event = parser.next_event()
            if event is None:
                chunk = await stream.receive_some()
                if chunk:
                    parser.feed(bytes(chunk))
                else:
                    parser.feed_eof()
                    if parser.next_event() is None:
                        raise trio.BrokenResourceError("the gateway closed the connection")
                continue
            if isinstance(event, ResponseHead):
                status, got = event.status, event.headers
                if request.method == "HEAD" or status in (204, 304):
                    break
            elif isinstance(event, Data):
                body.append(event.data)
            elif isinstance(event, EndOfMessage):
                break
    return status, got, b"".join(body)


@final
@attrs.define(eq=False)
class Harness:
    """A gateway serving the harness's APIs (built by :func:`open_harness`).

    Attributes: ``apis`` (the loaded definitions), ``api`` (the one ``api_id`` chose, else the
    first), ``hooks`` (that API's hooks, as the pipeline built them), ``sockets`` (the
    transport), ``address`` (the gateway's (host, port) with sockets, else None), ``upstream_seen``
    (everything the upstream received so far).
    """

    apis: list[ApiDefinition]
    api: ApiDefinition
    _gateway: Gateway
    _store: MemorySessionStore
    _upstream: RecordingUpstream
    sockets: bool = False
    address: tuple[str, int] | None = None
    #: Bound on one request, on the Trio clock (the API's own deadlines come first).
    request_timeout: float = 60.0
    _traces: dict[str, RequestTrace] = attrs.field(factory=dict)
    _ids: Iterator[int] = attrs.field(factory=itertools.count)

    @property
    def hooks(self) -> tuple[HookRef, ...]:
        pipeline = self._gateway.snapshot.runtimes[self.api.api_id].pipeline
        return pipeline.chain.hooks if pipeline is not None else ()

    @property
    def broken(self) -> str | None:
        """Why the API cannot serve (its plugins failed to load), or None."""
        return self._gateway.snapshot.runtimes[self.api.api_id].broken

    @property
    def upstream_seen(self) -> list[SeenRequest]:
        return self._upstream.seen

    def set_upstream(self, script: UpstreamScript) -> None:
        """Answer further upstream requests with ``script``."""
        self._upstream.script = script

    async def put_session(self, key: str, session: Session) -> None:
        """Store a session (for APIs with token authentication)."""
        await self._store.put_session(key, session)

    async def get_session(self, key: str) -> Session | None:
        return await self._store.get_session(key)

    def path(self, subpath: str = "") -> str:
        """The path under the API's listen path: ``harness.path("items/1")``."""
        listen = self.api.listen_path
        if not listen.endswith("/"):
            listen += "/"
        return listen + subpath.lstrip("/")

    async def request(
        self,
        method: str = "GET",
        path: str | None = None,
        *,
        query: str = "",
        headers: Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]] = (),
        body: bytes | str = b"",
    ) -> Result:
        """Send one request (``path`` defaults to the API's listen path) and return the result."""
        return await self.send(
            ClientRequest(
                method=method,
                path=path if path is not None else self.path(),
                query=query,
                headers=headers,
                body=body.encode() if isinstance(body, str) else body,
            )
        )

    async def send(self, request: ClientRequest) -> Result:
        """Send ``request`` through the gateway and return what came of it."""
        return await self.send_traced(request, RequestTrace())

    async def send_traced(self, request: ClientRequest, trace: RequestTrace) -> Result:
        """:meth:`send`, recording the hook calls into ``trace`` (for the battery)."""
        if self.sockets:
            assert self.address is not None
            trace_id = str(next(self._ids))
            self._traces[trace_id] = trace
            try:
                with trio.fail_after(self.request_timeout):
                    status, raw_headers, body = await _http_over_tcp(
                        self.address, request, trace_id
                    )
            finally:
                del self._traces[trace_id]
        else:
            token = CURRENT_TRACE.set(trace)
            try:
                with trio.fail_after(self.request_timeout):
                    wire = _wire_request(request)
                    response = await _handle(self._gateway, wire)
                    body = b"" if response.bodiless else await response.read_body()
            finally:
                CURRENT_TRACE.reset(token)
            status, raw_headers = response.status, response.headers
            request_id = wire.request_id
        if self.sockets:
            request_id = next(
                (v.decode("latin-1") for k, v in raw_headers if k.lower() == b"x-request-id"), ""
            )
        # The gateway tags what it sends upstream with the request's ID: that finds this
        # request's upstream request among those of requests running at the same time.
        upstream = next(
            (s for s in reversed(self._upstream.seen) if s.header("x-request-id") == request_id),
            None,
        )
        session = await self._store.get_session(trace.session_key) if trace.session_key else None
        return Result(
            status=status,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers),
            body=body,
            upstream=upstream,
            session=session,
            session_key=trace.session_key,
            trace=tuple(trace.calls),
        )

    async def _traced_handle(self, request: Request) -> Response:
        """The socket transport's handler: find the request's trace by its tag, drop the tag."""
        trace_id = request.header(_TRACE_HEADER)
        request.headers = [(k, v) for k, v in request.headers if k.lower() != _TRACE_HEADER]
        trace = self._traces.get(trace_id.decode()) if trace_id else None
        CURRENT_TRACE.set(trace)  # this task serves this one request
        return await self._gateway.handle(request)


async def _handle(gateway: Gateway, request: Request) -> Response:
    """The gateway's handler, with the server's mapping of errors to answers."""
    try:
        return await gateway.handle(request)
    except GatewayError as exc:
        return gateway_error_response(exc)


@asynccontextmanager
async def open_harness(
    source: ApiSource,
    *,
    api_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    upstream: UpstreamScript = echo_upstream,
    sockets: bool = False,
    config: GatewayConfig | None = None,
    sessions: Mapping[str, Session] | None = None,
    request_timeout: float = 60.0,
    grpc_server: str | None = None,
    grpc_command: Sequence[str] | None = None,
) -> AsyncIterator[Harness]:
    """Serve ``source``'s APIs for the block and yield the :class:`Harness`.

    ``api_id`` picks the API of a folder the harness is about (default: the first);
    ``upstream`` scripts the recording upstream (default: a JSON echo); ``sockets`` serves over
    real loopback TCP; ``config`` is the gateway configuration (default: the defaults; the
    coprocess and JSVM switches are turned on when an API needs them); ``sessions`` are stored
    before the first request; ``grpc_server`` is the gRPC plugin server (Tyk's
    ``coprocess_grpc_server``, e.g. ``tcp://127.0.0.1:5555``) for APIs on the ``grpc`` driver;
    with ``grpc_command`` the harness starts that server itself, waits until it listens on
    ``grpc_server``, and stops it at the end.

    Raises :class:`ConfigError` when the definition does not load. An API whose plugins fail to
    load is served as the gateway serves it (503); :attr:`Harness.broken` says why.
    """
    apis = load_apis(source, base_dir=base_dir)
    if not apis:
        raise ConfigError(["no API definition found"])
    chosen = apis[0]
    if api_id is not None:
        matching = [a for a in apis if a.api_id == api_id]
        if not matching:
            raise ApiDefinitionError(str(source), [f"no API with api_id {api_id!r}"])
        chosen = matching[0]
    config = _with_drivers_enabled(config or GatewayConfig(), apis, grpc_server)
    recorder = RecordingUpstream(upstream)
    store = MemorySessionStore()
    for key, session in (sessions or {}).items():
        await store.put_session(key, session)
    if grpc_command is not None and grpc_server is None:
        raise ValueError("grpc_command needs grpc_server: the address the server listens on")
    async with AsyncExitStack() as stack:
        driver_shared: Mapping[str, Any] = {}
        with _clock_stands_still():
            if grpc_command is not None:
                assert grpc_server is not None
                await stack.enter_async_context(open_plugin_server(grpc_command, grpc_server))
            if config.coprocess.grpc_server or config.coprocess.enable:
                # The drivers' shared resources (the gRPC channels), opened as the gateway
                # does, around everything that uses them.
                from plugin_drivers import open_shared

                driver_shared = await stack.enter_async_context(
                    open_shared(driver_settings(config))
                )
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            pool, netloc = await start_upstream(nursery, recorder, sockets=sockets)
            apis = [_retarget(api, netloc) for api in apis]
            chosen = next(a for a in apis if a.api_id == chosen.api_id)
            auth = AuthServices(store=store)
            with _clock_stands_still():
                snapshot = await build_snapshot(
                    apis, config, auth=auth, driver_shared=driver_shared
                )
            for runtime in snapshot.runtimes.values():
                pipeline = runtime.pipeline
                if pipeline is not None and pipeline.driver is not None:
                    pipeline.driver = TracingDriver(pipeline.driver)
            gateway = Gateway(
                config=config,
                snapshot=snapshot,
                pool=pool,
                auth=auth,
                driver_shared=driver_shared,
            )
            harness = Harness(
                apis=apis,
                api=chosen,
                gateway=gateway,
                store=store,
                upstream=recorder,
                sockets=sockets,
                request_timeout=request_timeout,
            )
            if sockets:
                server = HttpServer(handler=harness._traced_handle, access_log=None)
                harness.address = await nursery.start(server.serve, "127.0.0.1", 0)
            try:
                yield harness
            finally:
                with trio.CancelScope(shield=True):
                    await pool.aclose()
                    await snapshot.aclose()
        finally:
            nursery.cancel_scope.cancel()


@contextmanager
def _clock_stands_still() -> Iterator[None]:
    """Under an autojumping mock clock, no jumps for the block.

    Loading imports plugin code in worker threads, and a plugin server starts in another
    process: while they work every task waits, so the clock would jump to the next deadline
    (the load's own bound, a connect timeout) and fire it at once."""
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        yield
        return
    threshold = clock.autojump_threshold
    clock.autojump_threshold = math.inf
    try:
        yield
    finally:
        clock.autojump_threshold = threshold


def _with_drivers_enabled(
    config: GatewayConfig, apis: Sequence[ApiDefinition], grpc_server: str | None
) -> GatewayConfig:
    """``config`` with the switches the APIs' drivers need: Tyk's coprocess switch (and the
    server) for gRPC plugins, ``enable_jsvm`` for JavaScript ones. The harness tests plugins;
    it does not make the operator's choice."""
    drivers = {a.middleware.driver for a in apis}
    coprocess = config.coprocess
    if grpc_server is not None:
        coprocess = attrs.evolve(coprocess, grpc_server=grpc_server)
    if drivers & COPROCESS_DRIVERS or grpc_server is not None:
        coprocess = attrs.evolve(coprocess, enable=True)
    javascript = config.javascript
    if drivers & JS_DRIVERS:
        javascript = attrs.evolve(javascript, enable=True)
    return attrs.evolve(config, coprocess=coprocess, javascript=javascript)
