"""Tyk's settings mapped onto ours: a ``tyk.conf`` file, and ``TYK_GW_*`` variables (pure).

``tyk_env.py`` reads the ``TYK_GW_*`` variables as Tyk does, by tyk.conf key; this module maps
tyk.conf keys, from either source, onto our key paths. Keys that do not apply here are reported
in ONE warning. Tyk's zero values (``0``, ``""``, ``false``) mean "Tyk's default", so they leave
ours in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .convert import UNSUPPORTED_STORAGE
from .layer import KeyPath, Layer, Raw, set_in
from .model import GatewayConfig
from .tyk_env import TykEnv

__all__ = [
    "SAMPLE_SECRET_WARNING",
    "TYK_KEYS",
    "TYK_SAMPLE_SECRET",
    "map_tyk_conf",
    "tyk_env_layer",
]

_DEFAULTS: Final = GatewayConfig()

#: Tyk key path -> our key path(s). Tyk's zero values (0, "", false) mean "Tyk's default", so they
#: leave ours in place.
TYK_KEYS: Final[Mapping[KeyPath, tuple[KeyPath, ...]]] = {
    ("listen_address",): (("listen", "host"),),
    ("listen_port",): (("listen", "port"),),
    ("secret",): (("secret",),),
    ("control_api_port",): (("control_api_port",),),
    ("app_path",): (("app_path",),),
    ("proxy_default_timeout",): (("proxy_default_timeout",),),
    ("log_level",): (("log_level",),),
    ("hash_keys",): (("storage", "hash_keys"),),
    ("proxy_ssl_insecure_skip_verify",): (("upstream", "ssl_insecure_skip_verify"),),
    ("max_idle_connections_per_host",): (("upstream", "max_idle_per_host"),),
    ("storage", "type"): (("storage", "type"),),
    ("storage", "host"): (("storage", "host"),),
    ("storage", "port"): (("storage", "port"),),
    ("storage", "database"): (("storage", "database"),),
    ("storage", "username"): (("storage", "username"),),
    ("storage", "password"): (("storage", "password"),),
    **{("storage", key): (("storage", key),) for key in UNSUPPORTED_STORAGE},
    ("coprocess_options", "enable_coprocess"): (("coprocess", "enable"),),
    ("coprocess_options", "coprocess_grpc_server"): (("coprocess", "grpc_server"),),
    ("coprocess_options", "grpc_recv_max_size"): (("coprocess", "grpc_recv_max_size"),),
    ("coprocess_options", "grpc_send_max_size"): (("coprocess", "grpc_send_max_size"),),
    ("coprocess_options", "grpc_authority"): (("coprocess", "grpc_authority"),),
    # Go's ReadTimeout bounds reading the whole request: the head, and the body's progress.
    ("http_server_options", "read_timeout"): (
        ("limits", "header_read_timeout"),
        ("limits", "body_read_timeout"),
    ),
    # Go's WriteTimeout bounds writing the response; ours bounds each stalled write.
    ("http_server_options", "write_timeout"): (("limits", "send_timeout"),),
    ("http_server_options", "max_request_body_size"): (("limits", "max_request_body_bytes"),),
    ("rate_limit_response_headers",): (("rate_limit_response_headers",),),
    ("enable_analytics",): (("analytics", "enable"),),
    ("analytics_config", "enable_multiple_analytics_keys"): (("analytics", "multiple_keys"),),
    ("analytics_config", "storage_expiration_time"): (("analytics", "storage_expiration_time"),),
    ("analytics_config", "records_buffer_size"): (("analytics", "buffer_size"),),
    ("analytics_config", "enable_detailed_recording"): (
        ("analytics", "enable_detailed_recording"),
    ),
    ("enable_bundle_downloader",): (("bundles", "enable_downloader"),),
    ("bundle_base_url",): (("bundles", "base_url"),),
    ("bundle_insecure_skip_verify",): (("bundles", "insecure_skip_verify"),),
    ("public_key_path",): (("bundles", "public_key_path"),),
    ("skip_verify_existing_plugin_bundle",): (("bundles", "skip_verify_existing"),),
    ("middleware_path",): (("bundles", "middleware_path"),),
    ("enable_jsvm",): (("javascript", "enable"),),
    ("jsvm_timeout",): (("javascript", "timeout"),),
    ("tyk_js_path",): (("javascript", "tyk_js_path"),),
    ("disable_virtual_path_blobs",): (("javascript", "disable_virtual_path_blobs"),),
    # Tyk caches sessions in each process (10 s by default); ours is the Redis store's cache.
    ("local_session_cache", "cached_session_timeout"): (("storage", "session_cache_ttl"),),
    ("local_session_cache", "disable_cached_session_state"): (),
}
_TYK_SECTIONS: Final = frozenset(path[0] for path in TYK_KEYS if len(path) == 2)
#: Tyk's documented sample secret: a config that still carries it has an admin API anyone can use.
TYK_SAMPLE_SECRET: Final = "352d20ee67be67f6340b4c0605b044b7"
_TYK_LOG_LEVELS: Final = {"warn": "warning"}
SAMPLE_SECRET_WARNING: Final = (
    "secret is Tyk's published sample secret; anyone can use the admin API until you change it"
)


def _is_go_zero(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and value == 0)
    )


def _tyk_targets(tyk_path: KeyPath, value: Any) -> list[tuple[KeyPath, Any]]:
    """Our key paths and values for one tyk.conf key's value."""
    if tyk_path == ("jsvm_timeout",) and type(value) in (int, float) and value <= 0:
        value = _default_at(("javascript", "timeout"))  # Tyk: 0 or less means its 5 s default
    if tyk_path == ("log_level",) and isinstance(value, str):
        value = _TYK_LOG_LEVELS.get(value.lower(), value.lower())
    return [(target, value) for target in TYK_KEYS[tyk_path]]


def _default_at(path: KeyPath) -> Any:
    node: Any = _DEFAULTS
    for key in path:
        node = getattr(node, key)
    return node


def tyk_env_layer(tyk_env: TykEnv) -> Layer:
    """Tyk's ``TYK_GW_*`` variables as a layer above the file (Tyk: the environment wins).

    A variable set to Go's zero value (``0``, ``""``, ``false``) overrides the file with Tyk's
    meaning of zero, "the default", so ours is restored for that key.
    """
    raw: Raw = {}
    names: dict[str, str] = {}
    for tyk_path, value in tyk_env.values.items():
        variable = tyk_env.names[tyk_path]
        if tyk_path == ("local_session_cache", "disable_cached_session_state"):
            if value is True:
                set_in(raw, ("storage", "session_cache_ttl"), 0.0)
                names["storage.session_cache_ttl"] = variable
            continue
        zero = _is_go_zero(value)
        for target, our_value in _tyk_targets(tyk_path, value):
            if zero and target[-1] not in UNSUPPORTED_STORAGE:
                our_value = _default_at(target)
            set_in(raw, target, our_value)
            names[".".join(target)] = variable
    storage = [path for path in tyk_env.values if path[0] == "storage"]
    if storage and ("storage", "type") not in tyk_env.values:
        # As for a tyk.conf storage section: Tyk's only store is Redis.
        set_in(raw, ("storage", "type"), "redis")
        names["storage.type"] = tyk_env.names[storage[0]]
    return Layer(source="environment", raw=raw, names=names)


def map_tyk_conf(data: Mapping[str, Any]) -> tuple[Raw, dict[str, str], list[str]]:
    """Map a parsed ``tyk.conf`` onto our settings (pure).

    Returns our nested settings, our key path -> Tyk key (for messages), and warnings: one that
    lists every key that does not apply here, and one if the admin secret is Tyk's sample secret.
    """
    raw: Raw = {}
    names: dict[str, str] = {}
    ignored: list[str] = []

    def visit(tyk_path: KeyPath, value: Any) -> None:
        tyk_name = ".".join(tyk_path)
        if tyk_path not in TYK_KEYS:
            ignored.append(tyk_name)
            return
        if _is_go_zero(value):
            return
        for target, our_value in _tyk_targets(tyk_path, value):
            set_in(raw, target, our_value)
            names[".".join(target)] = tyk_name

    for key, value in data.items():
        if key in _TYK_SECTIONS and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                visit((key, sub_key), sub_value)
        else:
            visit((key,), value)

    cache = data.get("local_session_cache")
    if isinstance(cache, Mapping) and cache.get("disable_cached_session_state") is True:
        set_in(raw, ("storage", "session_cache_ttl"), 0.0)
        names["storage.session_cache_ttl"] = "local_session_cache.disable_cached_session_state"

    storage = data.get("storage")
    if isinstance(storage, Mapping) and not storage.get("type"):
        # Tyk's only store is Redis: a storage section means Redis even without a type.
        set_in(raw, ("storage", "type"), "redis")
        names["storage.type"] = "storage.type"

    warnings = []
    if ignored:
        warnings.append(
            f"ignored {len(ignored)} tyk.conf key(s) that do not apply to trio-gateway: "
            + ", ".join(sorted(ignored))
        )
    if data.get("secret") == TYK_SAMPLE_SECRET:
        warnings.append(SAMPLE_SECRET_WARNING)
    return raw, names, warnings
