"""Standard token auth on the request path (Tyk's ``AuthKey``): find the key, load its session."""

from __future__ import annotations

import attrs

from .._apidef.model import AuthLocation
from .._builtins import token
from .._builtins.decision import Respond
from .._exchange import Request, Response
from .._pipeline import Exchange
from .._session.store import SessionStoreError
from .services import AuthServices, store_unavailable

__all__ = ["TokenAuth"]


@attrs.define(eq=False, slots=True)
class TokenAuth:
    """The ``authenticate`` step of an API with standard auth: 401 without a key, 403 for a key
    the store does not know, else the session goes on the exchange."""

    api_id: str
    location: AuthLocation
    services: AuthServices

    async def __call__(self, request: Request, exchange: Exchange) -> Response | None:
        found = token.decide_key(request, self.location)
        if isinstance(found, Respond):
            return found.to_response()
        try:
            session = await self.services.store.get_session(found.key)
        except SessionStoreError as exc:
            return store_unavailable(self.api_id, exc)
        if session is None:
            return token.UNKNOWN_KEY.to_response()
        exchange.session = session
        exchange.session_key = found.key
        return None
