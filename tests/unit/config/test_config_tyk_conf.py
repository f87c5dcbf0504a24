"""Reading a Tyk ``tyk.conf``: the keys that apply, and one warning for the ones that do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trio_gateway._config import GatewayConfig, ListenConfig, load_config, map_tyk_conf
from trio_gateway.errors import ConfigError

EXAMPLES = Path(__file__).parents[3] / "examples" / "config"


def load_tyk(tmp_path: Path, data: Any, name: str = "tyk.conf") -> tuple[GatewayConfig, list[str]]:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_config(path, {}, {})


def tyk_errors(tmp_path: Path, data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_tyk(tmp_path, data)
    return [m.replace(f"{tmp_path}/", "") for m in info.value.messages]


FULL_TYK_CONF: dict[str, Any] = {
    "listen_address": "0.0.0.0",
    "listen_port": 8181,
    "secret": "admin-secret",
    "control_api_port": 9696,
    "app_path": "/opt/tyk-gateway/apps",
    "proxy_default_timeout": 12.5,
    "log_level": "warn",
    "hash_keys": True,
    "proxy_ssl_insecure_skip_verify": True,
    "max_idle_connections_per_host": 7,
    "http_server_options": {"read_timeout": 20, "max_request_body_size": 5000},
    "storage": {
        "type": "redis",
        "host": "redis.local",
        "port": 6380,
        "database": 3,
        "username": "tyk",
        "password": "pw",
    },
    "coprocess_options": {
        "enable_coprocess": True,
        "coprocess_grpc_server": "tcp://127.0.0.1:5555",
        "grpc_recv_max_size": 1000,
        "grpc_send_max_size": 2000,
        "grpc_authority": "plugins.local",
    },
}


@pytest.mark.parametrize("name", ["tyk.conf", "tyk.json", "TYK.CONF"])
def test_every_mapped_tyk_key_lands_in_our_field(tmp_path: Path, name: str) -> None:
    config, warnings = load_tyk(tmp_path, FULL_TYK_CONF, name)
    assert warnings == []
    assert config.listen == ListenConfig(host="0.0.0.0", port=8181)
    assert config.secret == "admin-secret"
    assert config.control_api_port == 9696
    assert config.app_path == "/opt/tyk-gateway/apps"
    assert config.proxy_default_timeout == 12.5
    assert config.log_level == "warning"  # Tyk spells it "warn"
    assert config.storage.hash_keys is True
    assert config.upstream.ssl_insecure_skip_verify is True
    assert config.upstream.max_idle_per_host == 7
    assert config.limits.header_read_timeout == 20.0
    assert config.limits.body_read_timeout == 20.0
    assert config.limits.max_request_body_bytes == 5000
    assert config.storage.type == "redis"
    assert (config.storage.host, config.storage.port, config.storage.database) == (
        "redis.local",
        6380,
        3,
    )
    assert (config.storage.username, config.storage.password) == ("tyk", "pw")
    assert config.coprocess.enable is True
    assert config.coprocess.grpc_server == "tcp://127.0.0.1:5555"
    assert config.coprocess.grpc_recv_max_size == 1000
    assert config.coprocess.grpc_send_max_size == 2000
    assert config.coprocess.grpc_authority == "plugins.local"


def test_ignored_keys_come_in_exactly_one_warning(tmp_path: Path) -> None:
    data = {
        **FULL_TYK_CONF,
        "template_path": "templates",
        "policies": {"policy_source": "file"},
        "http_server_options": {"read_timeout": 20, "write_timeout": 30, "use_ssl": False},
        "storage": {"type": "redis", "optimisation_max_idle": 2000},
        "coprocess_options": {"python_version": "3.11"},
    }
    path = tmp_path / "tyk.conf"
    config, warnings = load_tyk(tmp_path, data)
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning.startswith(f"{path}: ignored 5 tyk.conf key(s) that do not apply")
    listed = warning.split(": ", 2)[2].split(", ")
    assert listed == sorted(
        [
            "coprocess_options.python_version",
            "http_server_options.use_ssl",
            "policies",
            "storage.optimisation_max_idle",
            "template_path",
        ]
    )
    assert config.limits.header_read_timeout == 20.0  # the mapped keys still apply
    assert config.limits.send_timeout == 30.0


def test_tyk_listener_tls_skip_verify_does_not_loosen_upstream_checks(tmp_path: Path) -> None:
    # In Tyk this key is about the gateway's own TLS listener, not about upstream certificates.
    config, warnings = load_tyk(
        tmp_path, {"http_server_options": {"ssl_insecure_skip_verify": True}}
    )
    assert config.upstream.ssl_insecure_skip_verify is False
    assert "http_server_options.ssl_insecure_skip_verify" in warnings[0]


def test_go_zero_values_keep_our_defaults(tmp_path: Path) -> None:
    config, warnings = load_tyk(
        tmp_path,
        {
            "listen_address": "",
            "listen_port": 0,
            "control_api_port": 0,
            "app_path": "",
            "proxy_default_timeout": 0,
            "log_level": "",
            "max_idle_connections_per_host": 0,
            "http_server_options": {"read_timeout": 0, "max_request_body_size": 0},
            "coprocess_options": {"grpc_recv_max_size": 0, "enable_coprocess": False},
        },
    )
    assert config == GatewayConfig()
    assert warnings == []


def test_a_storage_section_without_type_means_redis(tmp_path: Path) -> None:
    config, _ = load_tyk(tmp_path, {"storage": {"host": "localhost", "port": 6379}})
    assert config.storage.type == "redis"
    assert config.storage.host == "localhost"


def test_no_storage_section_keeps_the_memory_store(tmp_path: Path) -> None:
    config, _ = load_tyk(tmp_path, {"listen_port": 8080})
    assert config.storage.type == "memory"


def test_tyk_sample_secret_gets_its_own_warning(tmp_path: Path) -> None:
    _, warnings = load_tyk(tmp_path, {"secret": "352d20ee67be67f6340b4c0605b044b7"})
    assert warnings == [
        f"{tmp_path / 'tyk.conf'}: secret is Tyk's published sample secret; "
        "anyone can use the admin API until you change it"
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"listen_port": "8080"}, "tyk.conf: listen_port: expected an integer, got a string"),
        ({"listen_port": 99999}, "tyk.conf: listen_port: must be a port number from 0 to 65535"),
        ({"secret": 5}, "tyk.conf: secret: expected a string, got a number"),
        ({"log_level": "trace"}, "tyk.conf: log_level: must be one of"),
        ({"hash_keys": "yes"}, "tyk.conf: hash_keys: expected true or false, got a string"),
        ({"storage": {"port": "x"}}, "tyk.conf: storage.port: expected an integer, got a string"),
        ({"storage": {"type": "mongo"}}, "tyk.conf: storage.type: must be one of"),
        (
            {"http_server_options": {"read_timeout": -5}},
            "tyk.conf: http_server_options.read_timeout: must be a number > 0",
        ),
        (
            {"coprocess_options": {"grpc_send_max_size": -1}},
            "tyk.conf: coprocess_options.grpc_send_max_size: must be a number >= 0",
        ),
    ],
)
def test_bad_tyk_values_are_reported_under_the_tyk_key(
    tmp_path: Path, data: dict[str, Any], expected: str
) -> None:
    (message,) = tyk_errors(tmp_path, data)
    assert message.startswith(expected), message


def test_a_section_that_is_not_an_object_is_listed_as_ignored() -> None:
    raw, _, warnings = map_tyk_conf({"storage": "redis://x"})
    assert raw == {}
    assert warnings == ["ignored 1 tyk.conf key(s) that do not apply to trio-gateway: storage"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{not json", "not valid JSON (tyk.conf)"), ("[1, 2]", "must be a JSON object, got an array")],
)
def test_unreadable_tyk_conf_names_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "tyk.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, {})
    (message,) = info.value.messages
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_shipped_example_tyk_conf_loads_with_one_warning() -> None:
    config, warnings = load_config(EXAMPLES / "tyk.conf", {}, {})
    assert config.storage.type == "redis"
    assert config.coprocess.enable is True
    assert len(warnings) == 1
    assert "enable_websockets" in warnings[0]
    assert "write_timeout" not in warnings[0]
    assert config.limits.send_timeout == 120.0
