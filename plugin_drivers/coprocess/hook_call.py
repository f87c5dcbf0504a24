"""One coprocess hook call on the gateway's side, for every driver that speaks the ``Object``.

A driver gets the ``Object`` answered (over gRPC, or by Tyk-style Python code editing it in
place); :func:`apply_reply` applies it to the call's exchange with Tyk's rules per stage
(:mod:`.wire`): Response hooks change the response, custom auth sets the session, every other
stage changes the request and may answer the client. :func:`read_response_body` gets the
upstream's body whole for a Response hook.
"""

from __future__ import annotations

from trio_gateway.drivers import CONTINUE, Decision, HookContext, Respond, Response, Stage

from . import wire
from .proto import coprocess_object_pb2 as object_pb

__all__ = ["apply_reply", "read_response_body"]


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
