"""The canonical API definition that both Tyk formats load into.

Pure data: no I/O, no Trio. Field names are ours (snake_case, Python types); the Tyk spellings live
only in ``classic.py`` and ``oas.py``. Durations are seconds as floats.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs


class FailureMode(enum.Enum):
    """What a hook failure does to the request."""

    CLOSED = "closed"  # answer with the failure's status (the default)
    OPEN = "open"  # skip the failing hook and continue (counted, logged)


class Stage(enum.Enum):
    """Hook stages in the order a request walks them (Tyk's order)."""

    PRE = "pre"
    AUTH = "auth"  # custom authentication (Tyk's auth_check / CustomKeyCheck)
    POST_AUTH = "post_auth"  # Tyk's post_key_auth
    ENDPOINT = "endpoint"  # per-endpoint plugins (Tyk's go_plugin / operations postPlugins)
    POST = "post"
    RESPONSE = "response"

    # Members are singletons, equal only to themselves: hashed by identity too. (Enum's own
    # __hash__ is a Python-level call, paid per dict lookup keyed by a stage on the request
    # path: per-stage timings, per-stage tables.)
    __hash__ = object.__hash__


class VirtualSource(enum.Enum):
    """Where a virtual endpoint's JavaScript comes from (Tyk's ``function_source_type``)."""

    FILE = "file"
    BLOB = "blob"  # base64 in the definition (Classic ``function_source_uri``, OAS ``body``)


@attrs.frozen(kw_only=True)
class VirtualEndpoint:
    """A JavaScript virtual endpoint (Tyk's ``VirtualMeta``): the function answers the request.

    The JavaScript driver loads ``path`` (FILE) or ``code`` (BLOB, already decoded) into the API's
    VM and calls ``function_name(request, session, config)``; its ``TykJsResponse`` is the answer.
    """

    function_name: str
    source: VirtualSource
    #: FILE: the script's path as written in the definition (the driver resolves it).
    path: str = ""
    #: BLOB: the script text, decoded from base64 at load time.
    code: str = ""
    #: Tyk's ``use_session`` / ``requireSession``: the function sees the session and its
    #: ``SessionMeta`` replaces the session's ``meta_data``.
    use_session: bool = False
    #: Tyk's ``proxy_on_error`` / ``proxyOnError``: a failing function sends the request upstream.
    proxy_on_error: bool = False


@attrs.frozen(kw_only=True)
class PluginRef:
    """One hook entry of an API definition (Tyk's MiddlewareDefinition)."""

    name: str
    path: str = ""
    disabled: bool = False
    raw_body_only: bool = False
    require_session: bool = False
    #: Our extensions (Tyk ignores unknown keys): per-hook deadline and failure policy.
    timeout: float | None = None
    failure_mode: FailureMode | None = None
    #: Set on the ENDPOINT hooks made from virtual endpoints (driver ``otto``).
    virtual: VirtualEndpoint | None = None


@attrs.frozen(kw_only=True)
class EndpointPlugin:
    """A per-endpoint plugin: runs only when the request's path and method match."""

    path: str  # the endpoint's path as written in the definition, relative to the listen path
    method: str  # upper case
    plugin: PluginRef


@attrs.frozen(kw_only=True)
class IdExtractor:
    """Tyk's ID extractor for custom auth (``custom_middleware.id_extractor``)."""

    disabled: bool = False
    extract_from: str = ""  # header | form | body
    extract_with: str = ""  # value | regex | xpath
    header_name: str = ""
    param_name: str = ""
    regex_expression: str = ""
    regex_match_index: int = 0


@attrs.frozen(kw_only=True)
class MiddlewareConfig:
    """The API's plugin configuration (Classic ``custom_middleware``, OAS ``middleware.global``)."""

    driver: str = ""
    pre: tuple[PluginRef, ...] = ()
    auth_check: PluginRef | None = None
    post_key_auth: tuple[PluginRef, ...] = ()
    post: tuple[PluginRef, ...] = ()
    response: tuple[PluginRef, ...] = ()
    endpoints: tuple[EndpointPlugin, ...] = ()
    id_extractor: IdExtractor | None = None
    #: Per-API defaults for the hooks' deadline and failure policy (our extension).
    timeout: float | None = None
    failure_mode: FailureMode | None = None
    #: Per-API override of the gateway's ``hooks.thread_limit`` (our extension).
    thread_limit: int | None = None

    def is_empty(self) -> bool:
        return not (
            self.pre
            or self.auth_check
            or self.post_key_auth
            or self.post
            or self.response
            or self.endpoints
        )


@attrs.frozen(kw_only=True)
class AuthLocation:
    """Where a credential is read from (Tyk's ``auth_configs.<kind>``)."""

    header_name: str = "Authorization"
    use_header: bool = True
    use_param: bool = False
    param_name: str = ""
    use_cookie: bool = False
    cookie_name: str = ""


@attrs.frozen(kw_only=True)
class RateLimit:
    """``rate`` requests per ``per`` seconds; ``rate <= 0`` means no limit."""

    rate: float = 0
    per: float = 0


@attrs.frozen(kw_only=True)
class AnalyticsPluginRef:
    """Tyk's ``analytics_plugin`` (OAS ``middleware.global.trafficLogs.plugins[]``), enabled:
    a function in a ``.py`` file that sees each analytics record (docs/observability.md)."""

    path: str
    function_name: str
    #: Deadline for one batch of records (our extension); None: the gateway's default.
    timeout: float | None = None


@attrs.frozen(kw_only=True)
class ApiDefinition:
    """One API the gateway serves, whichever format it was written in."""

    api_id: str
    name: str = ""
    org_id: str = ""
    active: bool = True
    #: Host the API is bound to (Tyk's ``domain``); empty matches any host.
    domain: str = ""
    listen_path: str
    target_url: str
    strip_listen_path: bool = False
    preserve_host_header: bool = False
    use_keyless: bool = True
    use_standard_auth: bool = False
    custom_plugin_auth: bool = False
    base_identity_provided_by: str = ""
    auth: AuthLocation = attrs.field(factory=AuthLocation)
    custom_auth: AuthLocation = attrs.field(factory=AuthLocation)
    #: ``config_data`` as plugins see it: None when absent or ``config_data_disabled``.
    config_data: Mapping[str, Any] | None = attrs.field(default=None, eq=False)
    middleware: MiddlewareConfig = attrs.field(factory=MiddlewareConfig)
    #: The plugin bundle's name (Classic ``custom_middleware_bundle``, OAS
    #: ``pluginConfig.bundle.path``); empty when none or disabled. When set, the bundle's manifest
    #: replaces ``middleware`` at load time (``trio_gateway/_bundles``).
    bundle: str = ""
    global_rate_limit: RateLimit = attrs.field(factory=RateLimit)
    #: Tyk's ``disable_rate_limit`` / OAS ``skipRateLimit``: no key rate limit and no
    #: ``global_rate_limit`` on this API. ``disable_quota`` / ``skipQuota``: no key quota.
    disable_rate_limit: bool = False
    disable_quota: bool = False
    #: Upstream/request deadline for this API (Tyk's ``proxy.transport``-less per-API timeout is
    #: ``enforced_timeout``; we keep one number). None means the gateway default.
    request_timeout: float | None = None
    #: Analytics: Tyk's ``do_not_track`` (no records for this API), ``tags`` (copied into each
    #: record), ``expire_analytics_after`` (seconds; the records' ``expireAt``) and
    #: ``analytics_plugin``.
    do_not_track: bool = False
    #: Tyk's ``enable_detailed_recording`` (OAS ``server.detailedActivityLogs.enabled``): records
    #: carry the raw request and response.
    detailed_recording: bool = False
    tags: tuple[str, ...] = ()
    expire_analytics_after: int = 0
    analytics_plugin: AnalyticsPluginRef | None = None
    #: Where the definition came from (a file path, or "admin API"), for messages.
    source: str = ""
    #: Which format it was written in: "classic" or "oas".
    format: str = "classic"
    #: Non-fatal remarks found while loading (unknown keys and the like).
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)
