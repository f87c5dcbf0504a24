"""Custom auth's sessions on the request path (tyk-compat §4.6).

Before the plugin: the ID extractor looks the credential's cached session up, and while its
``id_extractor_deadline`` is in the future the plugin is skipped (:class:`ExtractorCache`).
After it: the session the plugin set is stored (:func:`store_created_session`), with the org
forced to the API's, under the extractor's id when there is one (Tyk's KeyID), else under the key
the plugin gave (Tyk: ``meta_data["token"]``). Stored counters are kept, so limits and quotas
apply to plugin-made sessions exactly as to keys.
"""

from __future__ import annotations

import attrs

from .._error_body import error_response
from .._exchange import Request, Response
from .._pipeline import Exchange
from .._session.model import Session
from .._session.store import SessionStore, SessionStoreError
from .id_extractor import CompiledExtractor, session_id
from .services import AuthServices, store_unavailable

__all__ = ["ExtractorCache", "extracted_session_id", "store_created_session"]

#: Tyk's answer when the extractor finds no credential (400, not 401).
MISSING_CREDENTIAL = (400, "Authorization field missing")

#: Bound on a body read whole for the ``form`` and ``body`` sources.
EXTRACTOR_BODY_LIMIT = 1024 * 1024


async def extracted_session_id(
    request: Request, extractor: CompiledExtractor, org_id: str
) -> str | None:
    """The session id of the request's credential, or None when it has none."""
    body = b""
    if extractor.needs_body:
        body = await request.read_body(EXTRACTOR_BODY_LIMIT)
    header = request.header(extractor.header_name) if extractor.source == "header" else None
    value = extractor.extract(header, request.query, body)
    if not value:
        return None
    return session_id(org_id, value)


@attrs.define(eq=False, slots=True)
class ExtractorCache:
    """The ``authenticate`` step of a custom-auth API with an ID extractor."""

    api_id: str
    org_id: str
    extractor: CompiledExtractor
    services: AuthServices

    async def __call__(self, request: Request, exchange: Exchange) -> Response | None:
        sid = await extracted_session_id(request, self.extractor, self.org_id)
        if sid is None:
            return error_response(*MISSING_CREDENTIAL)
        try:
            session = await self.services.store.get_session(sid)
        except SessionStoreError as exc:
            return store_unavailable(self.api_id, exc)
        if session is not None and session.id_extractor_deadline > self.services.clock():
            exchange.session = session
            exchange.session_key = sid
        return None


async def store_created_session(
    store: SessionStore, key: str, session: Session, org_id: str
) -> None:
    """Write the session custom auth created (Tyk's "schedule update"), keeping its counters."""
    session.org_id = org_id
    await store.put_session(key, session, reset_quota=False)
