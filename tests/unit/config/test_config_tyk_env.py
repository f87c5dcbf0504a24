"""Tyk's TYK_GW_* environment variables: Tyk's names, Go's value syntax, Tyk's precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trio_gateway._config import load_config
from trio_gateway._config.tyk_env import GO_FIELDS, tyk_env_name
from trio_gateway.errors import ConfigError


def tyk_conf(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "tyk.conf"
    path.write_text(json.dumps(data))
    return path


def test_the_variables_tyk_plugin_demos_set_configure_the_grpc_server(tmp_path: Path) -> None:
    # What Tyk's own gRPC plugin READMEs and docker-compose demos do.
    path = tyk_conf(tmp_path, {"listen_port": 8080, "coprocess_options": {}})
    config, warnings = load_config(
        path,
        {
            "TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS": "true",
            "TYK_GW_COPROCESSOPTIONS_COPROCESSGRPCSERVER": "tcp://plugins:5555",
        },
        {},
    )
    assert config.coprocess.enable is True
    assert config.coprocess.grpc_server == "tcp://plugins:5555"
    assert not [w for w in warnings if "TYK_GW" in w]


def test_environment_overrides_the_file_as_in_tyk(tmp_path: Path) -> None:
    path = tyk_conf(
        tmp_path,
        {
            "listen_port": 8080,
            "secret": "from-file",
            "hash_keys": True,
            "coprocess_options": {"enable_coprocess": True},
            "storage": {"host": "file-redis", "port": 6379},
        },
    )
    config, _ = load_config(
        path,
        {
            "TYK_GW_LISTENPORT": "9001",
            "TYK_GW_SECRET": "from-env",
            "TYK_GW_HASHKEYS": "f",  # Go's ParseBool spelling
            "TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS": "false",
            "TYK_GW_STORAGE_HOST": "env-redis",
            "TYK_GW_MAXIDLECONNSPERHOST": "7",  # Go field MaxIdleConnsPerHost, not the JSON key
            "TYK_GW_RATELIMITRESPONSEHEADERS": "rate_limits",  # embedded struct: no segment
            "TYK_GW_HTTPSERVEROPTIONS_READTIMEOUT": "12",
            "TYK_GW_PROXYDEFAULTTIMEOUT": "2.5",
        },
        {},
    )
    assert config.listen.port == 9001
    assert config.secret == "from-env"
    assert config.storage.hash_keys is False
    assert config.coprocess.enable is False
    assert config.storage.host == "env-redis"
    assert config.storage.port == 6379  # the file's other keys stay
    assert config.upstream.max_idle_per_host == 7
    assert config.rate_limit_response_headers == "rate_limits"
    assert config.limits.header_read_timeout == 12
    assert config.proxy_default_timeout == 2.5


def test_ours_override_tyks_and_the_command_line_overrides_both(tmp_path: Path) -> None:
    env = {"TYK_GW_LISTENPORT": "9001", "TRIO_GATEWAY_LISTEN_PORT": "9002", "TYK_GW_SECRET": "t"}
    config, _ = load_config(tyk_conf(tmp_path, {"listen_port": 9000}), env, {})
    assert config.listen.port == 9002
    assert config.secret == "t"
    config, _ = load_config(None, env, {"listen.port": 9003})
    assert config.listen.port == 9003


def test_bad_values_and_refused_features_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            None,
            {
                "TYK_GW_LISTENPORT": "eighty",
                "TYK_GW_HASHKEYS": "yes",  # not a Go boolean
                "TYK_GW_STORAGE_ENABLECLUSTER": "true",
            },
            {},
        )
    messages = info.value.messages
    assert "environment: TYK_GW_LISTENPORT: expected an integer, got 'eighty'" in messages
    hash_keys = "environment: TYK_GW_HASHKEYS: expected a Go boolean"
    assert any(m.startswith(hash_keys) for m in messages)
    assert any(
        m.startswith("environment: TYK_GW_STORAGE_ENABLECLUSTER: Redis Cluster is not supported")
        for m in messages
    )


def test_variables_for_keys_we_do_not_use_are_listed_in_one_warning() -> None:
    env = {"TYK_GW_TEMPLATEPATH": "true", "TYK_GW_PIDFILELOCATION": "x"}
    _, warnings = load_config(None, env, {})
    assert warnings == [
        "ignored TYK_GW_* environment variables for tyk.conf keys that do not apply to "
        "trio-gateway: TYK_GW_PIDFILELOCATION, TYK_GW_TEMPLATEPATH"
    ]


def test_jsvm_variables_and_keys_set_the_javascript_settings(tmp_path: Path) -> None:
    env = {"TYK_GW_ENABLEJSVM": "true", "TYK_GW_JSVMTIMEOUT": "7", "TYK_GW_TYKJSPATH": "/g.js"}
    config, warnings = load_config(None, env, {})
    assert warnings == []
    assert (config.javascript.enable, config.javascript.timeout) == (True, 7.0)
    assert config.javascript.tyk_js_path == "/g.js"
    # A tyk.conf jsvm_timeout of 0 means Tyk's default of 5 s.
    conf = tmp_path / "tyk.conf"
    conf.write_text('{"enable_jsvm": true, "jsvm_timeout": 0}')
    config, _ = load_config(conf, {}, {})
    assert (config.javascript.enable, config.javascript.timeout) == (True, 5.0)


def test_omit_config_file_skips_the_tyk_conf(tmp_path: Path) -> None:
    path = tyk_conf(tmp_path, {"secret": "from-file"})
    config, warnings = load_config(path, {"TYK_GW_OMITCONFIGFILE": "true"}, {})
    assert config.secret == ""
    assert warnings == [f"TYK_GW_OMITCONFIGFILE=true: {path} is not read (Tyk's meaning)"]


def test_a_zero_value_in_the_environment_restores_the_default(tmp_path: Path) -> None:
    # Tyk reads 0 as "use the default"; the variable still overrides the file's value.
    config, _ = load_config(
        tyk_conf(tmp_path, {"proxy_default_timeout": 5}), {"TYK_GW_PROXYDEFAULTTIMEOUT": "0"}, {}
    )
    assert config.proxy_default_timeout == 30.0


@pytest.mark.parametrize(
    ("tyk_key", "variable"),
    [
        (("listen_address",), "TYK_GW_LISTENADDRESS"),
        (("control_api_port",), "TYK_GW_CONTROLAPIPORT"),
        (("app_path",), "TYK_GW_APPPATH"),
        (("log_level",), "TYK_GW_LOGLEVEL"),
        (("proxy_ssl_insecure_skip_verify",), "TYK_GW_PROXYSSLINSECURESKIPVERIFY"),
        (("storage", "password"), "TYK_GW_STORAGE_PASSWORD"),
        (("coprocess_options", "grpc_recv_max_size"), "TYK_GW_COPROCESSOPTIONS_GRPCRECVMAXSIZE"),
        (("coprocess_options", "grpc_authority"), "TYK_GW_COPROCESSOPTIONS_GRPCAUTHORITY"),
        (
            ("http_server_options", "max_request_body_size"),
            "TYK_GW_HTTPSERVEROPTIONS_MAXREQUESTBODYSIZE",
        ),
        (
            ("local_session_cache", "disable_cached_session_state"),
            "TYK_GW_LOCALSESSIONCACHE_DISABLECACHESESSIONSTATE",
        ),
    ],
)
def test_names_follow_tyks_go_field_names(tyk_key: tuple[str, ...], variable: str) -> None:
    assert tyk_env_name(tyk_key) == variable


def test_every_tyk_conf_key_we_read_has_its_variable() -> None:
    from trio_gateway._config.tyk_conf import TYK_KEYS

    assert set(TYK_KEYS) == set(GO_FIELDS)


def test_the_sample_secret_warning_goes_when_the_environment_replaces_it(tmp_path: Path) -> None:
    path = tyk_conf(tmp_path, {"secret": "352d20ee67be67f6340b4c0605b044b7"})
    _, warnings = load_config(path, {"TYK_GW_SECRET": "a-real-secret"}, {})
    assert warnings == []


def test_the_configuration_reference_names_every_variable() -> None:
    from trio_gateway._config import env_variable_names

    reference = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    missing = [name for name in env_variable_names() if f"`{name}`" not in reference]
    missing += [tyk_env_name(path) for path in GO_FIELDS if tyk_env_name(path) not in reference]
    assert missing == []


def test_storage_variables_mean_redis_as_a_storage_section_does() -> None:
    config, _ = load_config(None, {"TYK_GW_STORAGE_HOST": "tyk-redis"}, {})
    assert (config.storage.type, config.storage.host) == ("redis", "tyk-redis")
