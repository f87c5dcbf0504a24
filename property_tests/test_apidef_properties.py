"""Properties of the API definition readers and of path normalisation.

The Classic and OAS readers must agree: for any API we can express in both formats, writing it as
Classic and as OAS (with the small test-only writers below) and reading each back gives one model.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_gateway._apidef.classic import parse_classic
from trio_gateway._apidef.model import (
    ApiDefinition,
    AuthLocation,
    EndpointPlugin,
    FailureMode,
    IdExtractor,
    MiddlewareConfig,
    PluginRef,
)
from trio_gateway._apidef.oas import parse_oas
from trio_gateway._routing import normalise_path

_word = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_name = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)
_timeout = st.none() | st.floats(min_value=0.001, max_value=600, allow_nan=False)
_segment_paths = st.lists(_word, min_size=0, max_size=3).map(lambda s: "/" + "/".join(s))


def _plugins(*, auth: bool = False, endpoint: bool = False) -> st.SearchStrategy[PluginRef]:
    modes = (
        st.sampled_from([None, FailureMode.CLOSED])
        if auth
        else st.sampled_from([None, FailureMode.CLOSED, FailureMode.OPEN])
    )
    flags = st.just(False) if endpoint else st.booleans()
    return st.builds(
        PluginRef,
        name=_name,
        path=st.just("") | _word.map(lambda w: w + ".py"),
        raw_body_only=flags,
        require_session=flags,
        timeout=_timeout,
        failure_mode=modes,
    )


_id_extractors = st.builds(
    IdExtractor,
    disabled=st.booleans(),
    extract_from=st.sampled_from(["header", "form", "body"]),
    extract_with=st.sampled_from(["value", "regex", "xpath"]),
    header_name=st.just("") | _name,
    param_name=st.just("") | _name,
    regex_expression=st.just("") | _word,
    regex_match_index=st.integers(0, 5),
)


@st.composite
def _endpoints(draw: st.DrawFn) -> tuple[EndpointPlugin, ...]:
    keys = draw(
        st.lists(
            st.tuples(_segment_paths, st.sampled_from(["GET", "POST", "PUT", "DELETE"])),
            max_size=3,
            unique=True,
        )
    )
    return tuple(
        EndpointPlugin(path=path, method=method, plugin=draw(_plugins(endpoint=True)))
        for path, method in keys
    )


@st.composite
def api_definitions(draw: st.DrawFn) -> ApiDefinition:
    custom_auth = draw(st.booleans())
    auth_check = draw(_plugins(auth=True)) if custom_auth else None
    middleware = MiddlewareConfig(
        pre=tuple(draw(st.lists(_plugins(), max_size=3))),
        auth_check=auth_check,
        post_key_auth=tuple(draw(st.lists(_plugins(), max_size=2))),
        post=tuple(draw(st.lists(_plugins(), max_size=2))),
        response=tuple(draw(st.lists(_plugins(), max_size=2))),
        endpoints=draw(_endpoints()),
        id_extractor=draw(st.none() | _id_extractors) if custom_auth else None,
        timeout=draw(_timeout),
        failure_mode=draw(st.sampled_from([None, FailureMode.CLOSED, FailureMode.OPEN])),
    )
    driver = draw(st.sampled_from(["python", "grpc"]))
    if middleware.is_empty():
        driver = draw(st.sampled_from(["", "python"]))
    middleware = attrs.evolve(middleware, driver=driver)
    listen = draw(_segment_paths)
    if draw(st.booleans()) and listen != "/":
        listen += "/"
    return ApiDefinition(
        api_id=draw(_word),
        name=draw(st.text(max_size=20)),
        org_id=draw(st.just("") | _word),
        active=draw(st.booleans()),
        domain=draw(st.just("") | st.lists(_word, min_size=1, max_size=3).map(".".join)),
        listen_path=listen,
        target_url=draw(
            st.builds(
                lambda scheme, host, port, base: f"{scheme}://{host}{port}{base}",
                st.sampled_from(["http", "https"]),
                _word,
                st.just("") | st.integers(1, 65535).map(lambda p: f":{p}"),
                st.just("") | _segment_paths,
            )
        ),
        strip_listen_path=draw(st.booleans()),
        preserve_host_header=draw(st.booleans()),
        use_keyless=not custom_auth,
        custom_plugin_auth=custom_auth,
        base_identity_provided_by=draw(st.sampled_from(["", "custom_auth"])),
        custom_auth=draw(
            st.builds(
                AuthLocation,
                header_name=_name,
                use_header=st.booleans(),
                use_param=st.booleans(),
                param_name=st.just("") | _name,
                use_cookie=st.booleans(),
                cookie_name=st.just("") | _name,
            )
        ),
        config_data=draw(st.none() | st.dictionaries(_word, st.integers() | _word, max_size=3)),
        middleware=middleware,
    )


# --- test-only writers ------------------------------------------------------------------------


def _classic_hook(p: PluginRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "path": p.path,
        "disabled": False,
        "raw_body_only": p.raw_body_only,
        "require_session": p.require_session,
    }
    if p.timeout is not None:
        out["timeout"] = p.timeout
    if p.failure_mode is not None:
        out["failure_mode"] = p.failure_mode.value
    return out


def _oas_hook(p: PluginRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "enabled": True,
        "functionName": p.name,
        "path": p.path,
        "rawBodyOnly": p.raw_body_only,
        "requireSession": p.require_session,
    }
    if p.timeout is not None:
        out["timeout"] = p.timeout
    if p.failure_mode is not None:
        out["failureMode"] = p.failure_mode.value
    return out


def to_classic(api: ApiDefinition) -> dict[str, Any]:
    mw = api.middleware
    loc = api.custom_auth
    custom_middleware: dict[str, Any] = {
        "driver": mw.driver,
        "pre": [_classic_hook(p) for p in mw.pre],
        "post_key_auth": [_classic_hook(p) for p in mw.post_key_auth],
        "post": [_classic_hook(p) for p in mw.post],
        "response": [_classic_hook(p) for p in mw.response],
        "auth_check": _classic_hook(mw.auth_check) if mw.auth_check else {"name": "", "path": ""},
    }
    if mw.timeout is not None:
        custom_middleware["timeout"] = mw.timeout
    if mw.failure_mode is not None:
        custom_middleware["failure_mode"] = mw.failure_mode.value
    if mw.id_extractor is not None:
        ie = mw.id_extractor
        custom_middleware["id_extractor"] = {
            "disabled": ie.disabled,
            "extract_from": ie.extract_from,
            "extract_with": ie.extract_with,
            "extractor_config": {
                "header_name": ie.header_name,
                "param_name": ie.param_name,
                "regex_expression": ie.regex_expression,
                "regex_match_index": ie.regex_match_index,
            },
        }
    go_plugins = []
    for ep in mw.endpoints:
        entry: dict[str, Any] = {
            "path": ep.path,
            "method": ep.method,
            "plugin_path": ep.plugin.path,
            "func_name": ep.plugin.name,
            "disabled": False,
        }
        if ep.plugin.timeout is not None:
            entry["timeout"] = ep.plugin.timeout
        if ep.plugin.failure_mode is not None:
            entry["failure_mode"] = ep.plugin.failure_mode.value
        go_plugins.append(entry)
    doc: dict[str, Any] = {
        "api_id": api.api_id,
        "name": api.name,
        "org_id": api.org_id,
        "active": api.active,
        "domain": api.domain,
        "use_keyless": api.use_keyless,
        "custom_plugin_auth_enabled": api.custom_plugin_auth,
        "base_identity_provided_by": api.base_identity_provided_by,
        "auth_configs": {
            "coprocess": {
                "auth_header_name": loc.header_name,
                "disable_header": not loc.use_header,
                "use_param": loc.use_param,
                "param_name": loc.param_name,
                "use_cookie": loc.use_cookie,
                "cookie_name": loc.cookie_name,
            }
        },
        "proxy": {
            "listen_path": api.listen_path,
            "target_url": api.target_url,
            "strip_listen_path": api.strip_listen_path,
            "preserve_host_header": api.preserve_host_header,
        },
        "version_data": {
            "not_versioned": True,
            "versions": {
                "Default": {"name": "Default", "extended_paths": {"go_plugin": go_plugins}}
            },
        },
        "custom_middleware": custom_middleware,
    }
    if api.config_data is not None:
        doc["config_data"] = dict(api.config_data)
    return doc


def to_oas(api: ApiDefinition) -> dict[str, Any]:
    mw = api.middleware
    loc = api.custom_auth
    paths: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for i, ep in enumerate(mw.endpoints):
        op_id = f"op{i}"
        paths.setdefault(ep.path, {})[ep.method.lower()] = {"operationId": op_id}
        operations[op_id] = {"postPlugins": [_oas_hook(ep.plugin)]}
    plugin_config: dict[str, Any] = {"driver": mw.driver}
    if mw.timeout is not None:
        plugin_config["timeout"] = mw.timeout
    if mw.failure_mode is not None:
        plugin_config["failureMode"] = mw.failure_mode.value
    if api.config_data is not None:
        plugin_config["data"] = {"enabled": True, "value": dict(api.config_data)}
    custom: dict[str, Any] = {
        "enabled": api.custom_plugin_auth,
        "header": {"enabled": loc.use_header, "name": loc.header_name},
        "query": {"enabled": loc.use_param, "name": loc.param_name},
        "cookie": {"enabled": loc.use_cookie, "name": loc.cookie_name},
    }
    if mw.auth_check is not None:
        custom["config"] = _oas_hook(mw.auth_check)
        if mw.id_extractor is not None:
            ie = mw.id_extractor
            custom["config"]["idExtractor"] = {
                "enabled": not ie.disabled,
                "source": ie.extract_from,
                "with": ie.extract_with,
                "config": {
                    "headerName": ie.header_name,
                    "formParamName": ie.param_name,
                    "regexp": ie.regex_expression,
                    "regexpMatchIndex": ie.regex_match_index,
                },
            }
    return {
        "openapi": "3.0.3",
        "info": {"title": api.name, "version": "1"},
        "paths": paths,
        "x-tyk-api-gateway": {
            "info": {
                "id": api.api_id,
                "name": api.name,
                "orgId": api.org_id,
                "state": {"active": api.active},
            },
            "upstream": {
                "url": api.target_url,
                "preserveHostHeader": {"enabled": api.preserve_host_header},
            },
            "server": {
                "listenPath": {"value": api.listen_path, "strip": api.strip_listen_path},
                "customDomain": {"enabled": bool(api.domain), "name": api.domain},
                "authentication": {
                    "enabled": not api.use_keyless,
                    "baseIdentityProvider": api.base_identity_provided_by,
                    "custom": custom,
                },
            },
            "middleware": {
                "global": {
                    "pluginConfig": plugin_config,
                    "prePlugins": [_oas_hook(p) for p in mw.pre],
                    "postAuthenticationPlugins": [_oas_hook(p) for p in mw.post_key_auth],
                    "postPlugins": [_oas_hook(p) for p in mw.post],
                    "responsePlugins": [_oas_hook(p) for p in mw.response],
                    "trafficLogs": {"enabled": not api.do_not_track},
                },
                "operations": operations,
            },
        },
    }


def _comparable(api: ApiDefinition) -> ApiDefinition:
    return attrs.evolve(api, source="", format="")


@settings(deadline=None)
@given(api_definitions())
def test_classic_and_oas_readers_agree(api: ApiDefinition) -> None:
    from_classic = parse_classic(to_classic(api), "c.json")
    from_oas = parse_oas(to_oas(api), "o.json")
    assert _comparable(from_classic) == _comparable(api)
    assert _comparable(from_oas) == _comparable(api)
    assert from_classic.config_data == from_oas.config_data == api.config_data
    assert (from_classic.format, from_oas.format) == ("classic", "oas")


_path_chars = st.sampled_from(["/", "/", ".", "..", "a", "b", "%2F", "%2e", "%2E", "x.y", ""])


@given(st.lists(_path_chars, max_size=20).map("".join))
def test_normalise_path_is_idempotent_and_never_climbs(raw: str) -> None:
    once = normalise_path(raw)
    assert normalise_path(once) == once
    assert once.startswith("/")
    segments = once.split("/")
    assert ".." not in segments
    assert "." not in segments
    assert "//" not in once


@given(st.text())
def test_normalise_path_any_text(raw: str) -> None:
    once = normalise_path(raw)
    assert normalise_path(once) == once
    assert ".." not in once.split("/")
