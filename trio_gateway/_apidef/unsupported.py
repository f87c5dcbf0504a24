"""What we refuse to serve: the one table of Tyk features trio-gateway does not enforce yet.

An API definition that *enables* a feature carrying security or routing behaviour we do not
implement must not load: serving it without the feature would quietly open a door (an IP allow list
that is not checked) or send traffic somewhere Tyk would not (a URL rewrite that is not applied).
Features that carry other behaviour (CORS, caching, transforms) load with a warning.

When a feature lands, delete its row (or flip its switch below). Tyk writes many of these keys with
empty or false values, so a row only fires when its value is *enabled* (see :func:`is_enabled`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from .model import ApiDefinition

__all__ = [
    "COPROCESS_DRIVERS",
    "FEATURES",
    "GLOBAL_RATE_LIMIT_SUPPORTED",
    "TOKEN_AUTH_SUPPORTED",
    "Action",
    "Feature",
    "FormatKeys",
    "check_api",
    "check_middleware",
    "find_features",
    "is_enabled",
]

#: Switches for features whose configuration we already read into the model but do not enforce yet.
TOKEN_AUTH_SUPPORTED = True
GLOBAL_RATE_LIMIT_SUPPORTED = True

#: Drivers Tyk knows that cannot run here, and those that can (or will, in a later issue).
UNAVAILABLE_DRIVERS = frozenset({"goplugin", "lua"})
KNOWN_DRIVERS = frozenset({"python", "grpc", "otto", "javascript"})
#: The drivers that run JavaScript, and so virtual endpoints.
JS_DRIVERS = frozenset({"otto", "javascript"})

_OAS = "x-tyk-api-gateway"
_OPS = f"{_OAS}.middleware.operations.*"


class Action(enum.Enum):
    REFUSE = "refuse"  # the API fails to load
    WARN = "warn"  # the API loads; the feature is ignored and the user is told


def is_enabled(value: object) -> bool:
    """Whether a Tyk value switches its feature on (Tyk writes empty/false values)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(_entry_enabled(entry) for entry in value)
    if isinstance(value, Mapping):
        if "enabled" in value:
            return bool(value["enabled"])  # anything but false-ish counts: refuse rather than guess
        if "enable" in value:
            return bool(value["enable"])
        if "is_enabled" in value:
            return bool(value["is_enabled"])
        if "disabled" in value and value["disabled"] is True:
            return False
        return bool(value)
    return True


def _entry_enabled(entry: object) -> bool:
    if isinstance(entry, Mapping):
        return entry.get("disabled") is not True and entry.get("enabled", True) is not False
    return bool(entry)


def _is_stream_protocol(value: object) -> bool:
    return isinstance(value, str) and value.lower() in {"tcp", "tls"}


def _has_events(value: object) -> bool:
    """Classic ``event_handlers``: ``{"events": {name: [handlers]}}`` with at least one."""
    return isinstance(value, Mapping) and is_enabled(value.get("events"))


def _has_checks(value: object) -> bool:
    """Classic ``uptime_tests``: ``{"check_list": [...], "config": {...}}`` with a check."""
    return isinstance(value, Mapping) and is_enabled(value.get("check_list"))


def _is_expiry_date(value: object) -> bool:
    # Tyk: "" or "-1" means the API never expires.
    return isinstance(value, str) and value not in ("", "-1")


@attrs.frozen(kw_only=True)
class Feature:
    """One Tyk feature, the keys that switch it on in each format, and what we do about it."""

    name: str
    #: Dotted key patterns; ``*`` matches any object key or array index.
    classic: tuple[str, ...] = ()
    oas: tuple[str, ...] = ()  # the same, from the OAS document's root
    action: Action = Action.REFUSE
    when: Callable[[object], bool] = is_enabled
    #: A Classic key (from the root) that, when true, switches the feature off again.
    unless_classic: str = ""


def _ep(*names: str) -> tuple[str, ...]:
    """Classic per-version endpoint lists, in both the extended and the legacy location."""
    out: list[str] = []
    for name in names:
        out.append(f"version_data.versions.*.extended_paths.{name}")
        out.append(f"version_data.versions.*.paths.{name}")
    return tuple(out)


def _op(*names: str) -> tuple[str, ...]:
    return tuple(f"{_OPS}.{name}" for name in names)


FEATURES: tuple[Feature, ...] = (
    # --- security: who may call -------------------------------------------------------------
    Feature(
        name="IP allow list",
        classic=("enable_ip_whitelisting",),
        oas=(f"{_OAS}.server.ipAccessControl",),
    ),
    Feature(name="IP deny list", classic=("enable_ip_blacklisting",)),
    Feature(name="JWT authentication", classic=("enable_jwt",)),
    Feature(name="basic authentication", classic=("use_basic_auth",)),
    Feature(
        name="HMAC request signatures",
        classic=("enable_signature_checking",),
        oas=(f"{_OAS}.server.authentication.hmac",),
    ),
    Feature(name="OAuth2", classic=("use_oauth2",)),
    Feature(name="external OAuth", classic=("external_oauth",)),
    Feature(
        name="OpenID Connect",
        classic=("use_openid",),
        oas=(f"{_OAS}.server.authentication.oidc",),
    ),
    Feature(
        name="mutual TLS (client certificates)",
        classic=("use_mutual_tls_auth", "auth_configs.*.use_certificate"),
        oas=(
            f"{_OAS}.server.clientCertificates",
            f"{_OAS}.server.authentication.securitySchemes.*.enableClientCertificate",
        ),
    ),
    Feature(
        name="certificate pinning",
        classic=("pinned_public_keys",),
        oas=(f"{_OAS}.upstream.certificatePinning",),
        unless_classic="certificate_pinning_disabled",
    ),
    Feature(
        name="stripping credentials before the upstream",
        classic=("strip_auth_data",),
        oas=(f"{_OAS}.server.authentication.stripAuthorizationData",),
    ),
    Feature(name="URL allow list", classic=_ep("white_list"), oas=_op("allow")),
    Feature(name="URL block list", classic=_ep("black_list"), oas=_op("block")),
    Feature(
        name="ignored paths (authentication skipped)",
        classic=_ep("ignored"),
        oas=_op("ignoreAuthentication"),
    ),
    Feature(name="internal endpoints", classic=_ep("internal"), oas=_op("internal")),
    Feature(name="internal API", classic=("internal",), oas=(f"{_OAS}.info.state.internal",)),
    Feature(
        name="request validation",
        classic=_ep("validate_json", "validate_request"),
        oas=_op("validateRequest"),
    ),
    Feature(
        name="request size limits",
        classic=(*_ep("size_limits"), "version_data.versions.*.global_size_limit"),
        oas=(*_op("requestSizeLimit"), f"{_OAS}.middleware.global.requestSizeLimit"),
    ),
    Feature(name="per-endpoint rate limits", classic=_ep("rate_limit"), oas=_op("rateLimit")),
    # --- routing: where a request goes ------------------------------------------------------
    Feature(name="URL rewrites", classic=_ep("url_rewrites"), oas=_op("urlRewrite")),
    Feature(name="mock responses", classic=_ep("mock_response"), oas=_op("mockResponse")),
    Feature(
        name="method transforms",
        classic=_ep("method_transforms"),
        oas=_op("transformRequestMethod"),
    ),
    Feature(
        name="load balancing",
        classic=("proxy.enable_load_balancing",),
        oas=(f"{_OAS}.upstream.loadBalancing",),
    ),
    Feature(
        name="service discovery",
        classic=("proxy.service_discovery.use_discovery_service",),
        oas=(f"{_OAS}.upstream.serviceDiscovery",),
    ),
    Feature(name="a per-API listen port", classic=("listen_port",), oas=(f"{_OAS}.server.port",)),
    Feature(
        name="TCP/TLS stream proxying",
        classic=("protocol",),
        oas=(f"{_OAS}.server.protocol",),
        when=_is_stream_protocol,
    ),
    Feature(name="GraphQL", classic=("graphql",)),
    Feature(
        name="batch requests",
        classic=("enable_batch_request_support",),
        oas=(f"{_OAS}.server.batchProcessing",),
    ),
    Feature(name="an API expiry date", classic=("expiration",), when=_is_expiry_date),
    Feature(
        name="JSON-RPC / MCP APIs",
        classic=("json_rpc_version", "application_protocol"),
        oas=(
            f"{_OAS}.middleware.mcpTools",
            f"{_OAS}.middleware.mcpResources",
            f"{_OAS}.middleware.mcpPrompts",
        ),
    ),
    Feature(
        name="an outbound HTTP proxy for the upstream",
        classic=("proxy.transport.proxy_url",),
        oas=(f"{_OAS}.upstream.proxy",),
    ),
    # --- other behaviour: loads, with a warning ---------------------------------------------
    Feature(
        name="CORS",
        classic=("CORS",),
        oas=(f"{_OAS}.middleware.global.cors",),
        action=Action.WARN,
    ),
    Feature(
        name="response caching",
        classic=("cache_options.enable_cache",),
        oas=(f"{_OAS}.middleware.global.cache",),
        action=Action.WARN,
    ),
    Feature(
        name="transforms",
        classic=_ep(
            "transform",
            "transform_headers",
            "transform_response",
            "transform_response_headers",
            "transform_jq",
            "transform_jq_response",
        ),
        oas=(
            *_op(
                "transformRequestBody",
                "transformResponseBody",
                "transformRequestHeaders",
                "transformResponseHeaders",
            ),
            f"{_OAS}.middleware.global.transformRequestHeaders",
            f"{_OAS}.middleware.global.transformResponseHeaders",
        ),
        action=Action.WARN,
    ),
    Feature(
        name="per-endpoint timeouts",
        classic=_ep("hard_timeouts"),
        oas=(*_op("enforceTimeout"), f"{_OAS}.upstream.enforceTimeout"),
        action=Action.WARN,
    ),
    Feature(
        name="case-insensitive endpoint matching",
        oas=(f"{_OAS}.middleware.global.ignoreCase",),
        action=Action.WARN,
    ),
    Feature(
        name="upstream TLS versions and ciphers",
        oas=(f"{_OAS}.upstream.tlsTransport",),
        action=Action.WARN,
    ),
    Feature(
        name="keeping a trailing slash on the upstream path",
        oas=(f"{_OAS}.upstream.preserveTrailingSlash",),
        action=Action.WARN,
    ),
    Feature(
        name="circuit breakers",
        classic=_ep("circuit_breakers"),
        oas=_op("circuitBreaker"),
        action=Action.WARN,
    ),
    Feature(
        name="upstream authentication",
        classic=("upstream_auth",),
        oas=(f"{_OAS}.upstream.authentication",),
        action=Action.WARN,
    ),
    Feature(name="request signing", classic=("request_signing",), action=Action.WARN),
    Feature(
        name="event handlers (webhooks, log and plugin handlers are not run)",
        classic=("event_handlers",),
        oas=(f"{_OAS}.server.eventHandlers",),
        action=Action.WARN,
        when=_has_events,
    ),
    Feature(
        name="context variables",
        classic=("enable_context_vars",),
        oas=(f"{_OAS}.middleware.global.contextVariables",),
        action=Action.WARN,
    ),
    Feature(
        name="custom error responses",
        classic=("error_overrides",),
        action=Action.WARN,
        unless_classic="error_overrides_disabled",
    ),
    Feature(
        name="client certificates for the upstream (mutual TLS to the upstream)",
        classic=("upstream_certificates",),
        oas=(f"{_OAS}.upstream.mutualTLS",),
        action=Action.WARN,
        unless_classic="upstream_certificates_disabled",
    ),
    Feature(
        name="uptime tests",
        classic=("uptime_tests", "check_host_against_uptime_tests"),
        oas=(f"{_OAS}.upstream.uptimeTests",),
        action=Action.WARN,
        when=lambda value: _has_checks(value) or value is True,
    ),
    Feature(name="response processors", classic=("response_processors",), action=Action.WARN),
    Feature(name="session lifetimes", classic=("session_lifetime",), action=Action.WARN),
    Feature(
        name="quota not set when a key is created",
        classic=("dont_set_quota_on_create",),
        action=Action.WARN,
    ),
    Feature(
        name="TLS certificates for the API's domain (the listener has no TLS yet)",
        classic=("certificates", "custom_domain_certs"),
        oas=(f"{_OAS}.server.customDomain.certificates",),
        action=Action.WARN,
    ),
    Feature(name="the PROXY protocol", classic=("enable_proxy_protocol",), action=Action.WARN),
    Feature(
        name="detailed tracing and tag headers in analytics records",
        classic=("detailed_tracing", "tag_headers"),
        oas=(f"{_OAS}.server.detailedTracing",),
        action=Action.WARN,
    ),
)


def _walk(value: object, parts: list[str], prefix: str) -> Iterator[tuple[str, object]]:
    if not parts:
        yield prefix, value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, Mapping):
            items: list[tuple[str, object]] = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            return
        for key, child in items:
            yield from _walk(child, rest, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, Mapping) and head in value:
        yield from _walk(value[head], rest, f"{prefix}.{head}" if prefix else head)


def find_features(doc: Mapping[str, Any], fmt: str) -> Iterator[tuple[Feature, str]]:
    """Every (feature, concrete key path) that ``doc`` switches on; ``fmt`` is classic or oas."""
    for feature in FEATURES:
        patterns = feature.classic if fmt == "classic" else feature.oas
        if fmt == "classic" and feature.unless_classic and doc.get(feature.unless_classic) is True:
            continue

        for pattern in patterns:
            for path, value in _walk(doc, pattern.split("."), ""):
                if feature.when(value):
                    yield feature, path


@attrs.frozen(kw_only=True)
class FormatKeys:
    """How one format spells the keys that the model-level checks name in their messages."""

    keyless: str
    standard_auth: str
    custom_auth: str
    auth_check: str
    rate_limit: str
    driver: str


CLASSIC_KEYS = FormatKeys(
    keyless="use_keyless",
    standard_auth="use_standard_auth",
    custom_auth="custom_plugin_auth_enabled",
    auth_check="custom_middleware.auth_check",
    rate_limit="global_rate_limit",
    driver="custom_middleware.driver",
)
OAS_KEYS = FormatKeys(
    keyless=f"{_OAS}.server.authentication.enabled",
    standard_auth=f"{_OAS}.server.authentication.securitySchemes",
    custom_auth=f"{_OAS}.server.authentication.custom.enabled",
    auth_check=f"{_OAS}.server.authentication.custom.config",
    rate_limit=f"{_OAS}.upstream.rateLimit",
    driver=f"{_OAS}.middleware.global.pluginConfig.driver",
)


#: Drivers that Tyk runs only with ``coprocess_options.enable_coprocess: true``. Native Python
#: plugins are ours and never need it; Tyk-style Python plugin files will join this set when they
#: land (Tyk gates its Python driver with the same switch).
COPROCESS_DRIVERS = frozenset({"grpc"})


def coprocess_refusal(api: ApiDefinition, *, coprocess_enabled: bool) -> str | None:
    """Why ``api`` cannot be served while Tyk's coprocess switch is off (None: it can).

    Tyk skips such an API's hooks silently (and custom auth falls back to token auth); we refuse
    it instead, naming the switch.
    """
    driver = api.middleware.driver
    if coprocess_enabled or driver not in COPROCESS_DRIVERS or api.middleware.is_empty():
        return None
    keys = OAS_KEYS if api.format == "oas" else CLASSIC_KEYS
    return (
        f"{keys.driver}: {driver!r} plugins run only with coprocess_options.enable_coprocess "
        "set to true (tyk.conf; or TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS=true, or "
        "enable = true under [coprocess] in gateway.toml); Tyk would skip the hooks silently, "
        "so the API is not served without them"
    )


def check_api(api: ApiDefinition, keys: FormatKeys) -> list[str]:
    """Refusals that depend on the API as a whole rather than on one key's value."""
    errors: list[str] = []
    protected = not api.use_keyless
    if protected and not TOKEN_AUTH_SUPPORTED and not api.custom_plugin_auth:
        errors.append(
            f"{keys.keyless}: standard token authentication is not supported yet "
            "(make the API keyless or use custom plugin authentication)"
        )
    if protected and api.custom_plugin_auth and api.use_standard_auth:
        # Tyk would run both (custom auth, then the key lookup); not supported yet.
        errors.append(
            f"{keys.standard_auth}: standard token authentication is not supported yet "
            "beside custom plugin authentication"
        )
    if api.global_rate_limit.rate > 0 and not GLOBAL_RATE_LIMIT_SUPPORTED:
        errors.append(f"{keys.rate_limit}: API-level rate limits are not supported yet")
    if api.bundle:
        # The bundle's manifest replaces the API's hooks and driver when it is read (Tyk's rule):
        # custom auth may come from the manifest alone, so those checks wait for it
        # (trio_gateway/_bundles/apply.py runs them on the merged API).
        return errors
    errors.extend(check_middleware(api, keys))
    return errors


def check_middleware(api: ApiDefinition, keys: FormatKeys) -> list[str]:
    """Refusals about the API's hooks and driver (after a bundle's manifest replaced them)."""
    errors: list[str] = []
    protected = not api.use_keyless
    if protected and api.custom_plugin_auth and api.middleware.auth_check is None:
        errors.append(
            f"{keys.custom_auth}: custom plugin authentication is on but {keys.auth_check} "
            "names no hook"
        )
    driver = api.middleware.driver
    if driver in UNAVAILABLE_DRIVERS:
        errors.append(f"{keys.driver}: driver {driver!r} is not available in trio-gateway")
    elif driver and driver not in KNOWN_DRIVERS:
        errors.append(f"{keys.driver}: unknown driver {driver!r}")
    elif not driver and not api.middleware.is_empty():
        errors.append(f"{keys.driver}: hooks are configured but no driver is set")
    virtual = [ep for ep in api.middleware.endpoints if ep.plugin.virtual is not None]
    if virtual and driver not in JS_DRIVERS:
        # Tyk runs virtual endpoints on its JSVM beside any driver; one API has one driver here.
        where = ", ".join(f"{ep.method} {ep.path}" for ep in virtual)
        errors.append(
            f"{keys.driver}: virtual endpoints ({where}) run on the JavaScript driver, but the "
            f"API's driver is {driver!r}; trio-gateway runs one plugin driver per API (use "
            '"otto" for the API\'s plugins, or move the virtual endpoints to an API of their own)'
        )
    return errors
