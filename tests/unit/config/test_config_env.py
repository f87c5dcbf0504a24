"""TRIO_GATEWAY_* environment variables, and the refusal of Redis TLS, Sentinel and Cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trio_gateway._config import ListenConfig, env_variable_names, load_config
from trio_gateway.errors import ConfigError


def env_error(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(None, env, {})
    return info.value.messages


def test_variables_set_fields_of_every_type() -> None:
    config, warnings = load_config(
        None,
        {
            "TRIO_GATEWAY_LISTEN_HOST": "0.0.0.0",
            "TRIO_GATEWAY_LISTEN_PORT": " 9000 ",
            "TRIO_GATEWAY_SECRET": "s",
            "TRIO_GATEWAY_CONTROL_API_PORT": "9696",
            "TRIO_GATEWAY_LOG_LEVEL": "debug",
            "TRIO_GATEWAY_PROXY_DEFAULT_TIMEOUT": "2.5",
            "TRIO_GATEWAY_DEMO_UPSTREAM": "off",
            "TRIO_GATEWAY_LIMITS_MAX_HEADER_BYTES": "32768",
            "TRIO_GATEWAY_UPSTREAM_SSL_INSECURE_SKIP_VERIFY": "TRUE",
            "TRIO_GATEWAY_UPSTREAM_CA_FILE": "/ca.pem",
            "TRIO_GATEWAY_HOOKS_FAILURE_MODE": "open",
            "TRIO_GATEWAY_HOOKS_THREAD_LIMIT": "48",
            "TRIO_GATEWAY_STORAGE_TYPE": "redis",
            "TRIO_GATEWAY_STORAGE_HASH_KEYS": "yes",
            "HOME": "/root",  # not ours: neither read nor warned about
        },
        {},
    )
    assert warnings == []
    assert config.listen == ListenConfig(host="0.0.0.0", port=9000)
    assert config.secret == "s"
    assert config.control_api_port == 9696
    assert config.log_level == "debug"
    assert config.proxy_default_timeout == 2.5
    assert config.demo_upstream is False
    assert config.limits.max_header_bytes == 32768
    assert config.upstream.ssl_insecure_skip_verify is True
    assert config.upstream.ca_file == "/ca.pem"
    assert config.hooks.failure_mode == "open"
    assert config.hooks.thread_limit == 48
    assert config.storage.type == "redis"
    assert config.storage.hash_keys is True


@pytest.mark.parametrize(
    ("word", "expected"), [("1", True), ("on", True), ("0", False), ("No", False)]
)
def test_boolean_words(word: str, expected: bool) -> None:
    config, _ = load_config(None, {"TRIO_GATEWAY_COPROCESS_ENABLE": word}, {})
    assert config.coprocess.enable is expected


def test_empty_value_clears_an_optional_field() -> None:
    config, _ = load_config(None, {"TRIO_GATEWAY_APP_PATH": ""}, {"app_path": None})
    assert config.app_path is None
    config, _ = load_config(None, {"TRIO_GATEWAY_DEMO_UPSTREAM": ""}, {})
    assert config.demo_upstream is None


def test_env_clears_a_value_the_file_set(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("control_api_port = 9696\n", encoding="utf-8")
    config, _ = load_config(path, {"TRIO_GATEWAY_CONTROL_API_PORT": ""}, {})
    assert config.control_api_port is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRIO_GATEWAY_LISTEN_PORT", "http", "expected an integer, got 'http'"),
        ("TRIO_GATEWAY_LISTEN_PORT", "70000", "must be a port number from 0 to 65535"),
        (
            "TRIO_GATEWAY_LIMITS_HEADER_READ_TIMEOUT",
            "10s",
            "expected a number of seconds, got '10s'",
        ),
        ("TRIO_GATEWAY_LIMITS_MAX_HEADER_BYTES", "-1", "must be a number > 0"),
        ("TRIO_GATEWAY_COPROCESS_ENABLE", "maybe", "expected true or false, got 'maybe'"),
        ("TRIO_GATEWAY_COPROCESS_ENABLE", "", "expected true or false, got ''"),
        ("TRIO_GATEWAY_LOG_LEVEL", "loud", "must be one of 'debug', 'info', 'warning', 'error'"),
        ("TRIO_GATEWAY_LISTEN", "8080", "expected HOST:PORT"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    (message,) = env_error({variable: value})
    assert message.startswith(f"environment: {variable}: ")
    assert expected in message


def test_combined_listen_variable_and_the_specific_ones_win() -> None:
    config, _ = load_config(None, {"TRIO_GATEWAY_LISTEN": "[::1]:7000"}, {})
    assert config.listen == ListenConfig(host="::1", port=7000)
    config, _ = load_config(
        None, {"TRIO_GATEWAY_LISTEN": "[::1]:7000", "TRIO_GATEWAY_LISTEN_PORT": "7001"}, {}
    )
    assert config.listen == ListenConfig(host="::1", port=7001)


def test_unknown_variables_are_named_in_one_warning() -> None:
    config, warnings = load_config(
        None, {"TRIO_GATEWAY_LISTEN_PROT": "1", "TRIO_GATEWAY_SECRT": "x"}, {}
    )
    assert warnings == [
        "ignored unknown environment variables (check the spelling): "
        "TRIO_GATEWAY_LISTEN_PROT, TRIO_GATEWAY_SECRT"
    ]
    assert config.secret == ""


def test_env_variable_names_lists_every_field() -> None:
    names = env_variable_names()
    assert names == sorted(names)
    for expected in (
        "TRIO_GATEWAY_LISTEN",
        "TRIO_GATEWAY_LISTEN_PORT",
        "TRIO_GATEWAY_SECRET",
        "TRIO_GATEWAY_LIMITS_MAX_HEADER_BYTES",
        "TRIO_GATEWAY_COPROCESS_GRPC_RECV_MAX_SIZE",
        "TRIO_GATEWAY_STORAGE_PASSWORD",
    ):
        assert expected in names


# -- Redis features that are refused until supported ---------------------------------------------

UNSUPPORTED = [
    ("use_ssl", True, "Redis over TLS is not supported yet"),
    ("enable_cluster", True, "Redis Cluster is not supported yet"),
    ("addrs", ["r1:6379", "r2:6379"], "several Redis addresses"),
    ("master_name", "mymaster", "Redis Sentinel is not supported yet"),
]


@pytest.mark.parametrize(("key", "value", "reason"), UNSUPPORTED)
def test_toml_asking_for_unsupported_redis_is_refused(
    tmp_path: Path, key: str, value: object, reason: str
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(f'[storage]\ntype = "redis"\n{key} = {json.dumps(value)}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, {})
    (message,) = info.value.messages
    assert message.startswith(f"{path}: storage.{key}: {reason}")
    assert message.endswith("; use a single Redis host")


@pytest.mark.parametrize(("key", "value", "reason"), UNSUPPORTED)
def test_tyk_conf_asking_for_unsupported_redis_is_refused(
    tmp_path: Path, key: str, value: object, reason: str
) -> None:
    path = tmp_path / "tyk.conf"
    path.write_text(json.dumps({"storage": {"type": "redis", key: value}}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, {})
    (message,) = info.value.messages
    assert message.startswith(f"{path}: storage.{key}: {reason}")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRIO_GATEWAY_STORAGE_USE_SSL", "true"),
        ("TRIO_GATEWAY_STORAGE_ENABLE_CLUSTER", "1"),
        ("TRIO_GATEWAY_STORAGE_ADDRS", "r1:6379,r2:6379"),
        ("TRIO_GATEWAY_STORAGE_MASTER_NAME", "mymaster"),
    ],
)
def test_env_asking_for_unsupported_redis_is_refused(variable: str, value: str) -> None:
    (message,) = env_error({variable: value})
    assert message.startswith(f"environment: {variable}: ")
    assert "not supported yet" in message


def test_a_command_line_request_for_redis_tls_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {}, {"storage.use_ssl": True})
    assert info.value.messages[0].startswith("command line: storage.use_ssl: Redis over TLS")


@pytest.mark.parametrize("value", [False, "", [], 0])
def test_switched_off_redis_features_are_accepted(tmp_path: Path, value: object) -> None:
    path = tmp_path / "tyk.conf"
    storage = {"type": "redis", "use_ssl": value, "enable_cluster": value, "addrs": value}
    path.write_text(json.dumps({"storage": storage}), encoding="utf-8")
    config, warnings = load_config(path, {"TRIO_GATEWAY_STORAGE_USE_SSL": "false"}, {})
    assert config.storage.type == "redis"
    assert warnings == []
