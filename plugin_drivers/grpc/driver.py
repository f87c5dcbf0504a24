"""The ``grpc`` driver: Tyk's coprocess protocol (``coprocess.Dispatcher/Dispatch``) over HTTP/2.

One gRPC server per gateway, as in Tyk (``coprocess_options.coprocess_grpc_server``): the gateway
opens the shared channels once, in its root nursery, with :func:`open_shared` (the driver's entry in
``plugin_drivers.SHARED``) and hands them to every API's :class:`GrpcDriver` through
``DriverSettings.shared`` (:func:`create`); every API's driver uses the default channel. An API may
name its own server with ``config_data.trio_gateway_grpc_server`` (our extension; Tyk passes
``config_data`` to plugins and ignores the key): the first API naming a target opens a channel for
it in the same nursery, and APIs naming the same target share it. (A driver may also be given a
channel directly.)

Failures map to the pipeline's kinds: server unreachable -> *unavailable*
(:class:`~trio_gateway.errors.PluginDriverError`), a deadline the server reports -> *timeout*
(:class:`~trio_gateway.errors.HookTimeout`), anything else (gRPC error status, an unparseable or
inapplicable reply) -> *error*. The pipeline's own deadline arrives as a cancel: the client resets
the stream and ``trio.Cancelled`` propagates.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, Final

import attrs
import google.protobuf.message
import trio

from trio_gateway.drivers import (
    ApiDefinition,
    ApiInfo,
    Decision,
    DriverSettings,
    FailureLog,
    HookContext,
    HookError,
    HookRef,
    HookTimeout,
    PluginDriverError,
    Request,
)

from ..coprocess import object_encoder, wire
from ..coprocess.hook_call import OFF_LOOP_ENCODE, apply_reply, encode_call
from ..coprocess.proto import coprocess_object_pb2 as object_pb
from .client import (
    DEFAULT_RECV_MAX,
    GrpcChannel,
    GrpcDeadlineExceeded,
    GrpcError,
    GrpcUnavailable,
    Keepalive,
    start_grpc_channel,
)

__all__ = [
    "DISPATCH_EVENT_METHOD",
    "DISPATCH_METHOD",
    "SERVER_OVERRIDE_KEY",
    "GrpcChannels",
    "GrpcDriver",
    "create",
    "open_shared",
    "open_shared_grpc_channel",
]

#: Replies this large are parsed in a worker thread (calls this large are encoded in one).
OFF_LOOP_PARSE: Final = OFF_LOOP_ENCODE

DISPATCH_METHOD: Final = "/coprocess.Dispatcher/Dispatch"
DISPATCH_EVENT_METHOD: Final = "/coprocess.Dispatcher/DispatchEvent"
#: ``config_data`` key naming an API's own gRPC server (same syntax as coprocess_grpc_server).
SERVER_OVERRIDE_KEY: Final = "trio_gateway_grpc_server"
#: Bound on one DispatchEvent call (events are fire-and-log, as in Tyk).
EVENT_TIMEOUT: Final = 2.0

log = logging.getLogger("trio_gateway.grpc")
#: Event failures: one line per API, event and cause per interval (a server outage must not flood).
_failure_log = FailureLog(log)


@attrs.define(eq=False)
class GrpcChannels:
    """The gateway's gRPC channels: the default one (if configured) and per-API overrides.

    Channels live in ``nursery`` (the gateway's) and close with it; all share the same options.
    """

    nursery: trio.Nursery
    default: GrpcChannel | None = None
    authority: str = ""
    ssl_context: ssl.SSLContext | None = None
    recv_max: int = DEFAULT_RECV_MAX
    send_max: int = 0
    keepalive: Keepalive | None = None
    _by_target: dict[str, GrpcChannel] = attrs.field(factory=dict)

    async def channel_for(self, target: str) -> GrpcChannel:
        """The channel to ``target``, opened on first use (``ValueError`` for a bad target)."""
        channel = self._by_target.get(target)
        if channel is None:
            channel = await start_grpc_channel(
                self.nursery,
                target,
                # The configured authority names the default server, not an API's own one.
                authority="",
                ssl_context=self.ssl_context,
                recv_max=self.recv_max,
                send_max=self.send_max,
                keepalive=self.keepalive,
            )
            self._by_target[target] = channel
        return channel

    async def aclose(self) -> None:
        for channel in self._by_target.values():
            await channel.aclose()


@asynccontextmanager
async def open_shared_grpc_channel(
    target: str,
    *,
    authority: str = "",
    ssl_context: ssl.SSLContext | None = None,
    recv_max: int = DEFAULT_RECV_MAX,
    send_max: int = 0,
    keepalive: Keepalive | None = None,
) -> AsyncIterator[GrpcChannels]:
    """Open the gateway's gRPC channels for the block; drivers built with them use them.

    ``target`` is the default server (``""``: none; then only APIs naming their own server can
    use gRPC plugins).
    """
    async with trio.open_nursery() as nursery:
        channels = GrpcChannels(
            nursery=nursery,
            authority=authority,
            ssl_context=ssl_context,
            recv_max=recv_max,
            send_max=send_max,
            keepalive=keepalive,
        )
        try:
            if target:
                channels.default = await start_grpc_channel(
                    nursery,
                    target,
                    authority=authority,
                    ssl_context=ssl_context,
                    recv_max=recv_max,
                    send_max=send_max,
                    keepalive=keepalive,
                )
            yield channels
        finally:
            if channels.default is not None:
                await channels.default.aclose()
            await channels.aclose()


def open_shared(settings: DriverSettings) -> AbstractAsyncContextManager[GrpcChannels] | None:
    """The gateway's gRPC channels from ``coprocess_options`` (``plugin_drivers.SHARED``), or
    None when neither a server nor ``enable_coprocess`` is configured."""
    grpc = settings.grpc
    if not grpc.wanted:
        return None
    return open_shared_grpc_channel(
        grpc.server,
        authority=grpc.authority,
        ssl_context=ssl.create_default_context(cafile=grpc.ca_file) if grpc.tls else None,
        recv_max=grpc.recv_max_size,
        send_max=grpc.send_max_size,
        keepalive=Keepalive(interval=grpc.keepalive_interval, timeout=grpc.keepalive_timeout),
    )


def create(settings: DriverSettings) -> GrpcDriver:
    """The driver factory (``plugin_drivers.DRIVERS``): one driver per API, on the shared
    channels the gateway opened (:func:`open_shared`)."""
    channels = settings.shared.get(GrpcDriver.name)
    return GrpcDriver(channels=channels if isinstance(channels, GrpcChannels) else None)


def _trace_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The request's W3C trace context as call metadata (``traceparent``, ``tracestate``), so
    a plugin server's own tracing joins the request's trace."""
    trace = request.trace
    if trace is None:
        return ()
    parent = ("traceparent", trace.header.decode("ascii"))
    state = trace.tracestate
    if state is not None and state.isascii():
        return (parent, ("tracestate", state.decode("ascii")))
    return (parent,)


def server_override(api: ApiDefinition) -> str:
    """The API's own gRPC server from ``config_data`` (``""``: use the gateway's)."""
    data = api.config_data or {}
    value = data.get(SERVER_OVERRIDE_KEY, "")
    return value if isinstance(value, str) else ""


@attrs.define(eq=False)
class GrpcDriver:
    """Calls an API's hooks on the gateway's coprocess gRPC server."""

    name: ClassVar[str] = "grpc"

    channel: GrpcChannel | None = None
    #: The gateway's channels (the default server and per-API ones), when it opened them.
    channels: GrpcChannels | None = None
    #: ``custom_middleware_bundle`` of the API, for ``spec["bundle_hash"]`` (md5 of "" if none).
    bundle: str = ""
    _org_id: str = ""
    _api_id: str = ""
    #: The encoded ``spec`` map, for the API it was made from (encoded once, not per call).
    _spec: bytes | None = None
    _spec_api: ApiInfo | None = None

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        self._org_id, self._api_id = api.org_id, api.api_id
        if self.channel is not None:
            return
        channels = self.channels
        override = server_override(api)
        if override and channels is not None:
            try:
                self.channel = await channels.channel_for(override)
            except ValueError as exc:
                raise PluginDriverError(
                    f"API {api.api_id!r}: config_data.{SERVER_OVERRIDE_KEY}: {exc}"
                ) from exc
            return
        if channels is not None:
            self.channel = channels.default
        if self.channel is None:
            raise PluginDriverError(
                f"API {api.api_id!r} uses gRPC plugins but no gRPC server is configured "
                "(coprocess_options.coprocess_grpc_server)"
            )

    async def aclose(self) -> None:
        # The channel is the gateway's (shared by every API): closing one API leaves it open.
        self.channel = None

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        channel = self.channel
        if channel is None:
            raise PluginDriverError("gRPC driver is not loaded")
        spec = self._spec
        if spec is None or ctx.api is not self._spec_api:
            spec = self._spec = object_encoder.encode_spec(ctx.api, self.bundle)
            self._spec_api = ctx.api
        message = await encode_call(hook, ctx, spec)
        request = ctx.raw_request
        try:
            data = await channel.unary_unary(
                DISPATCH_METHOD, message, metadata=_trace_metadata(request)
            )
        except GrpcUnavailable as exc:
            raise PluginDriverError(f"gRPC plugin server unavailable: {exc.message}") from exc
        except GrpcDeadlineExceeded as exc:
            raise HookTimeout(f"gRPC plugin {hook.label}: {exc.message}") from exc
        except GrpcError as exc:
            raise HookError(f"gRPC plugin {hook.label} failed: {exc}") from exc
        try:
            if len(data) < OFF_LOOP_PARSE:
                reply = object_pb.Object.FromString(data)
            else:
                reply = await trio.to_thread.run_sync(object_pb.Object.FromString, data)
            return apply_reply(reply, ctx)
        except (google.protobuf.message.DecodeError, wire.WireError) as exc:
            raise HookError(f"gRPC plugin {hook.label} sent an unusable reply: {exc}") from exc

    async def emit_event(
        self, name: str, meta: Mapping[str, Any], *, handler_name: str = ""
    ) -> bool:
        """Send a gateway event to the server's ``DispatchEvent`` (Tyk's ``cp_dynamic_handler``).

        As in Tyk, failures are only logged: returns whether the server took the event. Bounded
        by :data:`EVENT_TIMEOUT`.
        """
        channel = self.channel
        if channel is None:
            return False
        payload = wire.event_payload(
            name,
            meta,
            handler_name=handler_name,
            api_id=self._api_id,
            org_id=self._org_id,
            timestamp=dt.datetime.now(dt.UTC).isoformat(),
        )
        message = object_pb.Event(payload=payload).SerializeToString()
        with trio.move_on_after(EVENT_TIMEOUT):
            try:
                await channel.unary_unary(DISPATCH_EVENT_METHOD, message)
            except GrpcError as exc:
                _failure_log.warning(
                    (self._api_id, name, type(exc)),
                    f"gRPC event {name} for API {self._api_id} failed",
                    exc,
                )
                return False
            return True
        _failure_log.warning(
            (self._api_id, name, "timeout"), f"gRPC event {name} for API {self._api_id} timed out"
        )
        return False
