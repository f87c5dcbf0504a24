"""The ``grpc`` driver: Tyk's coprocess protocol (``coprocess.Dispatcher/Dispatch``) over h2.

One gRPC server per gateway, as in Tyk (``coprocess_options.coprocess_grpc_server``): the gateway
opens the shared channel once, in its root nursery, with :func:`open_shared_grpc_channel`; every
API's :class:`GrpcDriver` uses it. (A driver may also be given a channel directly.)

Failures map to the pipeline's kinds: server unreachable -> *unavailable*
(:class:`~trio_gateway.errors.PluginDriverError`), a deadline the server reports -> *timeout*
(:class:`~trio_gateway.errors.HookTimeout`), anything else (gRPC error status, an unparseable or
inapplicable reply) -> *error*. The pipeline's own deadline arrives as a cancel: the client resets
the stream and ``trio.Cancelled`` propagates.
"""

from __future__ import annotations

import contextvars
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar, Final

import attrs
import google.protobuf.message

from trio_gateway._exchange import Response
from trio_gateway.errors import HookError, HookTimeout, PluginDriverError
from trio_gateway.hooks import (
    CONTINUE,
    ApiDefinition,
    Decision,
    HookContext,
    HookRef,
    Respond,
    Stage,
)

from . import wire
from .client import (
    DEFAULT_RECV_MAX,
    GrpcChannel,
    GrpcDeadlineExceeded,
    GrpcError,
    GrpcUnavailable,
    open_grpc_channel,
)
from .proto import coprocess_object_pb2 as object_pb

__all__ = ["DISPATCH_METHOD", "GrpcDriver", "open_shared_grpc_channel"]

DISPATCH_METHOD: Final = "/coprocess.Dispatcher/Dispatch"

_shared_channel: contextvars.ContextVar[GrpcChannel | None] = contextvars.ContextVar(
    "trio_gateway_grpc_channel", default=None
)


@asynccontextmanager
async def open_shared_grpc_channel(
    target: str,
    *,
    authority: str = "",
    ssl_context: ssl.SSLContext | None = None,
    recv_max: int = DEFAULT_RECV_MAX,
    send_max: int = 0,
) -> AsyncIterator[GrpcChannel]:
    """Open the gateway's gRPC channel for the block; drivers created inside it use it.

    Tasks started inside the block (the server, reloads) inherit it (a context variable).
    """
    async with open_grpc_channel(
        target, authority=authority, ssl_context=ssl_context, recv_max=recv_max, send_max=send_max
    ) as channel:
        token = _shared_channel.set(channel)
        try:
            yield channel
        finally:
            _shared_channel.reset(token)


@attrs.define(eq=False)
class GrpcDriver:
    """Calls an API's hooks on the gateway's coprocess gRPC server."""

    name: ClassVar[str] = "grpc"

    channel: GrpcChannel | None = None
    #: ``custom_middleware_bundle`` of the API, for ``spec["bundle_hash"]`` (md5 of "" if none).
    bundle: str = ""
    _org_id: str = ""

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        if self.channel is None:
            self.channel = _shared_channel.get()
        if self.channel is None:
            raise PluginDriverError(
                f"API {api.api_id!r} uses gRPC plugins but no gRPC server is configured "
                "(coprocess_options.coprocess_grpc_server)"
            )
        self._org_id = api.org_id

    async def aclose(self) -> None:
        # The channel is the gateway's (shared by every API): closing one API leaves it open.
        self.channel = None

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        channel = self.channel
        if channel is None:
            raise PluginDriverError("gRPC driver is not loaded")
        stage = hook.stage
        request = ctx.raw_request
        body = await request.read_body()
        response = ctx.raw_response if stage is Stage.RESPONSE else None
        response_body = b""
        if response is not None:
            response_body = await _read_response_body(response)
        obj = wire.build_object(
            stage=stage,
            hook_name=hook.name,
            api=ctx.api,
            request=request,
            body=body,
            raw_body_only=hook.plugin.raw_body_only,
            session=ctx.raw_session,
            response=response,
            response_body=response_body,
            bundle=self.bundle,
        )
        try:
            data = await channel.unary_unary(DISPATCH_METHOD, obj.SerializeToString())
        except GrpcUnavailable as exc:
            raise PluginDriverError(f"gRPC plugin server unavailable: {exc.message}") from exc
        except GrpcDeadlineExceeded as exc:
            raise HookTimeout(f"gRPC plugin {hook.label}: {exc.message}") from exc
        except GrpcError as exc:
            raise HookError(f"gRPC plugin {hook.label} failed: {exc}") from exc
        try:
            reply = object_pb.Object.FromString(data)
            if response is not None:
                wire.apply_response_reply(reply, response, dict(obj.response.headers))
                return CONTINUE
            if stage is Stage.AUTH:
                result = wire.apply_auth_reply(reply, request, self._org_id)
                if isinstance(result, Respond):
                    return result
                ctx.set_session(result.token, result.session)
                return CONTINUE
            return wire.apply_request_reply(reply, request)
        except (google.protobuf.message.DecodeError, wire.WireError) as exc:
            raise HookError(f"gRPC plugin {hook.label} sent an unusable reply: {exc}") from exc


async def _read_response_body(response: Response) -> bytes:
    if response.body_bytes is not None:
        return response.body_bytes
    parts: list[bytes] = []
    source = response.body_source
    if source is not None:
        while chunk := await source.receive_some():
            parts.append(chunk)
    response.body_bytes = b"".join(parts)
    response.body_source = None
    return response.body_bytes
