"""Properties: every valid config survives structure/unstructure, and the environment form."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_gateway._config import (
    CoprocessConfig,
    GatewayConfig,
    HooksConfig,
    LimitsConfig,
    ListenConfig,
    StorageConfig,
    UpstreamConfig,
    load_config,
    structure_config,
    unstructure_config,
)

seconds = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=0, max_value=2**40)
ports = st.integers(min_value=1, max_value=65535)
# Printable, no NUL: what a file or an environment variable can carry.
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
names = texts.filter(lambda s: s.strip() != "")

configs = st.builds(
    GatewayConfig,
    listen=st.builds(ListenConfig, host=names, port=st.integers(0, 65535)),
    app_path=st.none() | names,
    secret=texts,
    control_api_port=st.none() | ports,
    log_level=st.sampled_from(["debug", "info", "warning", "error"]),
    proxy_default_timeout=seconds,
    demo_upstream=st.none() | st.booleans(),
    limits=st.builds(
        LimitsConfig,
        max_header_bytes=st.integers(1, 2**20),
        max_request_body_bytes=sizes,
        header_read_timeout=seconds,
        keepalive_timeout=seconds,
        body_read_timeout=seconds,
        shutdown_timeout=st.just(0.0) | seconds,
    ),
    upstream=st.builds(
        UpstreamConfig,
        connect_timeout=seconds,
        max_idle_per_host=st.integers(0, 10_000),
        idle_timeout=seconds,
        ssl_insecure_skip_verify=st.booleans(),
        ca_file=st.none() | names,
    ),
    hooks=st.builds(HooksConfig, timeout=seconds, failure_mode=st.sampled_from(["closed", "open"])),
    coprocess=st.builds(
        CoprocessConfig,
        enable=st.booleans(),
        grpc_server=texts,
        grpc_recv_max_size=st.integers(1, 2**31),
        grpc_send_max_size=sizes,
        grpc_authority=texts,
    ),
    storage=st.builds(
        StorageConfig,
        type=st.sampled_from(["memory", "redis"]),
        host=names,
        port=ports,
        database=st.integers(0, 15),
        username=texts,
        password=texts,
        hash_keys=st.booleans(),
    ),
)


@settings(max_examples=100)
@given(configs)
def test_structure_of_unstructure_is_identity(config: GatewayConfig) -> None:
    raw = unstructure_config(config)
    assert structure_config(raw) == config
    # ...and the plain form survives JSON, the shape a file gives us.
    assert structure_config(json.loads(json.dumps(raw))) == config


@settings(max_examples=100)
@given(configs)
def test_command_line_overrides_can_carry_any_config(config: GatewayConfig) -> None:
    loaded, warnings = load_config(None, {}, unstructure_config(config))
    assert loaded == config
    assert warnings == []


def _env_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)  # repr-exact for floats


def _flatten(raw: dict[str, Any], prefix: str = "TRIO_GATEWAY_") -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            env.update(_flatten(value, f"{prefix}{key.upper()}_"))
        else:
            env[f"{prefix}{key.upper()}"] = _env_text(value)
    return env


@settings(max_examples=100)
@given(configs)
def test_environment_can_carry_any_config(config: GatewayConfig) -> None:
    env = _flatten(unstructure_config(config))
    loaded, warnings = load_config(None, env, {})
    assert warnings == []
    # An empty app_path/ca_file cannot be told from "unset" in the environment; names excludes it.
    assert loaded == config
