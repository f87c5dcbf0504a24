"""What the request-path glue shares across all APIs of a gateway: the store and the clock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs

from .._error_body import error_response
from .._exchange import Response
from .._logsummary import FailureLog
from .._session.store import SessionStore, SessionStoreError

__all__ = ["AuthServices", "failure_log", "store_unavailable"]

log = logging.getLogger("trio_gateway.auth")
#: Store failures: one line per API and cause per interval (a Redis outage must not flood).
failure_log = FailureLog(log)


@attrs.frozen(kw_only=True)
class AuthServices:
    """The session store (one per gateway, shared by every API) and how limits are reported."""

    store: SessionStore
    #: Wall-clock seconds (expiry, rate windows, quota periods); tests inject their own.
    clock: Callable[[], float] = time.time
    #: Tyk's ``rate_limit_response_headers: rate_limits``: ``X-RateLimit-*`` from the rate limit
    #: instead of the quota.
    headers_from_rate_limit: bool = False


def store_unavailable(api_id: str, exc: SessionStoreError) -> Response:
    """The answer when the store cannot be reached: 503 with Tyk's error body (keyless APIs
    without limits never touch the store, so they keep serving)."""
    failure_log.warning(
        (api_id, "store", type(exc)), f"session store unavailable for API {api_id}", exc
    )
    return error_response(SessionStoreError.status_hint, SessionStoreError.public_message)
