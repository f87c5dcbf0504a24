"""Standard token auth (Tyk's ``AuthKey``): find the key in the request; judge the lookup."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import attrs

from .._apidef.model import AuthLocation
from .._exchange import Request
from .._session.model import Session
from .decision import CONTINUE, Continue, Respond

__all__ = [
    "MISSING_KEY",
    "UNKNOWN_KEY",
    "KeyFound",
    "decide_key",
    "decide_session_found",
    "extract_token",
    "key_extractor",
    "strip_bearer",
]

MISSING_KEY = Respond(status=401, message="Authorization field missing")
UNKNOWN_KEY = Respond(status=403, message="Access to this API has been disallowed")


@attrs.frozen
class KeyFound:
    """A credential was found; the pipeline looks its session up in the store."""

    key: str


def strip_bearer(value: str) -> str:
    """Drop a leading ``Bearer `` (any case), as Tyk does; other schemes pass unchanged."""
    if len(value) > 7 and value[:7].lower() == "bearer ":
        return value[7:]
    return value


def _cookie(request: Request, name: str) -> str:
    raw = request.header(b"cookie")
    if raw is None:
        return ""
    for part in raw.decode("latin-1").split(";"):
        cookie_name, sep, value = part.strip().partition("=")
        if sep and cookie_name == name:
            return value.strip('"')
    return ""


def _query_param(request: Request, name: str) -> str:
    for param, value in parse_qsl(request.query, keep_blank_values=True):
        if param == name:
            return value
    return ""


def extract_token(request: Request, location: AuthLocation) -> str:
    """The credential, or "" when there is none.

    As in Tyk: the header first; a non-empty query parameter (``param_name``, or the header name
    when that is empty) overrides it when enabled; then a non-empty cookie likewise.
    """
    header_name = location.header_name or "Authorization"
    key = ""
    if location.use_header:
        raw = request.header(header_name.lower().encode())
        if raw is not None:
            key = raw.decode("latin-1")
    if location.use_param or location.param_name:
        value = _query_param(request, location.param_name or header_name)
        if value:
            key = value
    if location.use_cookie or location.cookie_name:
        value = _cookie(request, location.cookie_name or header_name)
        if value:
            key = value
    return strip_bearer(key.strip())


def key_extractor(location: AuthLocation) -> Callable[[Request], str]:
    """:func:`extract_token` for ``location``, prepared once per API.

    When the header is the only place a key may be (the common case), the header name is
    lower-cased and encoded here instead of on every request."""
    if not location.use_header or (
        location.use_param or location.param_name or location.use_cookie or location.cookie_name
    ):
        return lambda request: extract_token(request, location)
    header = (location.header_name or "Authorization").lower().encode("latin-1")

    def from_header(request: Request) -> str:
        raw = request.header(header)
        return strip_bearer(raw.decode("latin-1").strip()) if raw is not None else ""

    return from_header


def decide_key(request: Request, location: AuthLocation) -> KeyFound | Respond:
    """401 ``Authorization field missing`` without a credential."""
    key = extract_token(request, location)
    if not key:
        return MISSING_KEY
    return KeyFound(key)


def decide_session_found(session: Session | None) -> Continue | Respond:
    """403 for a key the store does not know."""
    return UNKNOWN_KEY if session is None else CONTINUE
