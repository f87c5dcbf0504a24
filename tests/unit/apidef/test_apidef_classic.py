from __future__ import annotations

from typing import Any

import pytest
from apidef_builders import make_classic, messages_of

from trio_gateway._apidef.classic import parse_classic
from trio_gateway._apidef.model import (
    AuthLocation,
    EndpointPlugin,
    FailureMode,
    IdExtractor,
    PluginRef,
    RateLimit,
)
from trio_gateway.errors import ApiDefinitionError

SRC = "apps/orders.json"


def test_minimal_keyless_api() -> None:
    api = parse_classic(make_classic(), SRC)
    assert api.api_id == "a1"
    assert api.name == "Orders"
    assert api.org_id == "acme"
    assert api.active is True
    assert api.listen_path == "/orders/"
    assert api.target_url == "http://up.internal:8080/"
    assert api.strip_listen_path is False
    assert api.preserve_host_header is False
    assert api.use_keyless is True
    assert api.source == SRC
    assert api.format == "classic"
    assert api.config_data is None
    assert api.middleware.is_empty()


def test_proxy_flags_domain_and_identity() -> None:
    api = parse_classic(
        make_classic(
            proxy__strip_listen_path=True,
            proxy__preserve_host_header=True,
            domain="API.Example.com",
            base_identity_provided_by="custom_auth",
            active=False,
        ),
        SRC,
    )
    assert api.strip_listen_path
    assert api.preserve_host_header
    assert api.domain == "api.example.com"
    assert api.base_identity_provided_by == "custom_auth"
    assert api.active is False


def test_domain_disabled_clears_domain() -> None:
    api = parse_classic(make_classic(domain="api.example.com", domain_disabled=True), SRC)
    assert api.domain == ""


def test_config_data_and_its_switch() -> None:
    assert parse_classic(make_classic(config_data={"k": 1}), SRC).config_data == {"k": 1}
    off = make_classic(config_data={"k": 1}, config_data_disabled=True)
    assert parse_classic(off, SRC).config_data is None


def _custom_auth_api(**changes: Any) -> dict[str, Any]:
    base = {
        "use_keyless": False,
        "custom_plugin_auth_enabled": True,
        "custom_middleware": {"driver": "python", "auth_check": {"name": "Check"}},
    }
    base.update(changes)
    return make_classic(**base)


@pytest.mark.parametrize(
    "flag", ["custom_plugin_auth_enabled", "enable_coprocess_auth", "use_go_plugin_auth"]
)
def test_custom_auth_switches(flag: str) -> None:
    doc = _custom_auth_api(custom_plugin_auth_enabled=False)
    doc[flag] = True
    api = parse_classic(doc, SRC)
    assert api.custom_plugin_auth is True
    assert api.use_keyless is False
    assert api.middleware.auth_check == PluginRef(name="Check")


def test_auth_locations() -> None:
    doc = _custom_auth_api(
        auth_configs={
            "authToken": {"auth_header_name": "X-Key", "use_param": True, "param_name": "key"},
            "coprocess": {
                "auth_header_name": "X-Custom",
                "use_cookie": True,
                "cookie_name": "sess",
                "disable_header": True,
            },
        }
    )
    api = parse_classic(doc, SRC)
    assert api.auth == AuthLocation(header_name="X-Key", use_param=True, param_name="key")
    assert api.custom_auth == AuthLocation(
        header_name="X-Custom", use_header=False, use_cookie=True, cookie_name="sess"
    )


def test_legacy_auth_block_used_without_auth_configs() -> None:
    doc = _custom_auth_api(auth={"auth_header_name": "X-Old"})
    assert parse_classic(doc, SRC).auth.header_name == "X-Old"


def test_whole_middleware_section() -> None:
    doc = _custom_auth_api(
        custom_middleware={
            "driver": "grpc",
            "timeout": 2.5,
            "failure_mode": "open",
            "thread_limit": 32,
            "pre": [
                {"name": "A", "path": "a.py", "timeout": 0.5, "failure_mode": "closed"},
                {"name": "Off", "disabled": True},
            ],
            "auth_check": {"name": "Auth", "raw_body_only": True, "failure_mode": "closed"},
            "post_key_auth": [{"name": "PK", "require_session": True}],
            "post": [{"name": "P"}],
            "response": [{"name": "R"}],
            "id_extractor": {
                "extract_from": "header",
                "extract_with": "regex",
                "extractor_config": {
                    "header_name": "Authorization",
                    "regex_expression": "[a-z]+",
                    "regex_match_index": 1,
                },
            },
        }
    )
    mw = parse_classic(doc, SRC).middleware
    assert mw.driver == "grpc"
    assert mw.timeout == 2.5
    assert mw.failure_mode is FailureMode.OPEN
    assert mw.thread_limit == 32
    assert mw.pre == (
        PluginRef(name="A", path="a.py", timeout=0.5, failure_mode=FailureMode.CLOSED),
    )
    assert mw.auth_check == PluginRef(
        name="Auth", raw_body_only=True, failure_mode=FailureMode.CLOSED
    )
    assert mw.post_key_auth == (PluginRef(name="PK", require_session=True),)
    assert mw.post == (PluginRef(name="P"),)
    assert mw.response == (PluginRef(name="R"),)
    assert mw.id_extractor == IdExtractor(
        extract_from="header",
        extract_with="regex",
        header_name="Authorization",
        regex_expression="[a-z]+",
        regex_match_index=1,
    )


def test_endpoint_plugins_from_go_plugin_list() -> None:
    doc = make_classic(custom_middleware={"driver": "python"})
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "go_plugin": [
            {
                "path": "/items",
                "method": "get",
                "plugin_path": "items.py",
                "func_name": "Items",
                "timeout": 1,
                "failure_mode": "open",
            },
            {
                "path": "/x",
                "method": "POST",
                "plugin_path": "x.so",
                "func_name": "X",
                "disabled": True,
            },
        ]
    }
    mw = parse_classic(doc, SRC).middleware
    assert mw.endpoints == (
        EndpointPlugin(
            path="/items",
            method="GET",
            plugin=PluginRef(
                name="Items", path="items.py", timeout=1.0, failure_mode=FailureMode.OPEN
            ),
        ),
    )


def test_tyk_empty_auth_check_means_no_hook() -> None:
    doc = make_classic(
        custom_middleware={
            "driver": "",
            "auth_check": {"name": "", "path": ""},
            "pre": None,
            "post": [],
        }
    )
    assert parse_classic(doc, SRC).middleware.auth_check is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"api_id": None}, "api_id: required"),
        ({"api_id": ""}, "api_id: must not be empty"),
        ({"api_id": 5}, "api_id: expected a string, got a number"),
        ({"proxy__listen_path": "orders"}, 'proxy.listen_path: must start with "/"'),
        ({"proxy__listen_path": None}, "proxy.listen_path: required"),
        ({"proxy__target_url": "ftp://x/"}, "proxy.target_url: must be an http:// or https://"),
        ({"proxy__target_url": "http:///path"}, "proxy.target_url: must name a host"),
        ({"proxy__target_url": "http://h:99999/"}, "proxy.target_url: not a valid URL"),
        ({"proxy__strip_listen_path": "yes"}, "proxy.strip_listen_path: expected true or false"),
        ({"proxy": []}, "proxy: expected an object, got an array"),
        ({"use_keyless": "true"}, "use_keyless: expected true or false, got a string"),
        ({"domain": "{sub}.example.com"}, "domain: host patterns are not supported yet"),
        ({"config_data": [1]}, "config_data: expected an object, got an array"),
        (
            {"version_data__not_versioned": False},
            "version_data.not_versioned: versioned APIs are not supported yet",
        ),
        (
            {"custom_middleware": {"driver": "python", "pre": [{"name": "A", "timeout": 0}]}},
            "custom_middleware.pre[0].timeout: must be a number of seconds greater than 0",
        ),
        (
            {"custom_middleware": {"driver": "python", "pre": [{"name": "A", "timeout": "1"}]}},
            "custom_middleware.pre[0].timeout: expected a number, got a string",
        ),
        (
            {
                "custom_middleware": {
                    "driver": "python",
                    "post": [{"name": "A", "failure_mode": "maybe"}],
                }
            },
            'custom_middleware.post[0].failure_mode: must be "closed" or "open"',
        ),
        (
            {"custom_middleware": {"driver": "python", "thread_limit": 0}},
            "custom_middleware.thread_limit: must be a whole number of threads >= 1, got 0",
        ),
        (
            {"custom_middleware": {"driver": "python", "post": [{"path": "a.py"}]}},
            "custom_middleware.post[0].name: required for an enabled plugin",
        ),
        (
            {"custom_middleware": {"driver": "python", "post": {"name": "A"}}},
            "custom_middleware.post: expected an array, got an object",
        ),
        (
            {"custom_middleware": {"driver": "lua", "pre": [{"name": "A"}]}},
            "custom_middleware.driver: driver 'lua' is not available in trio-gateway",
        ),
        (
            {"custom_middleware": {"driver": "goplugin"}},
            "custom_middleware.driver: driver 'goplugin' is not available in trio-gateway",
        ),
        (
            {"custom_middleware": {"driver": "cobol"}},
            "custom_middleware.driver: unknown driver 'cobol'",
        ),
        (
            {"custom_middleware": {"pre": [{"name": "A"}]}},
            "custom_middleware.driver: hooks are configured but no driver is set",
        ),
    ],
)
def test_errors_name_file_and_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(make_classic(**changes), SRC)
    assert f"{SRC}: {expected}" in messages_of(excinfo)
    assert excinfo.value.source == SRC


def test_every_problem_is_reported_at_once() -> None:
    doc = make_classic(api_id="", proxy={"listen_path": "x", "target_url": "nope"})
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, SRC)
    assert len(excinfo.value.messages) == 3


def test_open_failure_mode_on_custom_auth_is_refused() -> None:
    doc = _custom_auth_api(
        custom_middleware={"driver": "python", "auth_check": {"name": "A", "failure_mode": "open"}}
    )
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, SRC)
    assert 'custom_middleware.auth_check.failure_mode: "open" is not allowed' in messages_of(
        excinfo
    )


def test_custom_auth_without_a_hook_is_refused() -> None:
    doc = _custom_auth_api(custom_middleware={"driver": "python"})
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, SRC)
    assert "custom_plugin_auth_enabled: custom plugin authentication is on" in messages_of(excinfo)


def test_standard_auth_beside_custom_auth_is_refused() -> None:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(_custom_auth_api(use_standard_auth=True), SRC)
    assert "use_standard_auth: standard token authentication" in messages_of(excinfo)


def test_go_shared_object_endpoint_plugin_is_refused() -> None:
    doc = make_classic(custom_middleware={"driver": "python"})
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "go_plugin": [{"path": "/i", "method": "GET", "plugin_path": "p.so", "func_name": "F"}]
    }
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, SRC)
    assert (
        "version_data.versions.Default.extended_paths.go_plugin[0].plugin_path: 'p.so' is a Go"
        in messages_of(excinfo)
    )


def test_zero_rate_limit_is_fine_and_kept() -> None:
    api = parse_classic(make_classic(global_rate_limit={"rate": 0, "per": 0}), SRC)
    assert api.global_rate_limit == RateLimit()


def test_unknown_keys_warn_known_keys_do_not() -> None:
    api = parse_classic(make_classic(tags=["x"], CORS={"enable": False}, bogus_key=1), SRC)
    assert api.warnings == ("bogus_key: not a Tyk Classic key, ignored",)


def test_unknown_hook_entry_key_warns() -> None:
    doc = make_classic(custom_middleware={"driver": "python", "pre": [{"name": "A", "timout": 1}]})
    api = parse_classic(doc, SRC)
    assert "custom_middleware.pre[0].timout: unknown key, ignored" in api.warnings


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(ApiDefinitionError, match="expected a JSON object, got an array"):
        parse_classic([], SRC)  # type: ignore[arg-type]
