"""Custom authentication: accept bearer tokens listed in ``config_data`` and build a session.

The auth hook creates the session (``ctx.set_session``); later stages read it, and Post hooks may
write ``meta_data``, which is stored with the session. A request without a known token gets 403
``{"error": "Key not authorised"}``. API definition: examples/apps-plugins/token-auth.json

The auth hook builds the session anew on every request (it cannot read the stored one), so what
the Post hook writes describes the latest request only: here, the path the key last asked for.
A count across requests needs a session that outlives the request: give the API an ID extractor
(``custom_middleware.id_extractor``) and set ``id_extractor_deadline``, and the gateway serves the
stored session, without calling the auth hook, until then (docs/python-plugins.md).
"""

from __future__ import annotations

from trio_gateway.hooks import HookContext, Respond, Session


async def authenticate(ctx: HookContext) -> Respond | None:
    header = ctx.request.get_header("Authorization", "") or ""
    scheme, _, token = header.partition(" ")
    users = (ctx.api.config_data or {}).get("tokens", {})
    if scheme.lower() != "bearer" or token not in users:
        return Respond(
            status=403,
            headers={"Content-Type": "application/json"},
            body='{"error": "Key not authorised"}',
        )
    user = users[token]
    session = Session(rate=100, per=60, meta_data={"user": user})
    ctx.set_session(token, session)
    return None


async def tag_user(ctx: HookContext) -> None:
    """Post hook: pass the authenticated user upstream; note in the session the path asked for
    (stored after the request: the admin API's ``GET /tyk/keys/<token>`` shows it)."""
    session = ctx.session
    if session is None:
        return
    ctx.request.set_header("X-User", str(session.meta_data.get("user", "")))
    ctx.request.delete_header("Authorization")
    session.meta_data["last_path"] = ctx.request.path
