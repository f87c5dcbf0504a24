"""The outcome of a built-in check: go on, or answer the client now (Tyk's status and message)."""

from __future__ import annotations

import attrs

from .._error_body import error_response
from .._exchange import Response

__all__ = ["Continue", "Decision", "Respond"]

HeaderPairs = tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Continue:
    """Go on. ``headers`` are to be added to the response the client eventually gets."""

    headers: HeaderPairs = ()


@attrs.frozen(kw_only=True)
class Respond:
    """Stop here and answer with Tyk's error body for ``message``."""

    status: int
    message: str
    headers: HeaderPairs = ()

    def to_response(self) -> Response:
        response = error_response(self.status, self.message)
        response.headers.extend((k.lower().encode(), v.encode()) for k, v in self.headers)
        return response


Decision = Continue | Respond

#: Shared instance for the common case (no headers to add).
CONTINUE = Continue()
