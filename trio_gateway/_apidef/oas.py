"""Tyk OAS API definitions (OpenAPI plus ``x-tyk-api-gateway``) -> :class:`ApiDefinition`.

Field paths in messages start at the document root (``x-tyk-api-gateway.server.listenPath.value``),
so a user can find the key in the file they wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from .._converter import describe_type
from ..errors import ApiDefinitionError
from . import unsupported
from .classic import (
    FieldReader,
    HookKeys,
    apply_feature_table,
    check_endpoint_plugin_path,
    driver_with_virtual,
    read_analytics_plugin,
    read_failure_mode,
    read_hook,
    read_thread_limit,
    read_timeout,
    read_virtual_blob,
    validate_domain,
    validate_listen_path,
    validate_target_url,
)
from .model import (
    AnalyticsPluginRef,
    ApiDefinition,
    AuthLocation,
    EndpointPlugin,
    IdExtractor,
    MiddlewareConfig,
    PluginRef,
    RateLimit,
    VirtualEndpoint,
    VirtualSource,
)

__all__ = ["OAS_EXTENSION", "is_oas_document", "parse_duration", "parse_oas"]

OAS_EXTENSION = "x-tyk-api-gateway"
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

OAS_HOOK_KEYS = HookKeys(
    name="functionName",
    disabled="enabled",
    disabled_means_off=False,
    raw_body_only="rawBodyOnly",
    require_session="requireSession",
    failure_mode="failureMode",
    known=frozenset(
        {
            "enabled",
            "functionName",
            "path",
            "rawBodyOnly",
            "requireSession",
            "timeout",
            "failureMode",
            "code",
            "idExtractor",
        }
    ),
)
_X_TYK_SECTIONS = frozenset({"info", "upstream", "server", "middleware"})


def is_oas_document(doc: object) -> bool:
    """Tyk's test: an ``openapi`` version and the ``x-tyk-api-gateway`` extension."""
    return isinstance(doc, Mapping) and "openapi" in doc and OAS_EXTENSION in doc


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """Tyk's ReadableDuration (``"1m30s"``, ``"500ms"``) in seconds; None when malformed."""
    if text in ("", "0"):
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def _auth_source(r: FieldReader, key: str) -> tuple[bool, str]:
    source = r.obj(key)
    # Tyk: "the header source is enabled by default"; the others are off unless switched on.
    return source.boolean("enabled", key == "header" and not source.data), source.string("name")


def _read_custom_location(custom: FieldReader) -> AuthLocation:
    header_on, header_name = _auth_source(custom, "header")
    query_on, query_name = _auth_source(custom, "query")
    cookie_on, cookie_name = _auth_source(custom, "cookie")
    return AuthLocation(
        header_name=header_name or "Authorization",
        use_header=header_on,
        use_param=query_on,
        param_name=query_name,
        use_cookie=cookie_on,
        cookie_name=cookie_name,
    )


def _read_id_extractor(r: FieldReader) -> IdExtractor | None:
    if not r.data:
        return None
    config = r.obj("config")
    return IdExtractor(
        disabled=not r.boolean("enabled"),
        extract_from=r.string("source"),
        extract_with=r.string("with"),
        header_name=config.string("headerName"),
        param_name=config.string("formParamName"),
        regex_expression=config.string("regexp"),
        regex_match_index=config.integer("regexpMatchIndex"),
    )


@attrs.frozen
class _Security:
    use_standard_auth: bool
    token: AuthLocation


def _read_security(
    auth: FieldReader, components: Mapping[str, Any], errors: list[str]
) -> _Security:
    """``server.authentication.securitySchemes``: each enabled scheme, typed by ``components``."""
    schemes = auth.obj("securitySchemes")
    use_standard = False
    token = AuthLocation()
    for name in schemes.data:
        scheme = schemes.obj(name)
        if not scheme.boolean("enabled"):
            continue
        declared = components.get(name)
        where = scheme.path
        if not isinstance(declared, Mapping):
            errors.append(f"{where}: not declared in components.securitySchemes")
            continue
        kind = str(declared.get("type", ""))
        http_scheme = str(declared.get("scheme", "")).lower()
        if kind == "apiKey":
            use_standard = True
            header_on, header_name = _auth_source(scheme, "header")
            query_on, query_name = _auth_source(scheme, "query")
            cookie_on, cookie_name = _auth_source(scheme, "cookie")
            # The OpenAPI declaration says where the key travels when Tyk's block does not.
            location = str(declared.get("in", ""))
            declared_name = str(declared.get("name", ""))
            if not scheme.has("header") and location == "header":
                header_on, header_name = True, declared_name
            if not scheme.has("query") and location == "query":
                query_on, query_name = True, declared_name
            if not scheme.has("cookie") and location == "cookie":
                cookie_on, cookie_name = True, declared_name
            token = AuthLocation(
                header_name=header_name or "Authorization",
                use_header=header_on,
                use_param=query_on,
                param_name=query_name,
                use_cookie=cookie_on,
                cookie_name=cookie_name,
            )
        elif kind == "http" and http_scheme == "bearer":
            errors.append(f"{where}: JWT authentication is not supported yet")
        elif kind == "http" and http_scheme == "basic":
            errors.append(f"{where}: basic authentication is not supported yet")
        elif kind == "oauth2":
            errors.append(f"{where}: OAuth2 is not supported yet")
        elif kind == "openIdConnect":
            errors.append(f"{where}: OpenID Connect is not supported yet")
        else:
            errors.append(f"{where}: security scheme type {kind!r} is not supported")
    return _Security(use_standard_auth=use_standard, token=token)


def _operations_index(paths: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """operationId -> (path, METHOD), from the document's ``paths``."""
    index: dict[str, tuple[str, str]] = {}
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, Mapping) and isinstance(operation.get("operationId"), str):
                index[operation["operationId"]] = (str(path), method.upper())
    return index


def _read_endpoints(
    middleware: FieldReader, paths: Mapping[str, Any], warnings: list[str]
) -> tuple[EndpointPlugin, ...]:
    operations = middleware.obj("operations")
    index: dict[str, tuple[str, str]] | None = None
    endpoints: list[EndpointPlugin] = []
    for operation_id in operations.data:
        operation = operations.obj(operation_id)
        found_plugins: list[PluginRef] = []
        # Tyk's chain runs a virtual endpoint before the operation's post plugin.
        virtual = _read_virtual(operation.obj("virtualEndpoint"), warnings)
        if virtual is not None:
            found_plugins.append(virtual)
        entries = operation.items("postPlugins")
        if len(entries) > 1:
            warnings.append(
                f"{operation.key_path('postPlugins')}: only the first plugin is used (as in Tyk)"
            )
        plugin = read_hook(entries[0], OAS_HOOK_KEYS, warnings) if entries else None
        if plugin is not None:
            check_endpoint_plugin_path(entries[0], "path", plugin.path)
            found_plugins.append(plugin)
        if not found_plugins:
            continue
        if index is None:
            index = _operations_index(paths)
        found = index.get(operation_id)
        if found is None:
            operations.error(operation_id, "no operation with this operationId in paths")
            continue
        path, method = found
        endpoints.extend(EndpointPlugin(path=path, method=method, plugin=p) for p in found_plugins)
    return tuple(endpoints)


_VIRTUAL_KEYS = frozenset(
    {"enabled", "name", "functionName", "path", "body", "proxyOnError", "requireSession", "timeout"}
)


def _read_virtual(r: FieldReader, warnings: list[str]) -> PluginRef | None:
    """``operations.<id>.virtualEndpoint`` (Tyk's OAS ``VirtualEndpoint``), None when off.

    As Tyk maps it to Classic: ``functionName`` (else the deprecated ``name``); a non-empty
    ``body`` (base64) is the script, else ``path`` names its file.
    """
    if not r.data or not r.boolean("enabled"):
        return None
    for key in r.data:
        if key not in _VIRTUAL_KEYS:
            warnings.append(f"{r.key_path(key)}: unknown key, ignored")
    function_name = r.string("functionName") or r.string("name")
    if not function_name:
        r.error("functionName", "required for an enabled virtual endpoint")
    body = r.string("body")
    path = r.string("path")
    if body:
        virtual = VirtualEndpoint(
            function_name=function_name,
            source=VirtualSource.BLOB,
            code=read_virtual_blob(r, "body", body),
            use_session=r.boolean("requireSession"),
            proxy_on_error=r.boolean("proxyOnError"),
        )
    else:
        if not path:
            r.error("path", "required for an enabled virtual endpoint without a body")
        virtual = VirtualEndpoint(
            function_name=function_name,
            source=VirtualSource.FILE,
            path=path,
            use_session=r.boolean("requireSession"),
            proxy_on_error=r.boolean("proxyOnError"),
        )
    return PluginRef(
        name=function_name,
        path=virtual.path,
        require_session=virtual.use_session,
        timeout=read_timeout(r, "timeout"),
        virtual=virtual,
    )


def _plugin_list(g: FieldReader, plural: str, warnings: list[str]) -> tuple[PluginRef, ...]:
    # Tyk's deprecated singular form (``prePlugin.plugins``) counts only when the plural is absent.
    entries = g.items(plural) if g.has(plural) else g.obj(plural[:-1]).items("plugins")
    found = (read_hook(e, OAS_HOOK_KEYS, warnings) for e in entries)
    return tuple(h for h in found if h is not None)


def _read_analytics_plugin(traffic: FieldReader) -> AnalyticsPluginRef | None:
    """The first enabled ``trafficLogs.plugins[]`` entry (Tyk runs one analytics plugin)."""
    for entry in traffic.items("plugins"):
        plugin = read_analytics_plugin(
            entry, enabled="enabled", path="path", function="functionName"
        )
        if plugin is not None:
            return plugin
    return None


def parse_oas(
    doc: Mapping[str, Any], source: str, *, companion: Mapping[str, Any] | None = None
) -> ApiDefinition:
    """Read one Tyk OAS document. Raises :class:`ApiDefinitionError` listing every problem.

    ``companion`` is the Classic half of Tyk's file-mode pair (``X.json`` beside ``X-oas.json``):
    it supplies ``api_id``/``org_id`` when the OAS document does not carry them.
    """
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(doc, Mapping):
        raise ApiDefinitionError(source, [f"expected a JSON object, got {describe_type(doc)}"])
    root = FieldReader(doc, "", errors)
    x = root.obj(OAS_EXTENSION)
    for key in x.data:
        if key not in _X_TYK_SECTIONS:
            warnings.append(f"{x.key_path(key)}: not a Tyk OAS key, ignored")
    companion = companion or {}

    info = x.obj("info")
    if info.has("id") or not isinstance(companion.get("api_id"), str):
        api_id = info.string("id", required=True)
    else:
        api_id = companion["api_id"]
    org_id = info.string("orgId") or str(companion.get("org_id") or "")
    state = info.obj("state")
    if info.obj("versioning").boolean("enabled"):
        info.error("versioning", "versioned APIs are not supported yet")

    upstream = x.obj("upstream")
    target_url = upstream.string("url", required=True)
    if target_url:
        validate_target_url(target_url, upstream.key_path("url"), errors)
    rate = upstream.obj("rateLimit")
    rate_limit = RateLimit()
    if rate.boolean("enabled"):
        per_text = rate.string("per")
        per = parse_duration(per_text)
        if per is None:
            rate.error("per", f"not a duration like 1s or 1m30s: {per_text!r}")
            per = 0.0
        rate_limit = RateLimit(rate=rate.number("rate") or 0, per=per)

    server = x.obj("server")
    listen = server.obj("listenPath")
    listen_path = listen.string("value", required=True)
    if listen_path:
        validate_listen_path(listen_path, listen.key_path("value"), errors)
    custom_domain = server.obj("customDomain")
    domain = custom_domain.string("name") if custom_domain.boolean("enabled") else ""
    validate_domain(domain, custom_domain.key_path("name"), errors)

    auth = server.obj("authentication")
    custom = auth.obj("custom")
    components = root.obj("components").raw_object("securitySchemes") or {}
    security = _read_security(auth, components, errors)
    auth_check: PluginRef | None = None
    id_extractor: IdExtractor | None = None
    config = custom.obj("config")
    if config.data:
        auth_check = read_hook(config, OAS_HOOK_KEYS, warnings, is_auth=True)
        id_extractor = _read_id_extractor(config.obj("idExtractor"))

    middleware = x.obj("middleware")
    g = middleware.obj("global")
    plugin_config = g.obj("pluginConfig")
    data = plugin_config.obj("data")
    config_data = data.raw_object("value") if data.boolean("enabled") else None
    bundle = plugin_config.obj("bundle")
    paths = root.raw_object("paths") or {}
    traffic = g.obj("trafficLogs")
    endpoints = _read_endpoints(middleware, paths, warnings)

    apply_feature_table(doc, "oas", errors, warnings)
    api = ApiDefinition(
        api_id=api_id,
        name=info.string("name"),
        org_id=org_id,
        active=state.boolean("active", True),
        domain=domain.lower(),
        listen_path=listen_path,
        target_url=target_url,
        strip_listen_path=listen.boolean("strip"),
        preserve_host_header=upstream.obj("preserveHostHeader").boolean("enabled"),
        use_keyless=not auth.boolean("enabled"),
        use_standard_auth=security.use_standard_auth,
        custom_plugin_auth=custom.boolean("enabled"),
        base_identity_provided_by=auth.string("baseIdentityProvider"),
        auth=security.token,
        custom_auth=_read_custom_location(custom),
        config_data=config_data,
        middleware=MiddlewareConfig(
            driver=driver_with_virtual(plugin_config.string("driver"), endpoints),
            pre=_plugin_list(g, "prePlugins", warnings),
            auth_check=auth_check,
            post_key_auth=_plugin_list(g, "postAuthenticationPlugins", warnings),
            post=_plugin_list(g, "postPlugins", warnings),
            response=_plugin_list(g, "responsePlugins", warnings),
            endpoints=endpoints,
            id_extractor=id_extractor,
            timeout=read_timeout(plugin_config, "timeout"),
            failure_mode=read_failure_mode(plugin_config, "failureMode"),
            thread_limit=read_thread_limit(plugin_config, "threadLimit"),
        ),
        bundle=bundle.string("path").strip() if bundle.boolean("enabled") else "",
        global_rate_limit=rate_limit,
        disable_rate_limit=g.boolean("skipRateLimit"),
        disable_quota=g.boolean("skipQuota"),
        # As Tyk's OAS mapping: records only with trafficLogs.enabled.
        do_not_track=not traffic.boolean("enabled"),
        detailed_recording=server.obj("detailedActivityLogs").boolean("enabled"),
        analytics_plugin=_read_analytics_plugin(traffic),
        source=source,
        format="oas",
    )
    errors.extend(unsupported.check_api(api, unsupported.OAS_KEYS))
    if errors:
        raise ApiDefinitionError(source, errors, api_id)
    return attrs.evolve(api, warnings=tuple(warnings))
