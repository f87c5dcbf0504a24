"""Custom authentication: accept bearer tokens listed in ``config_data`` and build a session.

The auth hook creates the session (``ctx.set_session``); later stages read it, and Post hooks may
write ``meta_data``. A request without a known token gets 403 ``Forbidden`` (Tyk's answer when
custom auth produces no session). API definition: examples/apps-plugins/token-auth.json
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
    """Post hook: pass the authenticated user upstream and count the visit in the session."""
    session = ctx.session
    if session is None:
        return
    ctx.request.set_header("X-User", str(session.meta_data.get("user", "")))
    ctx.request.delete_header("Authorization")
    session.meta_data["visits"] = int(session.meta_data.get("visits", 0)) + 1
