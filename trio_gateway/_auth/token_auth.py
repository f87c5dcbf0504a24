"""Standard token auth on the request path (Tyk's ``AuthKey``): find the key, load its session."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .._apidef.model import AuthLocation
from .._builtins import token
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
    #: No plugin will see the session (the API has no hooks): the store may hand out its own
    #: object instead of a per-request copy (``SessionStore.get_session``).
    shared_session: bool = False
    _extract_key: Callable[[Request], str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._extract_key = token.key_extractor(self.location)

    async def __call__(self, request: Request, exchange: Exchange) -> Response | None:
        key = self._extract_key(request)
        if not key:
            return token.MISSING_KEY.to_response()
        try:
            session = await self.services.store.get_session(key, shared=self.shared_session)
        except SessionStoreError as exc:
            return store_unavailable(self.api_id, exc)
        if session is None:
            return token.UNKNOWN_KEY.to_response()
        exchange.session = session
        exchange.session_key = key
        return None
