"""Per-key rate limit and quota (Tyk's ``RateLimitAndQuotaCheck``) and ``X-RateLimit-*``.

The pipeline calls :func:`limits_for`, hands the result to ``SessionStore.consume`` (one store
call), then :func:`decide` on what came back.
"""

from __future__ import annotations

import math

import attrs

from .._ratelimit import LimitOutcome, LimitResult, Limits
from .._session.model import Session
from .decision import Continue, Respond

__all__ = [
    "QUOTA_EXCEEDED",
    "RATE_LIMITED",
    "decide",
    "limits_for",
    "rate_limit_header_bytes",
    "rate_limit_headers",
]

RATE_LIMITED = Respond(status=429, message="Rate Limit Exceeded")
QUOTA_EXCEEDED = Respond(status=403, message="Quota exceeded")


def limits_for(
    session: Session, api_id: str, *, rate_limit: bool = True, quota: bool = True
) -> Limits:
    """The session's limits for ``api_id``: a non-empty per-API ``limit`` wins, with its own
    counters; otherwise the session-level numbers. ``rate_limit``/``quota`` False leave that
    limit out (the API's ``disable_rate_limit``/``disable_quota``)."""
    limits = _session_limits(session, api_id)
    if not (rate_limit and quota):
        limits = attrs.evolve(
            limits,
            rate=limits.rate if rate_limit else 0,
            per=limits.per if rate_limit else 0,
            quota_max=limits.quota_max if quota else 0,
        )
    return limits


def _session_limits(session: Session, api_id: str) -> Limits:
    rights = session.access_rights.get(api_id)
    if rights is not None and rights.limit is not None and not rights.limit.is_empty():
        limit = rights.limit
        return Limits(
            rate=limit.rate,
            per=limit.per,
            quota_max=limit.quota_max,
            quota_renewal_rate=limit.quota_renewal_rate,
            bucket=api_id,
        )
    return Limits(
        rate=session.rate,
        per=session.per,
        quota_max=session.quota_max,
        quota_renewal_rate=session.quota_renewal_rate,
    )


def rate_limit_headers(
    result: LimitResult, *, from_rate_limit: bool = False
) -> tuple[tuple[str, str], ...]:
    """``X-RateLimit-Limit/Remaining/Reset``.

    By default from the quota, as Tyk sends them (Reset: the unix time the quota renews); with
    ``from_rate_limit`` (Tyk's ``rate_limit_response_headers: rate_limits``) from the rate limit
    (Reset: seconds until a slot frees). None when that limit is not in force.
    """
    if from_rate_limit:
        rate = result.rate
        if rate is None:
            return ()
        return (
            ("X-RateLimit-Limit", str(rate.limit)),
            ("X-RateLimit-Remaining", str(rate.remaining)),
            ("X-RateLimit-Reset", str(math.ceil(rate.reset))),
        )
    quota = result.quota
    if quota is None:
        return ()
    return (
        ("X-RateLimit-Limit", str(quota.limit)),
        ("X-RateLimit-Remaining", str(quota.remaining)),
        ("X-RateLimit-Reset", str(quota.renews)),
    )


def rate_limit_header_bytes(
    result: LimitResult, *, from_rate_limit: bool = False
) -> tuple[tuple[bytes, bytes], ...]:
    """:func:`rate_limit_headers` as the bytes the server writes (the hot path's form)."""
    if from_rate_limit:
        rate = result.rate
        if rate is None:
            return ()
        limit, remaining, reset = rate.limit, rate.remaining, math.ceil(rate.reset)
    else:
        quota = result.quota
        if quota is None:
            return ()
        limit, remaining, reset = quota.limit, quota.remaining, quota.renews
    return (
        (b"X-RateLimit-Limit", b"%d" % limit),
        (b"X-RateLimit-Remaining", b"%d" % remaining),
        (b"X-RateLimit-Reset", b"%d" % reset),
    )


def decide(result: LimitResult, *, from_rate_limit: bool = False) -> Continue | Respond:
    """429 ``Rate Limit Exceeded`` or 403 ``Quota exceeded``; headers either way."""
    headers = rate_limit_headers(result, from_rate_limit=from_rate_limit)
    if result.outcome is LimitOutcome.RATE_LIMITED:
        return Respond(status=RATE_LIMITED.status, message=RATE_LIMITED.message, headers=headers)
    if result.outcome is LimitOutcome.QUOTA_EXCEEDED:
        return Respond(
            status=QUOTA_EXCEEDED.status, message=QUOTA_EXCEEDED.message, headers=headers
        )
    return Continue(headers=headers)
