"""Every Tyk feature we cannot enforce refuses its API, in both formats, naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from apidef_builders import make_classic, make_oas, messages_of

from trio_gateway._apidef import unsupported
from trio_gateway._apidef.classic import parse_classic
from trio_gateway._apidef.oas import parse_oas
from trio_gateway.errors import ApiDefinitionError

SRC = "apps/x.json"
EP = "version_data.versions.Default.extended_paths"
X = "x-tyk-api-gateway"


def _classic_with_paths(name: str, value: Any) -> dict[str, Any]:
    doc = make_classic()
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {name: value}
    return doc


ENTRY = [{"path": "/admin", "method": "GET", "disabled": False}]

CLASSIC_REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    (
        make_classic(enable_ip_whitelisting=True, allowed_ips=["10.0.0.1"]),
        "enable_ip_whitelisting",
        "IP allow list",
    ),
    (make_classic(enable_ip_blacklisting=True), "enable_ip_blacklisting", "IP deny list"),
    (make_classic(enable_jwt=True), "enable_jwt", "JWT"),
    (make_classic(use_basic_auth=True), "use_basic_auth", "basic authentication"),
    (make_classic(enable_signature_checking=True), "enable_signature_checking", "HMAC"),
    (make_classic(use_oauth2=True), "use_oauth2", "OAuth2"),
    (make_classic(external_oauth={"enabled": True}), "external_oauth", "external OAuth"),
    (make_classic(use_openid=True), "use_openid", "OpenID"),
    (make_classic(use_mutual_tls_auth=True), "use_mutual_tls_auth", "mutual TLS"),
    (
        make_classic(auth_configs={"authToken": {"use_certificate": True}}),
        "auth_configs.authToken.use_certificate",
        "mutual TLS",
    ),
    (make_classic(pinned_public_keys={"*": "abc"}), "pinned_public_keys", "certificate pinning"),
    (_classic_with_paths("white_list", ENTRY), f"{EP}.white_list", "URL allow list"),
    (_classic_with_paths("black_list", ENTRY), f"{EP}.black_list", "URL block list"),
    (_classic_with_paths("ignored", ENTRY), f"{EP}.ignored", "ignored paths"),
    (_classic_with_paths("url_rewrites", ENTRY), f"{EP}.url_rewrites", "URL rewrites"),
    (_classic_with_paths("mock_response", ENTRY), f"{EP}.mock_response", "mock responses"),
    (_classic_with_paths("internal", ENTRY), f"{EP}.internal", "internal endpoints"),
    (_classic_with_paths("validate_json", ENTRY), f"{EP}.validate_json", "request validation"),
    (make_classic(internal=True), "internal", "internal API"),
    (
        make_classic(proxy__enable_load_balancing=True),
        "proxy.enable_load_balancing",
        "load balancing",
    ),
    (make_classic(protocol="tcp", listen_port=9000), "protocol", "TCP/TLS"),
    (make_classic(strip_auth_data=True), "strip_auth_data", "stripping credentials"),
]


@pytest.mark.parametrize(("doc", "key", "feature"), CLASSIC_REFUSALS)
def test_classic_refusals(doc: dict[str, Any], key: str, feature: str) -> None:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, SRC)
    text = messages_of(excinfo)
    assert f"{SRC}: {key}: {feature}" in text
    assert "is not supported yet" in text


def _op(name: str, value: Any) -> dict[str, Any]:
    return make_oas(
        {
            "paths": {"/a": {"get": {"operationId": "aGET"}}},
            "x.middleware.operations": {"aGET": {name: value}},
        }
    )


def _scheme(kind: dict[str, Any]) -> dict[str, Any]:
    return make_oas(
        {
            "components": {"securitySchemes": {"s": kind}},
            "x.server.authentication": {
                "enabled": True,
                "securitySchemes": {"s": {"enabled": True}},
            },
        }
    )


ON = {"enabled": True}
OAS_REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    (
        make_oas({"x.server.ipAccessControl": {"enabled": True, "allow": ["10.0.0.0/8"]}}),
        f"{X}.server.ipAccessControl",
        "IP allow list",
    ),
    (make_oas({"x.server.authentication.hmac": ON}), f"{X}.server.authentication.hmac", "HMAC"),
    (make_oas({"x.server.authentication.oidc": ON}), f"{X}.server.authentication.oidc", "OpenID"),
    (make_oas({"x.server.clientCertificates": ON}), f"{X}.server.clientCertificates", "mutual TLS"),
    (
        _scheme({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        f"{X}.server.authentication.securitySchemes.s",
        "JWT",
    ),
    (
        _scheme({"type": "http", "scheme": "basic"}),
        f"{X}.server.authentication.securitySchemes.s",
        "basic authentication",
    ),
    (
        _scheme({"type": "oauth2", "flows": {}}),
        f"{X}.server.authentication.securitySchemes.s",
        "OAuth2",
    ),
    (
        _scheme({"type": "openIdConnect"}),
        f"{X}.server.authentication.securitySchemes.s",
        "OpenID Connect",
    ),
    (_op("allow", ON), f"{X}.middleware.operations.aGET.allow", "URL allow list"),
    (_op("block", ON), f"{X}.middleware.operations.aGET.block", "URL block list"),
    (
        _op("ignoreAuthentication", ON),
        f"{X}.middleware.operations.aGET.ignoreAuthentication",
        "ignored paths",
    ),
    (_op("urlRewrite", ON), f"{X}.middleware.operations.aGET.urlRewrite", "URL rewrites"),
    (_op("mockResponse", ON), f"{X}.middleware.operations.aGET.mockResponse", "mock responses"),
    (make_oas({"x.info.state.internal": True}), f"{X}.info.state.internal", "internal API"),
    (make_oas({"x.upstream.loadBalancing": ON}), f"{X}.upstream.loadBalancing", "load balancing"),
]


@pytest.mark.parametrize(("doc", "key", "feature"), OAS_REFUSALS)
def test_oas_refusals(doc: dict[str, Any], key: str, feature: str) -> None:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, SRC)
    text = messages_of(excinfo)
    assert f"{SRC}: {key}: {feature}" in text
    assert "not supported" in text


def test_undeclared_security_scheme_is_refused() -> None:
    doc = make_oas({"x.server.authentication": {"enabled": True, "securitySchemes": {"ghost": ON}}})
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, SRC)
    assert "securitySchemes.ghost: not declared in components.securitySchemes" in messages_of(
        excinfo
    )


def test_tyk_defaults_with_everything_off_load() -> None:
    """Tyk writes these keys on every API with empty/false values; none of them may refuse."""
    doc = make_classic(
        enable_ip_whitelisting=False,
        allowed_ips=[],
        enable_jwt=False,
        use_basic_auth=False,
        use_oauth2=False,
        external_oauth={"enabled": False, "providers": []},
        use_openid=False,
        use_mutual_tls_auth=False,
        pinned_public_keys={},
        internal=False,
        protocol="http",
        listen_port=0,
        custom_middleware_bundle="",
        strip_auth_data=False,
        CORS={"enable": False},
        graphql={"enabled": False},
        analytics_plugin={},
        upstream_auth={"enabled": False},
        request_signing={"is_enabled": False},
    )
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "white_list": [],
        "black_list": None,
        "ignored": [{"path": "/x", "disabled": True}],
        "url_rewrites": [],
        "virtual": None,
        "mock_response": [],
    }
    assert parse_classic(doc, SRC).warnings == ()


def test_disabled_bundle_and_pinning_switches() -> None:
    doc = make_classic(
        custom_middleware_bundle="b.zip",
        custom_middleware_bundle_disabled=True,
        pinned_public_keys={"*": "k"},
        certificate_pinning_disabled=True,
    )
    parse_classic(doc, SRC)


def test_other_behaviour_loads_with_a_warning() -> None:
    api = parse_classic(make_classic(CORS={"enable": True}), SRC)
    assert api.warnings == ("CORS: CORS is not supported yet and is ignored",)
    oas = parse_oas(_op("transformRequestHeaders", ON), SRC)
    assert oas.warnings == (
        f"{X}.middleware.operations.aGET.transformRequestHeaders: transforms is not supported "
        "yet and is ignored",
    )


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (3, True),
        ("", False),
        ("x", True),
        ([], False),
        ([{"disabled": True}], False),
        ([{"enabled": False}], False),
        ([{"path": "/x"}], True),
        ({}, False),
        ({"enabled": False, "x": 1}, False),
        ({"enabled": True}, True),
        ({"enable": True}, True),
        ({"is_enabled": False}, False),
        ({"disabled": True, "x": 1}, False),
        ({"k": "v"}, True),
    ],
)
def test_is_enabled(value: object, on: bool) -> None:
    assert unsupported.is_enabled(value) is on


def test_switches_turn_refusals_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unsupported, "TOKEN_AUTH_SUPPORTED", True)
    monkeypatch.setattr(unsupported, "GLOBAL_RATE_LIMIT_SUPPORTED", True)
    api = parse_classic(
        make_classic(use_keyless=False, global_rate_limit={"rate": 5, "per": 1}), SRC
    )
    assert api.use_keyless is False
    assert api.global_rate_limit.rate == 5


# --- every key Tyk's APIDefinition has is accounted for -------------------------------------


def test_every_classic_key_is_read_refused_warned_or_inert_for_a_reason() -> None:
    from trio_gateway._apidef.classic import CLASSIC_READ_KEYS, CLASSIC_TOP_LEVEL_KEYS
    from trio_gateway._apidef.inert_keys import CLASSIC_INERT_KEYS
    from trio_gateway._apidef.unsupported import FEATURES

    rows = {pattern.split(".")[0] for f in FEATURES for pattern in f.classic}
    rows |= {f.unless_classic for f in FEATURES if f.unless_classic}
    unaccounted = CLASSIC_TOP_LEVEL_KEYS - CLASSIC_READ_KEYS - rows - set(CLASSIC_INERT_KEYS)
    assert unaccounted == set()


@pytest.mark.parametrize(
    ("changes", "warning"),
    [
        (
            {"event_handlers": {"events": {"QuotaExceeded": [{"handler_name": "eh_log_handler"}]}}},
            "event_handlers: event handlers",
        ),
        ({"enable_context_vars": True}, "enable_context_vars"),
        ({"error_overrides": {"401": [{"response": {"body": "no"}}]}}, "error_overrides"),
        ({"uptime_tests": {"check_list": [{"url": "http://x/"}]}}, "uptime_tests"),
    ],
)
def test_ignored_features_are_said_out_loud(changes: dict[str, Any], warning: str) -> None:
    api = parse_classic(make_classic(**changes), SRC)
    assert any(warning in w for w in api.warnings), api.warnings


def test_empty_event_handlers_as_every_export_has_them_load_quietly() -> None:
    api = parse_classic(make_classic(event_handlers={"events": {}}), SRC)
    assert api.warnings == ()


@pytest.mark.parametrize(
    "changes",
    [{"expiration": "2030-01-01 00:00"}, {"json_rpc_version": "2.0"}],
)
def test_features_that_change_who_gets_served_refuse_the_api(changes: dict[str, Any]) -> None:
    with pytest.raises(ApiDefinitionError) as info:
        parse_classic(make_classic(**changes), SRC)
    assert any(next(iter(changes)) in m for m in info.value.messages)


def test_every_oas_key_is_read_refused_warned_or_inert_for_a_reason() -> None:
    from trio_gateway._apidef.inert_keys import OAS_INERT_KEYS, OAS_READ_KEYS, TYK_OAS_KEYS
    from trio_gateway._apidef.unsupported import FEATURES

    prefix = "x-tyk-api-gateway."
    rows = {
        pattern.removeprefix(prefix) for f in FEATURES for pattern in f.oas
    }  # e.g. "server.ipAccessControl"
    unaccounted = [
        f"{section}.{key}"
        for section, keys in TYK_OAS_KEYS.items()
        for key in sorted(keys)
        if key not in OAS_READ_KEYS[section]
        and not any(row.startswith(f"{section}.{key}") for row in rows)
        and f"{section}.{key}" not in OAS_INERT_KEYS
    ]
    assert unaccounted == []
