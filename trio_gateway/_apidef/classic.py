"""Tyk Classic API definitions -> :class:`ApiDefinition`.

Also home of :class:`FieldReader`, the small typed reader both formats use: Tyk's JSON is irregular
(Go writes ``null`` for empty lists, booleans sit beside objects), so we read it by hand, one key at
a time, and collect every problem with its field path instead of stopping at the first.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from .._converter import describe_type, make_converter
from ..errors import ApiDefinitionError
from . import unsupported
from .model import (
    AnalyticsPluginRef,
    ApiDefinition,
    AuthLocation,
    EndpointPlugin,
    FailureMode,
    IdExtractor,
    MiddlewareConfig,
    PluginRef,
    RateLimit,
    VirtualEndpoint,
    VirtualSource,
)

__all__ = [
    "CLASSIC_TOP_LEVEL_KEYS",
    "FieldReader",
    "HookKeys",
    "parse_classic",
    "read_hook",
    "read_virtual_blob",
    "validate_listen_path",
    "validate_target_url",
]

_T = TypeVar("_T")
_converter = make_converter()


class FieldReader:
    """Typed reads from one JSON object; errors are collected as ``"<path>: <problem>"``.

    ``null`` counts as absent everywhere, because Go marshals empty slices and maps as ``null``.
    """

    def __init__(self, data: object, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.error_here(f"expected an object, got {describe_type(data)}")
            data = {}
        self.data: Mapping[str, Any] = data

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.key_path(key)}: {message}")

    def error_here(self, message: str) -> None:
        self.errors.append(f"{self.path or '(top level)'}: {message}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _typed(self, key: str, kind: type[_T], default: _T) -> _T:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            return _converter.structure(value, kind)
        except (TypeError, ValueError) as exc:
            self.error(key, str(exc))
            return default

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        if required and not self.has(key):
            self.error(key, "required")
            return default
        value = self._typed(key, str, default)
        if required and not value:
            self.error(key, "must not be empty")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        return self._typed(key, bool, default)

    def integer(self, key: str, default: int = 0) -> int:
        return self._typed(key, int, default)

    def number(self, key: str) -> float | None:
        value = self._typed(key, float, math.nan)
        return None if math.isnan(value) else value

    def obj(self, key: str) -> FieldReader:
        return FieldReader(self.data.get(key), self.key_path(key), self.errors)

    def raw_object(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(key, f"expected an object, got {describe_type(value)}")
            return None
        return value

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array, got {describe_type(value)}")
            return []
        return value

    def items(self, key: str) -> list[FieldReader]:
        """An array of objects, each as a reader whose path carries its index."""
        base = self.key_path(key)
        return [FieldReader(v, f"{base}[{i}]", self.errors) for i, v in enumerate(self.array(key))]


def validate_listen_path(value: str, key: str, errors: list[str]) -> None:
    if not value.startswith("/"):
        errors.append(f'{key}: must start with "/"')
    elif "?" in value or "#" in value:
        errors.append(f"{key}: must be a path (no query or fragment)")
    elif "{" in value:
        errors.append(f"{key}: path parameters in listen paths are not supported yet")


def validate_target_url(value: str, key: str, errors: list[str]) -> None:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        errors.append(f"{key}: not a valid URL ({exc})")
        return
    if parts.scheme not in ("http", "https"):
        errors.append(f"{key}: must be an http:// or https:// URL, got {value!r}")
    elif not parts.hostname:
        errors.append(f"{key}: must name a host, got {value!r}")
    elif parts.query or parts.fragment:
        errors.append(f"{key}: a query string or fragment in the target is not supported yet")
    elif parts.username is not None or parts.password is not None:
        errors.append(f"{key}: credentials in the target URL are not supported")
    del port


def validate_domain(value: str, key: str, errors: list[str]) -> None:
    if "{" in value or "*" in value or "/" in value:
        errors.append(f"{key}: host patterns are not supported yet (give a plain host name)")


@attrs.frozen(kw_only=True)
class HookKeys:
    """How one format spells a hook entry's keys."""

    name: str
    disabled: str  # the key that switches the entry off ...
    disabled_means_off: bool  # ... True for Classic ``disabled``, False for OAS ``enabled``
    raw_body_only: str
    require_session: str
    failure_mode: str
    path: str = "path"
    timeout: str = "timeout"
    known: frozenset[str] = frozenset()


CLASSIC_HOOK_KEYS = HookKeys(
    name="name",
    disabled="disabled",
    disabled_means_off=True,
    raw_body_only="raw_body_only",
    require_session="require_session",
    failure_mode="failure_mode",
    known=frozenset(
        {
            "name",
            "path",
            "disabled",
            "raw_body_only",
            "require_session",
            "timeout",
            "failure_mode",
            "code",
        }
    ),
)


def read_failure_mode(r: FieldReader, key: str) -> FailureMode | None:
    text = r.string(key)
    if not text:
        return None
    try:
        return FailureMode(text)
    except ValueError:
        r.error(key, f'must be "closed" or "open", got {text!r}')
        return None


def read_timeout(r: FieldReader, key: str) -> float | None:
    value = r.number(key)
    if value is not None and not (value > 0 and math.isfinite(value)):
        r.error(key, "must be a number of seconds greater than 0")
        return None
    return value


def read_thread_limit(r: FieldReader, key: str) -> int | None:
    if not r.has(key):
        return None
    value = r.integer(key)
    if value < 1:
        r.error(key, f"must be a whole number of threads >= 1, got {value}")
        return None
    return value


def read_hook(
    r: FieldReader, keys: HookKeys, warnings: list[str], *, is_auth: bool = False
) -> PluginRef | None:
    """One hook entry, or None when it is switched off (Tyk skips disabled entries)."""
    if keys.disabled_means_off:
        off = r.boolean(keys.disabled)
    else:
        if not r.has(keys.disabled):
            warnings.append(
                f"{r.key_path(keys.disabled)}: absent, so this plugin is disabled (as in Tyk)"
            )
        off = not r.boolean(keys.disabled)
    for key in r.data:
        if keys.known and key not in keys.known:
            warnings.append(f"{r.key_path(key)}: unknown key, ignored")
    name = r.string(keys.name)
    path = r.string(keys.path)
    timeout = read_timeout(r, keys.timeout)
    failure_mode = read_failure_mode(r, keys.failure_mode)
    raw_body_only = r.boolean(keys.raw_body_only)
    require_session = r.boolean(keys.require_session)
    if off:
        return None
    if not name:
        r.error(keys.name, "required for an enabled plugin")
    if is_auth and failure_mode is FailureMode.OPEN:
        r.error(
            keys.failure_mode,
            '"open" is not allowed on the custom authentication hook '
            "(it would let unauthenticated requests through)",
        )
    return PluginRef(
        name=name,
        path=path,
        raw_body_only=raw_body_only,
        require_session=require_session,
        timeout=timeout,
        failure_mode=failure_mode,
    )


def check_endpoint_plugin_path(r: FieldReader, key: str, path: str) -> None:
    if path.endswith(".so"):
        r.error(key, f"{path!r} is a Go plugin (.so); Go plugins cannot run in trio-gateway")


def read_analytics_plugin(
    r: FieldReader, *, enabled: str, path: str, function: str
) -> AnalyticsPluginRef | None:
    """An enabled analytics plugin (Classic ``analytics_plugin``, OAS ``trafficLogs.plugins[]``):
    a ``.py`` file and a function name; a ``.so`` is refused, naming the key."""
    if not r.boolean(enabled):
        return None
    plugin_path = r.string(path, required=True)
    check_endpoint_plugin_path(r, path, plugin_path)
    function_name = r.string(function, required=True)
    return AnalyticsPluginRef(
        path=plugin_path, function_name=function_name, timeout=read_timeout(r, "timeout")
    )


def _read_tags(r: FieldReader) -> tuple[str, ...]:
    if r.boolean("tags_disabled"):
        return ()
    return tuple(tag for tag in r.array("tags") if isinstance(tag, str))


def read_auth_location(r: FieldReader) -> AuthLocation:
    """Classic ``AuthConfig`` (``auth`` / ``auth_configs.<kind>``)."""
    return AuthLocation(
        header_name=r.string("auth_header_name") or "Authorization",
        use_header=not r.boolean("disable_header"),
        use_param=r.boolean("use_param"),
        param_name=r.string("param_name"),
        use_cookie=r.boolean("use_cookie"),
        cookie_name=r.string("cookie_name"),
    )


def _read_id_extractor(r: FieldReader) -> IdExtractor | None:
    if not r.data:
        return None
    config = r.obj("extractor_config")
    extractor = IdExtractor(
        disabled=r.boolean("disabled"),
        extract_from=r.string("extract_from"),
        extract_with=r.string("extract_with"),
        header_name=config.string("header_name"),
        param_name=config.string("param_name"),
        regex_expression=config.string("regex_expression"),
        regex_match_index=config.integer("regex_match_index"),
    )
    if not extractor.extract_from and not extractor.extract_with:
        return None  # Tyk writes an empty extractor on every API
    return extractor


def _read_middleware(
    root: FieldReader, warnings: list[str], endpoints: tuple[EndpointPlugin, ...]
) -> MiddlewareConfig:
    r = root.obj("custom_middleware")

    def hooks(key: str) -> tuple[PluginRef, ...]:
        found = (read_hook(e, CLASSIC_HOOK_KEYS, warnings) for e in r.items(key))
        return tuple(h for h in found if h is not None)

    auth_check: PluginRef | None = None
    auth = r.obj("auth_check")
    # Tyk writes {"name": "", "path": "", ...} on APIs without custom auth: that is "no hook".
    if auth.data and (auth.string("name") or auth.string("path")):
        auth_check = read_hook(auth, CLASSIC_HOOK_KEYS, warnings, is_auth=True)
    return MiddlewareConfig(
        driver=driver_with_virtual(r.string("driver"), endpoints),
        pre=hooks("pre"),
        auth_check=auth_check,
        post_key_auth=hooks("post_key_auth"),
        post=hooks("post"),
        response=hooks("response"),
        endpoints=endpoints,
        id_extractor=_read_id_extractor(r.obj("id_extractor")),
        timeout=read_timeout(r, "timeout"),
        failure_mode=read_failure_mode(r, "failure_mode"),
        thread_limit=read_thread_limit(r, "thread_limit"),
    )


def _read_versions(root: FieldReader, warnings: list[str]) -> tuple[EndpointPlugin, ...]:
    vd = root.obj("version_data")
    if vd.has("not_versioned") and not vd.boolean("not_versioned", True):
        vd.error("not_versioned", "versioned APIs are not supported yet")
    endpoints: list[EndpointPlugin | None] = []
    versions = vd.obj("versions")
    for version_name in versions.data:
        ep = versions.obj(version_name).obj("extended_paths")
        # Tyk's chain runs virtual endpoints before per-endpoint Go plugins.
        endpoints.extend(_read_virtual(entry) for entry in ep.items("virtual"))
        for entry in ep.items("go_plugin"):
            if entry.boolean("disabled"):
                continue
            plugin_path = entry.string("plugin_path")
            check_endpoint_plugin_path(entry, "plugin_path", plugin_path)
            func_name = entry.string("func_name")
            if not func_name:
                entry.error("func_name", "required for an enabled plugin")
            path = entry.string("path", required=True)
            method = entry.string("method", required=True).upper()
            endpoints.append(
                EndpointPlugin(
                    path=path,
                    method=method,
                    plugin=PluginRef(
                        name=func_name,
                        path=plugin_path,
                        timeout=read_timeout(entry, "timeout"),
                        failure_mode=read_failure_mode(entry, "failure_mode"),
                    ),
                )
            )
    return tuple(e for e in endpoints if e is not None)


def driver_with_virtual(driver: str, endpoints: Sequence[EndpointPlugin]) -> str:
    """The API's driver: ``otto`` when it names none and has virtual endpoints.

    Tyk runs virtual endpoints on its JSVM whatever ``custom_middleware.driver`` says; here an API
    has one driver, so an API whose only plugins are virtual endpoints gets the JavaScript one
    (a different driver beside virtual endpoints is refused by ``unsupported.check_middleware``).
    """
    if not driver and any(e.plugin.virtual is not None for e in endpoints):
        return "otto"
    return driver


def read_virtual_blob(r: FieldReader, key: str, text: str) -> str:
    """A virtual endpoint's base64 script (Go's padded standard alphabet) as text."""
    try:
        # Go's decoder skips CR and LF; anything else outside the alphabet is an error.
        raw = base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        r.error(key, f"not valid base64 ({exc})")
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        r.error(key, f"the decoded script is not UTF-8 text ({exc})")
        return ""


def _read_virtual(entry: FieldReader) -> EndpointPlugin | None:
    """One ``extended_paths.virtual`` entry (Tyk's ``VirtualMeta``), or None when disabled."""
    if entry.boolean("disabled"):
        return None
    function_name = entry.string("response_function_name", required=True)
    kind = entry.string("function_source_type", required=True)
    uri = entry.string("function_source_uri", required=True)
    path = entry.string("path", required=True)
    method = entry.string("method", required=True).upper()
    use_session = entry.boolean("use_session")
    proxy_on_error = entry.boolean("proxy_on_error")
    timeout = read_timeout(entry, "timeout")
    try:
        source = VirtualSource(kind)
    except ValueError:
        if kind:
            entry.error("function_source_type", f'must be "file" or "blob", got {kind!r}')
        return None
    code = ""
    if source is VirtualSource.BLOB:
        code = read_virtual_blob(entry, "function_source_uri", uri)
    virtual = VirtualEndpoint(
        function_name=function_name,
        source=source,
        path=uri if source is VirtualSource.FILE else "",
        code=code,
        use_session=use_session,
        proxy_on_error=proxy_on_error,
    )
    plugin = PluginRef(
        name=function_name,
        path=virtual.path,
        require_session=use_session,
        timeout=timeout,
        virtual=virtual,
    )
    return EndpointPlugin(path=path, method=method, plugin=plugin)


def apply_feature_table(
    doc: Mapping[str, Any], fmt: str, errors: list[str], warnings: list[str]
) -> None:
    for feature, path in unsupported.find_features(doc, fmt):
        if feature.action is unsupported.Action.REFUSE:
            errors.append(f"{path}: {feature.name} is not supported yet")
        else:
            warnings.append(f"{path}: {feature.name} is not supported yet and is ignored")


def parse_classic(data: Mapping[str, Any], source: str) -> ApiDefinition:
    """Read one Tyk Classic API definition; :class:`ApiDefinitionError` lists every problem.

    Absent keys take Tyk's defaults (Go zero values) except ``active``, which defaults to true.
    """
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(data, Mapping):
        raise ApiDefinitionError(source, [f"expected a JSON object, got {describe_type(data)}"])
    r = FieldReader(data, "", errors)
    for key in data:
        if key not in CLASSIC_TOP_LEVEL_KEYS:
            warnings.append(f"{key}: not a Tyk Classic key, ignored")
    api_id = r.string("api_id", required=True)

    proxy = r.obj("proxy")
    listen_path = proxy.string("listen_path", required=True)
    if listen_path:
        validate_listen_path(listen_path, proxy.key_path("listen_path"), errors)
    target_url = proxy.string("target_url", required=True)
    if target_url:
        validate_target_url(target_url, proxy.key_path("target_url"), errors)
    domain = r.string("domain")
    if r.boolean("domain_disabled"):
        domain = ""
    validate_domain(domain, "domain", errors)

    auth_configs = r.obj("auth_configs")
    token = auth_configs.obj("authToken") if auth_configs.has("authToken") else r.obj("auth")
    config_data = r.raw_object("config_data")
    if r.boolean("config_data_disabled"):
        config_data = None
    rate = r.obj("global_rate_limit")

    endpoints = _read_versions(r, warnings)
    apply_feature_table(data, "classic", errors, warnings)
    api = ApiDefinition(
        api_id=api_id,
        name=r.string("name"),
        org_id=r.string("org_id"),
        active=r.boolean("active", True),
        domain=domain.lower(),
        listen_path=listen_path,
        target_url=target_url,
        strip_listen_path=proxy.boolean("strip_listen_path"),
        preserve_host_header=proxy.boolean("preserve_host_header"),
        use_keyless=r.boolean("use_keyless"),
        use_standard_auth=r.boolean("use_standard_auth"),
        custom_plugin_auth=(
            r.boolean("custom_plugin_auth_enabled")
            or r.boolean("enable_coprocess_auth")
            or r.boolean("use_go_plugin_auth")
        ),
        base_identity_provided_by=r.string("base_identity_provided_by"),
        auth=read_auth_location(token),
        custom_auth=read_auth_location(auth_configs.obj("coprocess")),
        config_data=config_data,
        middleware=_read_middleware(r, warnings, endpoints),
        bundle=(
            ""
            if r.boolean("custom_middleware_bundle_disabled")
            else r.string("custom_middleware_bundle").strip()
        ),
        global_rate_limit=RateLimit(rate=rate.number("rate") or 0, per=rate.number("per") or 0),
        disable_rate_limit=r.boolean("disable_rate_limit"),
        disable_quota=r.boolean("disable_quota"),
        do_not_track=r.boolean("do_not_track"),
        detailed_recording=r.boolean("enable_detailed_recording"),
        tags=_read_tags(r),
        expire_analytics_after=int(r.number("expire_analytics_after") or 0),
        analytics_plugin=read_analytics_plugin(
            r.obj("analytics_plugin"), enabled="enable", path="plugin_path", function="func_name"
        ),
        source=source,
        format="classic",
    )
    errors.extend(unsupported.check_api(api, unsupported.CLASSIC_KEYS))
    if errors:
        raise ApiDefinitionError(source, errors, api_id)
    return attrs.evolve(api, warnings=tuple(warnings))


#: Keys Tyk's Classic ``APIDefinition`` knows (so they are never reported as unknown), plus ``_id``
#: (Mongo exports) and the Dashboard's wrapper-free extras.
CLASSIC_TOP_LEVEL_KEYS = frozenset(
    """
    _id id name slug listen_port protocol enable_proxy_protocol api_id org_id use_keyless
    use_oauth2 external_oauth use_openid openid_options oauth_meta auth auth_configs use_basic_auth
    basic_auth use_mutual_tls_auth client_certificates upstream_certificates
    upstream_certificates_disabled pinned_public_keys certificate_pinning_disabled enable_jwt
    use_standard_auth use_go_plugin_auth enable_coprocess_auth custom_plugin_auth_enabled
    jwt_signing_method jwt_source jwt_identity_base_field jwt_client_base_field
    jwt_policy_field_name jwt_default_policies jwt_issued_at_validation_skew
    jwt_expires_at_validation_skew jwt_not_before_validation_skew jwt_skip_kid scopes
    idp_client_id_mapping_disabled jwt_scope_to_policy_mapping jwt_scope_claim_name notifications
    enable_signature_checking hmac_allowed_clock_skew hmac_allowed_algorithms request_signing
    base_identity_provided_by definition version_data uptime_tests proxy disable_rate_limit
    disable_quota custom_middleware custom_middleware_bundle custom_middleware_bundle_disabled
    cache_options session_lifetime_respects_key_expiration session_lifetime active internal
    auth_provider session_provider event_handlers enable_batch_request_support
    enable_ip_whitelisting allowed_ips enable_ip_blacklisting blacklisted_ips
    ip_access_control_disabled dont_set_quota_on_create expire_analytics_after response_processors
    CORS domain domain_disabled certificates do_not_track enable_context_vars config_data
    config_data_disabled tag_headers global_rate_limit strip_auth_data enable_detailed_recording
    graphql analytics_plugin tags tags_disabled is_oas detailed_tracing upstream_auth
    security_processing_mode expiration expiration_ts check_host_against_uptime_tests
    strip_auth_data disable_expire_analytics jwt_jwks_uris jwt_source_uris custom_domain_certs
    json_rpc_version application_protocol security_requirements security_requirement_scopes
    error_overrides error_overrides_disabled
    """.split()
)
#: The top-level keys :func:`parse_classic` reads (the others have a row in unsupported.FEATURES
#: or are listed, with the reason, in inert_keys.CLASSIC_INERT_KEYS).
CLASSIC_READ_KEYS = frozenset(
    """
    api_id name org_id active domain domain_disabled proxy use_keyless use_standard_auth
    custom_plugin_auth_enabled enable_coprocess_auth use_go_plugin_auth base_identity_provided_by
    auth auth_configs config_data config_data_disabled custom_middleware global_rate_limit
    disable_rate_limit disable_quota custom_middleware_bundle custom_middleware_bundle_disabled
    version_data do_not_track tags tags_disabled expire_analytics_after analytics_plugin
    enable_detailed_recording
    """.split()
)


def read_custom_middleware(
    doc: Mapping[str, Any], errors: list[str], warnings: list[str]
) -> MiddlewareConfig:
    """The ``custom_middleware`` object of ``doc`` (a bundle manifest has the Classic shape)."""
    return _read_middleware(FieldReader(doc, "", errors), warnings, ())
