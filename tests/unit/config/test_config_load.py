"""Loading gateway settings: defaults, our TOML, precedence, command-line overrides, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_gateway._config import (
    GatewayConfig,
    LimitsConfig,
    ListenConfig,
    load_config,
    parse_listen,
)
from trio_gateway.errors import ConfigError

EXAMPLES = Path(__file__).parents[3] / "examples" / "config"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, env: dict[str, str] | None = None, **overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {}, overrides)
    return info.value


# -- defaults ----------------------------------------------------------------------------------


def test_no_sources_gives_the_embedded_defaults() -> None:
    config, warnings = load_config(None, {}, {})
    assert config == GatewayConfig()
    assert warnings == []
    assert config.listen == ListenConfig(host="127.0.0.1", port=8080)
    assert config.secret == ""
    assert not config.admin_enabled
    assert config.control_api_port is None
    assert config.app_path is None
    assert config.log_level == "info"
    assert config.proxy_default_timeout == 30.0
    assert config.limits == LimitsConfig(
        max_header_bytes=65536,
        max_request_body_bytes=0,
        header_read_timeout=10.0,
        keepalive_timeout=75.0,
        body_read_timeout=30.0,
        shutdown_timeout=10.0,
    )
    assert config.upstream.connect_timeout == 5.0
    assert config.upstream.max_idle_per_host == 100
    assert config.upstream.idle_timeout == 60.0
    assert config.upstream.ssl_insecure_skip_verify is False
    assert config.upstream.ca_file is None
    assert (config.hooks.timeout, config.hooks.failure_mode) == (1.0, "closed")
    assert config.coprocess.enable is False
    assert config.coprocess.grpc_server == ""
    assert config.coprocess.grpc_recv_max_size == 4 * 1024 * 1024
    assert config.coprocess.grpc_send_max_size == 0
    assert config.storage.type == "memory"
    assert (config.storage.host, config.storage.port, config.storage.database) == (
        "127.0.0.1",
        6379,
        0,
    )
    assert config.storage.hash_keys is False


def test_secret_turns_the_admin_api_on() -> None:
    config, _ = load_config(None, {}, {"secret": "s3cret"})
    assert config.admin_enabled


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, True),
        ({"app_path": "apps"}, False),
        ({"app_path": "apps", "demo_upstream": True}, True),
        ({"demo_upstream": False}, False),
    ],
)
def test_demo_upstream_defaults_to_on_only_without_an_apps_folder(
    overrides: dict[str, Any], expected: bool
) -> None:
    config, _ = load_config(None, {}, overrides)
    assert config.wants_demo_upstream is expected


def test_secrets_stay_out_of_repr() -> None:
    config, _ = load_config(None, {}, {"secret": "top-secret", "storage.password": "pw-123"})
    assert "top-secret" not in repr(config)
    assert "pw-123" not in repr(config)


# -- our TOML ----------------------------------------------------------------------------------


def test_toml_file_sets_every_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gw.toml",
        """
        app_path = "/srv/apps"
        secret = "abc"
        control_api_port = 9696
        log_level = "debug"
        proxy_default_timeout = 12
        demo_upstream = false
        [listen]
        host = "0.0.0.0"
        port = 9000
        [limits]
        max_header_bytes = 1024
        max_request_body_bytes = 2048
        header_read_timeout = 2.5
        [upstream]
        ssl_insecure_skip_verify = true
        ca_file = "/etc/ca.pem"
        [hooks]
        timeout = 0.25
        failure_mode = "open"
        [coprocess]
        enable = true
        grpc_server = "tcp://127.0.0.1:5555"
        [storage]
        type = "redis"
        host = "redis.internal"
        port = 6380
        database = 2
        password = "pw"
        hash_keys = true
        """,
    )
    config, warnings = load_config(path, {}, {})
    assert warnings == []
    assert config.app_path == "/srv/apps"
    assert config.secret == "abc"
    assert config.control_api_port == 9696
    assert config.log_level == "debug"
    assert config.proxy_default_timeout == 12.0
    assert isinstance(config.proxy_default_timeout, float)
    assert config.demo_upstream is False
    assert config.listen == ListenConfig(host="0.0.0.0", port=9000)
    assert config.limits.max_header_bytes == 1024
    assert config.limits.max_request_body_bytes == 2048
    assert config.limits.header_read_timeout == 2.5
    assert config.limits.keepalive_timeout == 75.0  # untouched fields keep their default
    assert config.upstream.ssl_insecure_skip_verify is True
    assert config.upstream.ca_file == "/etc/ca.pem"
    assert (config.hooks.timeout, config.hooks.failure_mode) == (0.25, "open")
    assert config.coprocess.enable is True
    assert config.coprocess.grpc_server == "tcp://127.0.0.1:5555"
    assert config.storage.type == "redis"
    assert (config.storage.host, config.storage.port, config.storage.database) == (
        "redis.internal",
        6380,
        2,
    )
    assert config.storage.password == "pw"
    assert config.storage.hash_keys is True


def test_shipped_example_toml_loads_and_mentions_every_field() -> None:
    path = EXAMPLES / "gateway.toml"
    config, warnings = load_config(path, {}, {})
    assert config == GatewayConfig()
    assert warnings == []
    text = path.read_text(encoding="utf-8")
    for field_path in _leaf_paths(GatewayConfig):
        assert f"{field_path[-1]} = " in text, field_path


def _leaf_paths(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import attrs

    paths: list[tuple[str, ...]] = []
    for field in attrs.fields(cls):
        if isinstance(field.type, type) and attrs.has(field.type):
            paths.extend(_leaf_paths(field.type, (*prefix, field.name)))
        else:
            paths.append((*prefix, field.name))
    return paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listn = 1\n", "gw.toml: listn: unknown key"),
        ("[limits]\nmax_header_byte = 1\n", "gw.toml: limits.max_header_byte: unknown key"),
        ("[nope]\nx = 1\n", "gw.toml: nope: unknown key"),
        ("listen = 8080\n", "gw.toml: listen: expected a table of settings, got a number"),
    ],
)
def test_toml_unknown_keys_are_errors_naming_the_key_path(
    tmp_path: Path, text: str, expected: str
) -> None:
    error = error_of(write(tmp_path, "gw.toml", text))
    assert [m.replace(str(tmp_path) + "/", "") for m in error.messages] == [expected]


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('[listen]\nport = "8080"\n', "listen.port", "expected an integer, got a string"),
        ("[listen]\nport = 70000\n", "listen.port", "from 0 to 65535 (got 70000)"),
        ("[listen]\nport = true\n", "listen.port", "expected an integer, got a boolean"),
        ('[listen]\nhost = " "\n', "listen.host", "must not be empty"),
        ("control_api_port = 0\n", "control_api_port", "from 1 to 65535 (got 0)"),
        ("proxy_default_timeout = 0\n", "proxy_default_timeout", "must be a number > 0"),
        ("proxy_default_timeout = nan\n", "proxy_default_timeout", "must be a number > 0"),
        ('log_level = "loud"\n', "log_level", "must be one of 'debug', 'info', 'warning', 'error'"),
        ("secret = 1\n", "secret", "expected a string, got a number"),
        ('demo_upstream = "yes"\n', "demo_upstream", "expected true or false, got a string"),
        ("[limits]\nmax_header_bytes = 0\n", "limits.max_header_bytes", "must be a number > 0"),
        ("[limits]\nmax_request_body_bytes = -1\n", "limits.max_request_body_bytes", ">= 0"),
        ("[limits]\nheader_read_timeout = -1\n", "limits.header_read_timeout", "> 0"),
        ("[limits]\nkeepalive_timeout = 0\n", "limits.keepalive_timeout", "> 0"),
        ("[limits]\nbody_read_timeout = 0\n", "limits.body_read_timeout", "> 0"),
        ("[limits]\nshutdown_timeout = -0.5\n", "limits.shutdown_timeout", ">= 0"),
        ("[upstream]\nconnect_timeout = 0\n", "upstream.connect_timeout", "> 0"),
        ("[upstream]\nmax_idle_per_host = -1\n", "upstream.max_idle_per_host", ">= 0"),
        ("[upstream]\nidle_timeout = 0\n", "upstream.idle_timeout", "> 0"),
        ("[upstream]\nca_file = 3\n", "upstream.ca_file", "expected a string"),
        ("[hooks]\ntimeout = 0\n", "hooks.timeout", "> 0"),
        ('[hooks]\nfailure_mode = "opn"\n', "hooks.failure_mode", "one of 'closed', 'open'"),
        ("[coprocess]\ngrpc_recv_max_size = 0\n", "coprocess.grpc_recv_max_size", "> 0"),
        ("[coprocess]\ngrpc_send_max_size = -1\n", "coprocess.grpc_send_max_size", ">= 0"),
        ('[storage]\ntype = "mysql"\n', "storage.type", "one of 'memory', 'redis'"),
        ("[storage]\nport = 0\n", "storage.port", "from 1 to 65535"),
        ("[storage]\ndatabase = -1\n", "storage.database", ">= 0"),
    ],
)
def test_bad_values_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, "gw.toml", text)
    (message,) = error_of(path).messages
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.toml", "[listen\nport = 1\n")
    (message,) = error_of(path).messages
    assert message.startswith(f"{path}: not valid TOML")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    (message,) = error_of(tmp_path / "absent.toml").messages
    assert message.startswith(f"{tmp_path / 'absent.toml'}: cannot read the config file")


@pytest.mark.parametrize("name", ["gw.yaml", "gw"])
def test_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    (message,) = error_of(write(tmp_path, name, "")).messages
    assert "unknown config format" in message
    assert ".toml" in message
    assert ".json/.conf" in message


def test_problems_from_every_source_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.toml", "[listen]\nport = -1\n")
    error = error_of(
        path, {"TRIO_GATEWAY_LOG_LEVEL": "loud"}, **{"hooks.timeout": -1, "listen": "x"}
    )
    assert len(error.messages) == 4
    assert any(m.startswith(f"{path}: listen.port:") for m in error.messages)
    assert any(m.startswith("environment: TRIO_GATEWAY_LOG_LEVEL:") for m in error.messages)
    assert any(m.startswith("command line: hooks.timeout:") for m in error.messages)
    assert any(m.startswith("command line: listen:") for m in error.messages)
    assert str(error) == "\n".join(error.messages)


# -- precedence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_file", "in_env", "on_command_line", "expected"),
    [
        (False, False, False, 8080),
        (True, False, False, 1111),
        (True, True, False, 2222),
        (False, True, False, 2222),
        (True, True, True, 3333),
        (True, False, True, 3333),
        (False, False, True, 3333),
    ],
)
def test_precedence_is_command_line_then_environment_then_file(
    tmp_path: Path, in_file: bool, in_env: bool, on_command_line: bool, expected: int
) -> None:
    path = write(tmp_path, "gw.toml", "[listen]\nport = 1111\n") if in_file else None
    env = {"TRIO_GATEWAY_LISTEN_PORT": "2222"} if in_env else {}
    overrides = {"listen.port": 3333} if on_command_line else {}
    config, _ = load_config(path, env, overrides)
    assert config.listen.port == expected


def test_layers_merge_field_by_field(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.toml", '[listen]\nhost = "10.0.0.1"\nport = 1111\n')
    config, _ = load_config(path, {"TRIO_GATEWAY_LISTEN_PORT": "2222"}, {"log_level": "error"})
    assert config.listen == ListenConfig(host="10.0.0.1", port=2222)
    assert config.log_level == "error"


def test_precedence_holds_for_a_tyk_conf_too(tmp_path: Path) -> None:
    path = write(tmp_path, "tyk.conf", '{"listen_port": 1111, "secret": "from-file"}')
    config, _ = load_config(path, {"TRIO_GATEWAY_SECRET": "from-env"}, {"listen": "[::1]:3333"})
    assert config.listen == ListenConfig(host="::1", port=3333)
    assert config.secret == "from-env"


# -- command-line overrides ----------------------------------------------------------------------


def test_overrides_take_dotted_paths_sections_listen_strings_and_paths() -> None:
    config, _ = load_config(
        None,
        {},
        {
            "listen": "0.0.0.0:9000",
            "app_path": Path("/srv/apps"),
            "log_level": None,  # not given on the command line
            "limits": {"max_header_bytes": 4096},
            "storage.type": "redis",
        },
    )
    assert config.listen == ListenConfig(host="0.0.0.0", port=9000)
    assert config.app_path == "/srv/apps"
    assert config.log_level == "info"
    assert config.limits.max_header_bytes == 4096
    assert config.storage.type == "redis"


def test_unknown_override_is_an_error() -> None:
    assert error_of(None, None, **{"listen.prot": 1}).messages == [
        "command line: listen.prot: unknown key"
    ]


# -- HOST:PORT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:80", ("::", 80)),
        (" example.org:443 ", ("example.org", 443)),
    ],
)
def test_parse_listen_accepts_host_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("8080", "expected HOST:PORT"),
        (":8080", "the host is missing"),
        ("::1:8080", "IPv6 address needs brackets"),
        ("[::1]8080", "expected [IPV6]:PORT"),
        ("[]:8080", "expected [IPV6]:PORT"),
        ("host:", "port must be a number from 0 to 65535"),
        ("host:http", "port must be a number from 0 to 65535"),
        ("host:65536", "port must be a number from 0 to 65535"),
        ("host:-1", "port must be a number from 0 to 65535"),
    ],
)
def test_parse_listen_explains_bad_values(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_listen(value)
    (message,) = info.value.messages
    assert repr(value) in message
    assert fragment in message


def test_override_sections_merge_with_dotted_keys() -> None:
    config, _ = load_config(
        None, {}, {"limits.max_header_bytes": 1000, "limits": {"body_read_timeout": 2.0}}
    )
    assert config.limits.max_header_bytes == 1000
    assert config.limits.body_read_timeout == 2.0
