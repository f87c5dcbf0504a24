"""Access rights (Tyk's ``AccessRightsCheck``) and granular URL access (``GranularAccess``)."""

from __future__ import annotations

import functools
import re

from .._session.model import Session
from .decision import CONTINUE, Continue, Respond

__all__ = ["API_DENIED", "RESOURCE_DENIED", "decide"]

API_DENIED = Respond(status=403, message="Access to this API has been disallowed")
RESOURCE_DENIED = Respond(status=403, message="Access to this resource has been disallowed")


@functools.lru_cache(maxsize=1024)
def _pattern(url: str) -> re.Pattern[str] | None:
    try:
        return re.compile(url)
    except re.error:
        # Tyk skips a pattern that does not compile; it can then never grant access.
        return None


def decide(
    session: Session, *, api_id: str, version: str | None, path: str, method: str
) -> Continue | Respond:
    """``version`` is the request's API version name, or None for an unversioned API.

    An empty ``access_rights`` allows every API. ``allowed_urls`` patterns are regular
    expressions searched anywhere in ``path`` (Go's ``MatchString``); the method must be listed.
    """
    if not session.access_rights:
        return CONTINUE
    rights = session.access_rights.get(api_id)
    if rights is None:
        return API_DENIED
    if version is not None and version not in rights.versions:
        return API_DENIED
    if not rights.allowed_urls:
        return CONTINUE
    for allowed in rights.allowed_urls:
        pattern = _pattern(allowed.url)
        if pattern is not None and pattern.search(path) and method in allowed.methods:
            return CONTINUE
    return RESOURCE_DENIED
