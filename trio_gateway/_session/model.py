"""Tyk's session model. Pure data: no I/O, no clock reads (callers pass ``now``).

Field names are Tyk's JSON names, so a session's JSON form (admin API, stores) is Tyk's. The
JSON converters live in :mod:`._json`; the limit math in :mod:`trio_gateway._ratelimit`.

Sessions are mutable (``attrs.define``) because the auth stage builds them step by step and
post-auth hooks may change ``meta_data``; stores hand out copies whose ``meta_data`` is their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


@attrs.define(kw_only=True)
class AccessLimit:
    """A per-API limit inside ``access_rights`` (overrides the session-level limits when set)."""

    rate: float = 0
    per: float = 0
    throttle_interval: float = 0
    throttle_retry_limit: int = 0
    max_query_depth: int = 0
    quota_max: int = 0
    quota_renews: int = 0
    quota_remaining: int = 0
    quota_renewal_rate: int = 0

    def is_empty(self) -> bool:
        """Tyk ignores an all-zero limit (the session-level one applies)."""
        return self.rate <= 0 and self.per <= 0 and self.quota_max == 0


@attrs.define(kw_only=True)
class AllowedUrl:
    url: str  # a regular expression, as in Tyk
    methods: list[str] = attrs.field(factory=list)


@attrs.define(kw_only=True)
class AccessDefinition:
    api_name: str = ""
    api_id: str = ""
    versions: list[str] = attrs.field(factory=list)
    allowed_urls: list[AllowedUrl] = attrs.field(factory=list)
    limit: AccessLimit | None = None
    disable_introspection: bool = False
    allowance_scope: str = ""


@attrs.define(kw_only=True)
class BasicAuthData:
    password: str = ""
    hash_type: str = ""


@attrs.define(kw_only=True)
class JwtData:
    secret: str = ""


@attrs.define(kw_only=True)
class Monitor:
    trigger_limits: list[float] = attrs.field(factory=list)


@attrs.define(kw_only=True)
class Session:
    """One key's session (Tyk's ``SessionState``)."""

    last_check: int = 0
    rate: float = 0
    per: float = 0
    allowance: float = 0
    throttle_interval: float = 0
    throttle_retry_limit: int = 0
    max_query_depth: int = 0
    date_created: str = ""
    expires: int = 0
    quota_max: int = 0
    quota_remaining: int = 0
    quota_renews: int = 0
    quota_renewal_rate: int = 0
    access_rights: dict[str, AccessDefinition] = attrs.field(factory=dict)
    org_id: str = ""
    oauth_client_id: str = ""
    oauth_keys: dict[str, str] = attrs.field(factory=dict)
    certificate: str = ""
    basic_auth_data: BasicAuthData = attrs.field(factory=BasicAuthData)
    jwt_data: JwtData = attrs.field(factory=JwtData)
    hmac_enabled: bool = False
    enable_http_signature_validation: bool = False
    hmac_string: str = ""
    rsa_certificate_id: str = ""
    is_inactive: bool = False
    apply_policy_id: str = ""
    apply_policies: list[str] = attrs.field(factory=list)
    data_expires: int = 0
    monitor: Monitor = attrs.field(factory=Monitor)
    enable_detail_recording: bool = False
    enable_detailed_recording: bool = False
    meta_data: dict[str, Any] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    alias: str = ""
    last_updated: str = ""
    id_extractor_deadline: int = 0
    session_lifetime: int = 0
    key_id: str = ""
    post_expiry_action: str = ""
    post_expiry_grace_period: int = 0

    def copy_for_request(self) -> Session:
        """A copy that owns its ``meta_data`` (the only part a request may change).

        Cheaper than a deep copy; every other field is shared and must be treated as read-only.
        """
        return _copy_session(self)


def _make_session_copier() -> Callable[[Session], Session]:
    """A straight-line shallow copier for Session (plus its own ``meta_data`` dict).

    ``attrs.evolve`` runs ``__init__`` with every field (~8 µs; a stored session is copied on every
    authenticated request), ``copy.copy`` goes through ``__reduce_ex__`` (~14 µs); assigning the
    slots directly costs ~2 µs. Generated once, like attrs' own methods, so a new field is never
    forgotten.
    """
    names = [field.name for field in attrs.fields(Session) if field.name != "meta_data"]
    lines = ["def copy_session(source):", "    new = new_session(Session)"]
    lines += [f"    new.{name} = source.{name}" for name in names]
    lines += ["    new.meta_data = dict(source.meta_data)", "    return new"]
    namespace: dict[str, Any] = {"Session": Session, "new_session": object.__new__}
    exec("\n".join(lines), namespace)
    copier: Callable[[Session], Session] = namespace["copy_session"]
    return copier


_copy_session = _make_session_copier()
