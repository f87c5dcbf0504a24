from __future__ import annotations

import json

import pytest

from trio_gateway._apidef.model import ApiDefinition, AuthLocation, RateLimit
from trio_gateway._builtins import access_rights, api_limit, key_expiry, limits, token
from trio_gateway._builtins.decision import Continue, Respond
from trio_gateway._exchange import Request
from trio_gateway._ratelimit import LimitOutcome, LimitResult, Limits, QuotaResult, RateResult
from trio_gateway._session.model import AccessDefinition, AccessLimit, AllowedUrl, Session


def request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    return Request(
        method="GET",
        path="/api/x",
        query=query,
        headers=[(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    )


# token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "location", "expected"),
    [
        ({"Authorization": "abc"}, "", AuthLocation(), "abc"),
        ({"Authorization": "Bearer abc"}, "", AuthLocation(), "abc"),
        ({"Authorization": "bearer abc"}, "", AuthLocation(), "abc"),
        ({"Authorization": "Basic abc"}, "", AuthLocation(), "Basic abc"),
        ({"X-Key": "k1"}, "", AuthLocation(header_name="X-Key"), "k1"),
        ({"Authorization": "h"}, "key=q", AuthLocation(use_param=True, param_name="key"), "q"),
        ({"Authorization": "h"}, "key=", AuthLocation(use_param=True, param_name="key"), "h"),
        ({}, "Authorization=q2", AuthLocation(use_param=True), "q2"),
        ({"Cookie": "a=1; tok=c1"}, "", AuthLocation(use_cookie=True, cookie_name="tok"), "c1"),
        ({"Authorization": "h"}, "", AuthLocation(use_header=False), ""),
        ({}, "", AuthLocation(), ""),
    ],
)
def test_extract_token(
    headers: dict[str, str], query: str, location: AuthLocation, expected: str
) -> None:
    assert token.extract_token(request(headers, query), location) == expected
    # The per-API prepared form (header-only fast path included) finds the same key.
    assert token.key_extractor(location)(request(headers, query)) == expected


def test_missing_key_is_401_and_unknown_key_403() -> None:
    missing = token.decide_key(request(), AuthLocation())
    assert missing == Respond(status=401, message="Authorization field missing")
    assert token.decide_key(request({"Authorization": "k"}), AuthLocation()) == token.KeyFound("k")
    unknown = token.decide_session_found(None)
    assert unknown == Respond(status=403, message="Access to this API has been disallowed")
    assert isinstance(token.decide_session_found(Session()), Continue)


def test_respond_renders_tyk_error_body() -> None:
    response = Respond(status=429, message="Rate Limit Exceeded", headers=(("X-A", "1"),))
    rendered = response.to_response()
    assert rendered.status == 429
    assert rendered.body_bytes is not None
    assert json.loads(rendered.body_bytes) == {"error": "Rate Limit Exceeded"}
    assert (b"x-a", b"1") in rendered.headers


# key expiry ----------------------------------------------------------------------------------


def test_key_expiry() -> None:
    assert isinstance(key_expiry.decide(Session(expires=0), now=10**10), Continue)
    assert isinstance(key_expiry.decide(Session(expires=100), now=100), Continue)
    assert key_expiry.decide(Session(expires=100), now=100.5) == Respond(
        status=401, message="Key has expired, please renew"
    )
    inactive = Respond(status=403, message="Key is inactive, please renew")
    assert key_expiry.decide(Session(is_inactive=True), now=0) == inactive
    # Tyk checks inactive first.
    assert key_expiry.decide(Session(is_inactive=True, expires=1), now=5) == inactive


# access rights -------------------------------------------------------------------------------


def _rights(**kwargs: object) -> Session:
    return Session(access_rights={"api1": AccessDefinition(api_id="api1", **kwargs)})  # type: ignore[arg-type]


def decide_access(session: Session, **kw: object) -> Continue | Respond:
    args: dict[str, object] = {"api_id": "api1", "version": None, "path": "/api/x", "method": "GET"}
    args.update(kw)
    return access_rights.decide(session, **args)  # type: ignore[arg-type]


def test_access_rights() -> None:
    assert isinstance(decide_access(Session(), api_id="any"), Continue)
    assert isinstance(decide_access(_rights()), Continue)
    assert decide_access(_rights(), api_id="api2") == access_rights.API_DENIED
    versioned = _rights(versions=["v1"])
    assert isinstance(decide_access(versioned, version="v1"), Continue)
    assert decide_access(versioned, version="v2") == access_rights.API_DENIED
    assert access_rights.API_DENIED.message == "Access to this API has been disallowed"


def test_granular_access() -> None:
    session = _rights(
        allowed_urls=[
            AllowedUrl(url="^/api/x$", methods=["GET"]),
            AllowedUrl(url="(", methods=["GET"]),
        ]
    )
    assert isinstance(decide_access(session), Continue)
    assert decide_access(session, method="POST") == access_rights.RESOURCE_DENIED
    assert decide_access(session, path="/api/y") == access_rights.RESOURCE_DENIED
    assert access_rights.RESOURCE_DENIED.message == "Access to this resource has been disallowed"


# limits --------------------------------------------------------------------------------------


def test_limits_for_prefers_a_per_api_limit() -> None:
    session = Session(rate=10, per=60, quota_max=100, quota_renewal_rate=3600)
    assert limits.limits_for(session, "api1") == Limits(
        rate=10, per=60, quota_max=100, quota_renewal_rate=3600
    )
    session.access_rights["api1"] = AccessDefinition(
        api_id="api1", limit=AccessLimit(rate=2, per=1)
    )
    session.access_rights["api2"] = AccessDefinition(api_id="api2", limit=AccessLimit())
    assert limits.limits_for(session, "api1") == Limits(rate=2, per=1, bucket="api1")
    assert limits.limits_for(session, "api2").bucket == ""


RATE = RateResult(allowed=True, limit=10, remaining=3, reset=4.2)
QUOTA = QuotaResult(allowed=True, limit=100, remaining=42, renews=1700000060)


def test_headers_come_from_the_quota_by_default() -> None:
    result = LimitResult(outcome=LimitOutcome.ALLOWED, rate=RATE, quota=QUOTA)
    assert limits.decide(result) == Continue(
        headers=(
            ("X-RateLimit-Limit", "100"),
            ("X-RateLimit-Remaining", "42"),
            ("X-RateLimit-Reset", "1700000060"),
        )
    )
    assert limits.decide(result, from_rate_limit=True) == Continue(
        headers=(
            ("X-RateLimit-Limit", "10"),
            ("X-RateLimit-Remaining", "3"),
            ("X-RateLimit-Reset", "5"),
        )
    )
    assert limits.decide(LimitResult(outcome=LimitOutcome.ALLOWED)) == Continue()


def test_rate_limit_429_and_quota_403() -> None:
    rate_limited = limits.decide(LimitResult(outcome=LimitOutcome.RATE_LIMITED, rate=RATE))
    assert isinstance(rate_limited, Respond)
    assert (rate_limited.status, rate_limited.message) == (429, "Rate Limit Exceeded")
    quota = limits.decide(LimitResult(outcome=LimitOutcome.QUOTA_EXCEEDED, quota=QUOTA))
    assert isinstance(quota, Respond)
    assert (quota.status, quota.message) == (403, "Quota exceeded")
    assert ("X-RateLimit-Remaining", "42") in quota.headers


def test_api_wide_limit() -> None:
    api = ApiDefinition(api_id="a1", org_id="o", listen_path="/a/", target_url="http://u")
    assert api_limit.api_limits(api) is None
    limited_api = ApiDefinition(
        api_id="a1",
        org_id="o",
        listen_path="/a/",
        target_url="http://u",
        global_rate_limit=RateLimit(rate=5, per=1),
    )
    assert api_limit.api_limits(limited_api) == Limits(rate=5, per=1)
    assert api_limit.api_limit_key(limited_api) == "apilimiter-oa1"
    assert isinstance(api_limit.decide(LimitResult(outcome=LimitOutcome.ALLOWED)), Continue)
    refused = api_limit.decide(LimitResult(outcome=LimitOutcome.RATE_LIMITED))
    assert refused == Respond(status=429, message="API Rate Limit Exceeded")
