"""The built-ins slot on the request path, in Tyk's order (tyk-compat §1.2, rows 17-23).

:class:`KeyChecks` runs on keyed APIs once a session is known: store a session custom auth just
created, then key expiry, access rights (API, then ``allowed_urls`` with methods), and rate limit
plus quota in ONE store call. :class:`ApiRateLimit` is the API-wide ``global_rate_limit``, last,
on keyless APIs too. Decisions are the pure ``_builtins`` modules; this is only their glue.
"""

from __future__ import annotations

import logging

import attrs

from .._builtins import access_rights, api_limit, key_expiry, limits, policies
from .._builtins.decision import Continue, Respond
from .._error_body import error_response
from .._exchange import Request, Response
from .._pipeline import Exchange
from .._ratelimit import LimitOutcome, Limits
from .._session.model import Session
from .._session.store import SessionStoreError
from .custom_auth import extracted_session_id, store_created_session
from .id_extractor import CompiledExtractor
from .services import AuthServices, store_unavailable

__all__ = ["ApiRateLimit", "KeyChecks", "obfuscate_key"]

log = logging.getLogger("trio_gateway.auth")

_LIMITS_CACHE_SIZE = 10_000


def obfuscate_key(key: str) -> str:
    """A key as logs may show it (Tyk's style: only its last four characters)."""
    return "****" + key[-4:] if len(key) > 4 else "****"


@attrs.define(eq=False, slots=True)
class KeyChecks:
    """Expiry, access rights, rate limit and quota for the request's session."""

    api_id: str
    org_id: str
    #: The listen path as routing sees it (``allowed_urls`` also match the path under it).
    listen_prefix: str
    services: AuthServices
    #: Custom auth's extractor: a created session is stored under its id (Tyk's KeyID).
    extractor: CompiledExtractor | None = None
    #: The store hands out its own session objects (token auth on an API without hooks): the
    #: limits derived from one are remembered until the store replaces it.
    stable_sessions: bool = False
    #: The API's ``disable_rate_limit`` / ``disable_quota`` turned off (Tyk skips that limit).
    rate_limit: bool = True
    quota: bool = True
    #: session key -> (the session object the limits came from, its limits for this API).
    _limits: dict[str, tuple[Session, Limits]] = attrs.field(factory=dict, init=False)

    async def __call__(self, request: Request, exchange: Exchange) -> Response | None:
        session = exchange.session
        if session is None:  # cannot happen after auth; refuse rather than let it through
            return error_response(403, "Forbidden")
        if session.apply_policies or session.apply_policy_id:
            return self._refuse_policies(session, exchange.session_key)
        services = self.services
        try:
            if exchange.session_created:
                await self._store_created(request, exchange)
            now = services.clock()
            verdict = key_expiry.decide(session, now)
            if isinstance(verdict, Continue):
                verdict = self._access(request, exchange)
            if not isinstance(verdict, Continue):
                return verdict.to_response()
            wanted = self._limits_for(session, exchange.session_key)
            if not (wanted.has_rate or wanted.has_quota):
                return None
            result = await services.store.consume(exchange.session_key, wanted, now=now)
        except SessionStoreError as exc:
            return store_unavailable(self.api_id, exc)
        if result.outcome is LimitOutcome.ALLOWED:
            # The common case, straight to header bytes (no decision object, no re-encoding).
            exchange.response_headers += limits.rate_limit_header_bytes(
                result, from_rate_limit=services.headers_from_rate_limit
            )
            return None
        verdict = limits.decide(result, from_rate_limit=services.headers_from_rate_limit)
        assert isinstance(verdict, Respond)
        return verdict.to_response()

    def _refuse_policies(self, session: Session, key: str) -> Response:
        verdict = policies.decide(session)
        assert isinstance(verdict, Respond)
        log.warning(
            "API %s: refused key %s with 403: it names policies %s (apply_policies), which "
            "trio-gateway does not apply yet; give the key its own access_rights and limits",
            self.api_id,
            session.alias or obfuscate_key(key),
            ", ".join(policies.named_policies(session)),
        )
        return verdict.to_response()

    def _limits_for(self, session: Session, key: str) -> Limits:
        if not self.stable_sessions:
            return limits.limits_for(
                session, self.api_id, rate_limit=self.rate_limit, quota=self.quota
            )
        cached = self._limits.get(key)
        if cached is not None and cached[0] is session:  # `is`: a replaced session misses
            return cached[1]
        wanted = limits.limits_for(
            session, self.api_id, rate_limit=self.rate_limit, quota=self.quota
        )
        if len(self._limits) >= _LIMITS_CACHE_SIZE:
            self._limits.clear()  # crude bound; entries are cheap to derive again
        self._limits[key] = (session, wanted)
        return wanted

    def _access(self, request: Request, exchange: Exchange) -> Continue | Respond:
        assert exchange.session is not None
        verdict = access_rights.decide(
            exchange.session,
            api_id=self.api_id,
            version=None,
            path=request.path,
            method=request.method,
        )
        prefix = self.listen_prefix
        if verdict is access_rights.RESOURCE_DENIED and prefix and request.path.startswith(prefix):
            # Tyk checks allowed_urls against the path under the listen path as well.
            verdict = access_rights.decide(
                exchange.session,
                api_id=self.api_id,
                version=None,
                path=request.path[len(prefix) :] or "/",
                method=request.method,
            )
        return verdict

    async def _store_created(self, request: Request, exchange: Exchange) -> None:
        assert exchange.session is not None
        if self.extractor is not None:
            sid = await extracted_session_id(request, self.extractor, self.org_id)
            if sid is not None:
                exchange.session_key = sid
        await store_created_session(
            self.services.store, exchange.session_key, exchange.session, self.org_id
        )
        exchange.session_created = False
        exchange.meta_data_changed = False  # written with the session


@attrs.define(eq=False, slots=True)
class ApiRateLimit:
    """The API-wide ``global_rate_limit`` (429 ``API Rate Limit Exceeded``)."""

    api_id: str
    key: str
    limits: Limits
    services: AuthServices

    async def __call__(self, request: Request, exchange: Exchange) -> Response | None:
        services = self.services
        try:
            result = await services.store.consume(self.key, self.limits, now=services.clock())
        except SessionStoreError as exc:
            return store_unavailable(self.api_id, exc)
        verdict = api_limit.decide(result)
        return None if isinstance(verdict, Continue) else verdict.to_response()
