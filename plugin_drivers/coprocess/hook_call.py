"""One coprocess hook call on the gateway's side, for every driver that speaks the ``Object``.

:func:`encode_call` reads what a call's ``Object`` carries (the request body, a Response hook's
body) and encodes it; the driver gets it answered (over gRPC, or by Tyk-style Python code
editing it in place); :func:`apply_reply` applies the answer to the call's exchange with Tyk's
rules per stage (:mod:`.wire`): Response hooks change the response, custom auth sets the
session, every other stage changes the request and may answer the client.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

import trio

from trio_gateway.drivers import (
    CONTINUE,
    Decision,
    HookContext,
    HookRef,
    Respond,
    Response,
    Stage,
)

from . import object_encoder, wire
from .proto import coprocess_object_pb2 as object_pb

__all__ = ["OFF_LOOP_ENCODE", "apply_reply", "encode_call", "read_response_body"]

#: Calls whose bodies add up to this much encode their ``Object`` in a worker thread.
OFF_LOOP_ENCODE: Final = 1 << 20


async def encode_call(hook: HookRef, ctx: HookContext, spec: bytes) -> bytes:
    """The ``Object`` Tyk sends for this call, encoded (``spec``: the API's encoded spec map,
    :func:`object_encoder.encode_spec`, or ``b""`` to leave it out). Reads the request body
    (and a Response hook's body) whole first."""
    request = ctx.raw_request
    body = await request.read_body()
    response = ctx.raw_response if hook.stage is Stage.RESPONSE else None
    response_body = b"" if response is None else await read_response_body(response)
    encode: Callable[[], bytes] = functools.partial(
        object_encoder.encode_object,
        stage=hook.stage,
        hook_name=hook.name,
        api=ctx.api,
        request=request,
        body=body,
        raw_body_only=hook.plugin.raw_body_only,
        session=ctx.raw_session,
        response=response,
        response_body=response_body,
        spec=spec,
    )
    if len(body) + len(response_body) < OFF_LOOP_ENCODE:
        return encode()
    # Megabytes of body: the copies and the UTF-8 check run in a thread, not on the loop.
    return await trio.to_thread.run_sync(encode)


async def read_response_body(response: Response) -> bytes:
    """The upstream response's whole body (read once, then kept on the response)."""
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


def apply_reply(reply: object_pb.Object, ctx: HookContext) -> Decision:
    """Apply the answered ``Object`` of a call made for ``ctx`` (raises :class:`wire.WireError`
    for a reply Tyk would fail with 500 ``Middleware error``)."""
    stage = ctx.stage
    response = ctx.raw_response
    if stage is Stage.RESPONSE and response is not None:
        # The response is unchanged since the call was built: its headers are the ones sent.
        wire.apply_response_reply(reply, response, wire.first_values(response.headers))
        return CONTINUE
    request = ctx.raw_request
    if stage is Stage.AUTH:
        result = wire.apply_auth_reply(reply, request, ctx.api.org_id)
        if isinstance(result, Respond):
            return result
        ctx.set_session(result.token, result.session)
        return CONTINUE
    return wire.apply_request_reply(reply, request)
