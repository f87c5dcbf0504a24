"""The API-wide rate limit (Tyk's ``RateLimitForAPI``, ``global_rate_limit``); keyless too."""

from __future__ import annotations

from .._apidef.model import ApiDefinition
from .._ratelimit import LimitResult, Limits
from .decision import CONTINUE, Continue, Respond

__all__ = ["API_RATE_LIMITED", "api_limit_key", "api_limits", "decide"]

API_RATE_LIMITED = Respond(status=429, message="API Rate Limit Exceeded")


def api_limits(api: ApiDefinition) -> Limits | None:
    """The limits to ``consume`` under :func:`api_limit_key`, or None when there is none."""
    limit = api.global_rate_limit
    if limit.rate <= 0 or limit.per <= 0 or api.disable_rate_limit:  # Tyk: off with the key's
        return None
    return Limits(rate=limit.rate, per=limit.per)


def api_limit_key(api: ApiDefinition) -> str:
    """The store key of the API's counters (Tyk's name; a client key spelled the same way would
    share them, as in Tyk)."""
    return f"apilimiter-{api.org_id}{api.api_id}"


def decide(result: LimitResult) -> Continue | Respond:
    return CONTINUE if result.allowed else API_RATE_LIMITED
