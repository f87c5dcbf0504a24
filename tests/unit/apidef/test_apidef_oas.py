from __future__ import annotations

from typing import Any

import pytest
from apidef_builders import make_oas, messages_of

from trio_gateway._apidef.model import (
    AuthLocation,
    EndpointPlugin,
    FailureMode,
    IdExtractor,
    PluginRef,
)
from trio_gateway._apidef.oas import is_oas_document, parse_duration, parse_oas
from trio_gateway.errors import ApiDefinitionError

SRC = "apps/orders-oas.json"
X = "x-tyk-api-gateway"


def test_minimal_keyless_api() -> None:
    api = parse_oas(make_oas(), SRC)
    assert (api.api_id, api.name, api.org_id) == ("a1", "Orders", "acme")
    assert api.active is True
    assert api.listen_path == "/orders/"
    assert api.target_url == "http://up.internal:8080/"
    assert api.use_keyless is True  # no authentication section: Tyk OAS means keyless
    assert api.format == "oas"
    assert api.source == SRC


def test_server_and_upstream_keys() -> None:
    api = parse_oas(
        make_oas(
            {
                "x.server.listenPath.strip": True,
                "x.server.customDomain": {"enabled": True, "name": "Shop.Example.com"},
                "x.upstream.preserveHostHeader": {"enabled": True},
                "x.info.state.active": False,
            }
        ),
        SRC,
    )
    assert api.strip_listen_path is True
    assert api.domain == "shop.example.com"
    assert api.preserve_host_header is True
    assert api.active is False


def test_disabled_custom_domain_is_ignored() -> None:
    doc = make_oas({"x.server.customDomain": {"enabled": False, "name": "shop.example.com"}})
    assert parse_oas(doc, SRC).domain == ""


def test_config_data_follows_its_switch() -> None:
    on = make_oas({"x.middleware.global.pluginConfig.data": {"enabled": True, "value": {"k": 1}}})
    assert parse_oas(on, SRC).config_data == {"k": 1}
    off = make_oas({"x.middleware.global.pluginConfig.data": {"enabled": False, "value": {"k": 1}}})
    assert parse_oas(off, SRC).config_data is None


def _custom_auth(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "x.server.authentication": {
            "enabled": True,
            "baseIdentityProvider": "custom_auth",
            "custom": {
                "enabled": True,
                "header": {"enabled": True, "name": "X-Auth"},
                "query": {"enabled": True, "name": "tok"},
                "config": {
                    "enabled": True,
                    "functionName": "Check",
                    "path": "auth.py",
                    "rawBodyOnly": True,
                    "timeout": 0.25,
                    "failureMode": "closed",
                    "idExtractor": {
                        "enabled": True,
                        "source": "header",
                        "with": "value",
                        "config": {"headerName": "X-Auth"},
                    },
                },
            },
        },
        "x.middleware.global.pluginConfig.driver": "python",
    }
    changes.update(extra or {})
    return make_oas(changes)


def test_custom_authentication() -> None:
    api = parse_oas(_custom_auth(), SRC)
    assert api.use_keyless is False
    assert api.custom_plugin_auth is True
    assert api.base_identity_provided_by == "custom_auth"
    assert api.custom_auth == AuthLocation(header_name="X-Auth", use_param=True, param_name="tok")
    assert api.middleware.auth_check == PluginRef(
        name="Check",
        path="auth.py",
        raw_body_only=True,
        timeout=0.25,
        failure_mode=FailureMode.CLOSED,
    )
    assert api.middleware.id_extractor == IdExtractor(
        extract_from="header", extract_with="value", header_name="X-Auth"
    )


def test_global_plugins_and_per_api_defaults() -> None:
    doc = make_oas(
        {
            "x.middleware.global": {
                "pluginConfig": {
                    "driver": "grpc",
                    "timeout": 3,
                    "failureMode": "open",
                    "threadLimit": 8,
                },
                "prePlugins": [
                    {"enabled": True, "functionName": "Pre", "timeout": 0.1},
                    {"enabled": False, "functionName": "Off"},
                ],
                "postAuthenticationPlugins": [{"enabled": True, "functionName": "PA"}],
                "postPlugins": [{"enabled": True, "functionName": "Post", "requireSession": True}],
                "responsePlugins": [
                    {"enabled": True, "functionName": "Resp", "failureMode": "open"}
                ],
            }
        }
    )
    mw = parse_oas(doc, SRC).middleware
    assert mw.driver == "grpc"
    assert mw.timeout == 3.0
    assert mw.failure_mode is FailureMode.OPEN
    assert mw.thread_limit == 8
    assert mw.pre == (PluginRef(name="Pre", timeout=0.1),)
    assert mw.post_key_auth == (PluginRef(name="PA"),)
    assert mw.post == (PluginRef(name="Post", require_session=True),)
    assert mw.response == (PluginRef(name="Resp", failure_mode=FailureMode.OPEN),)


def test_deprecated_singular_read_only_when_plural_absent() -> None:
    singular = {"plugins": [{"enabled": True, "functionName": "Old"}]}
    doc = make_oas(
        {
            "x.middleware.global": {
                "pluginConfig": {"driver": "python"},
                "prePlugin": singular,
                "postPlugin": singular,
                "postPlugins": [{"enabled": True, "functionName": "New"}],
            }
        }
    )
    mw = parse_oas(doc, SRC).middleware
    assert mw.pre == (PluginRef(name="Old"),)
    assert mw.post == (PluginRef(name="New"),)


def test_plugin_without_enabled_is_off_with_a_warning() -> None:
    doc = make_oas(
        {
            "x.middleware.global": {
                "pluginConfig": {"driver": "python"},
                "prePlugins": [{"functionName": "A"}],
            }
        }
    )
    api = parse_oas(doc, SRC)
    assert api.middleware.pre == ()
    assert any("prePlugins[0].enabled: absent" in w for w in api.warnings)


def test_endpoint_plugins_from_operations() -> None:
    doc = make_oas(
        {
            "paths": {
                "/items": {"get": {"operationId": "itemsGET"}, "post": {"operationId": "itemsPOST"}}
            },
            "x.middleware": {
                "global": {"pluginConfig": {"driver": "python"}},
                "operations": {
                    "itemsPOST": {
                        "postPlugins": [
                            {"enabled": True, "functionName": "Hook", "path": "h.py", "timeout": 2},
                            {"enabled": True, "functionName": "Ignored"},
                        ]
                    },
                    "itemsGET": {"allow": {"enabled": False}},
                },
            },
        }
    )
    api = parse_oas(doc, SRC)
    assert api.middleware.endpoints == (
        EndpointPlugin(
            path="/items", method="POST", plugin=PluginRef(name="Hook", path="h.py", timeout=2.0)
        ),
    )
    assert any("only the first plugin is used" in w for w in api.warnings)


def test_token_location_from_security_scheme_and_components() -> None:
    doc = _custom_auth(
        {
            "components": {
                "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}}
            },
            "x.server.authentication.securitySchemes": {"key": {"enabled": True}},
        }
    )
    with pytest.raises(ApiDefinitionError) as excinfo:  # standard auth is refused for now ...
        parse_oas(doc, SRC)
    assert (
        f"{X}.server.authentication.securitySchemes: standard token authentication"
        in messages_of(excinfo)
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"x.info.id": None}, f"{X}.info.id: required"),
        ({"x.server.listenPath.value": "orders"}, f"{X}.server.listenPath.value: must start"),
        ({"x.upstream.url": "unix:///sock"}, f"{X}.upstream.url: must be an http:// or https://"),
        ({"x.upstream.url": None}, f"{X}.upstream.url: required"),
        (
            {"x.info.versioning": {"enabled": True}},
            f"{X}.info.versioning: versioned APIs are not supported yet",
        ),
        (
            {"x.upstream.rateLimit": {"enabled": True, "rate": 5, "per": "soon"}},
            f"{X}.upstream.rateLimit.per: not a duration",
        ),
        (
            {"x.middleware.global": {"pluginConfig": {"driver": "lua"}}},
            f"{X}.middleware.global.pluginConfig.driver: driver 'lua' is not available",
        ),
        (
            {"x.middleware.global": {"prePlugins": [{"enabled": True, "functionName": "A"}]}},
            f"{X}.middleware.global.pluginConfig.driver: hooks are configured but no driver",
        ),
        (
            {"x.middleware.global": {"pluginConfig": {"driver": "python", "failureMode": "x"}}},
            f'{X}.middleware.global.pluginConfig.failureMode: must be "closed" or "open"',
        ),
        (
            {
                "x.middleware.operations": {
                    "nope": {"postPlugins": [{"enabled": True, "functionName": "F"}]}
                },
                "x.middleware.global": {"pluginConfig": {"driver": "python"}},
            },
            f"{X}.middleware.operations.nope: no operation with this operationId in paths",
        ),
    ],
)
def test_errors_name_file_and_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(make_oas(changes), SRC)
    assert f"{SRC}: {expected}" in messages_of(excinfo)


def test_open_failure_mode_on_custom_auth_is_refused() -> None:
    doc = _custom_auth({"x.server.authentication.custom.config.failureMode": "open"})
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, SRC)
    assert f'{X}.server.authentication.custom.config.failureMode: "open"' in messages_of(excinfo)


def test_go_shared_object_endpoint_plugin_is_refused() -> None:
    doc = make_oas(
        {
            "paths": {"/i": {"get": {"operationId": "iGET"}}},
            "x.middleware": {
                "global": {"pluginConfig": {"driver": "python"}},
                "operations": {
                    "iGET": {
                        "postPlugins": [{"enabled": True, "functionName": "F", "path": "p.so"}]
                    }
                },
            },
        }
    )
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, SRC)
    assert f"{X}.middleware.operations.iGET.postPlugins[0].path: 'p.so'" in messages_of(excinfo)


def test_companion_supplies_ids() -> None:
    doc = make_oas({"x.info": {"name": "N", "state": {"active": True}}})
    api = parse_oas(doc, SRC, companion={"api_id": "from-classic", "org_id": "o"})
    assert (api.api_id, api.org_id) == ("from-classic", "o")


def test_unknown_extension_section_warns() -> None:
    api = parse_oas(make_oas({"x.bogus": {}}), SRC)
    assert api.warnings == (f"{X}.bogus: not a Tyk OAS key, ignored",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("0", 0.0),
        ("", 0.0),
        ("1x", None),
        ("s", None),
        ("1s2", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_is_oas_document() -> None:
    assert is_oas_document(make_oas())
    assert not is_oas_document({"openapi": "3.0.3"})
    assert not is_oas_document([])
