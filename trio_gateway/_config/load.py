"""Load :class:`GatewayConfig` from a file, the environment and the command line.

Precedence, highest first: command line (``overrides``) > ``TRIO_GATEWAY_*`` environment variables >
Tyk's ``TYK_GW_*`` environment variables (``tyk_env.py``; as in Tyk, they override the file) > the
config file > the defaults in ``model.py``.

The file format follows the extension: ``.toml`` is ours (unknown keys are errors, so a typo never
silently falls back to a default); ``.json``/``.conf`` is read as a Tyk ``tyk.conf``, whose keys
that apply are mapped onto ours and whose other keys are reported in ONE warning.

Each source is checked on its own before the sources are merged, so that every problem is reported
with the name the user wrote (``gateway.toml: listen.port``, ``environment:
TRIO_GATEWAY_LISTEN_PORT``, ``tyk.conf: listen_port``). All problems are collected and raised
together as one :class:`~trio_gateway.errors.ConfigError`.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from .._converter import describe_type, make_converter
from ..errors import ConfigError
from .model import (
    CoprocessConfig,
    FieldValueError,
    GatewayConfig,
    HooksConfig,
    LimitsConfig,
    ListenConfig,
    StorageConfig,
    UpstreamConfig,
)
from .tyk_env import OMIT_CONFIG_FILE, TykEnv, read_tyk_env

__all__ = [
    "ENV_PREFIX",
    "configure_converter",
    "env_variable_names",
    "load_config",
    "parse_listen",
]

ENV_PREFIX: Final = "TRIO_GATEWAY_"
_DEFAULTS: Final = GatewayConfig()

_CONFIG_CLASSES: Final[tuple[type, ...]] = (
    ListenConfig,
    LimitsConfig,
    UpstreamConfig,
    HooksConfig,
    CoprocessConfig,
    StorageConfig,
    GatewayConfig,
)

Path_ = tuple[str, ...]
Raw = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# The converter


class _ShapeError(TypeError):
    """A value of the wrong shape; its text is the whole message."""


def _structure_literal(value: Any, literal: Any) -> Any:
    choices = get_args(literal)
    if value not in choices or type(value) is not type(choices[0]):
        shown = ", ".join(repr(c) for c in choices)
        raise _ShapeError(f"must be one of {shown} (got {value!r})")
    return value


def _is_literal(annotation: Any) -> bool:
    origin: object = get_origin(annotation)
    return origin is Literal


def _mapping_only(inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # cattrs would report a section given as a scalar with an internal TypeError; say it plainly.
    def structure(value: Any, cls: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _ShapeError(f"expected a table of settings, got {describe_type(value)}")
        return inner(value, cls)

    return structure


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the gateway config's hooks: Literal choices, and unknown keys as errors.

    The project converter tolerates unknown keys (Tyk definitions carry many we ignore); the
    gateway's own settings do not, so the hooks here forbid them class by class.
    """
    converter.register_structure_hook_func(_is_literal, _structure_literal)
    for cls in _CONFIG_CLASSES:
        attrs.resolve_types(cls)
        converter.register_structure_hook(
            cls,
            _mapping_only(make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)),
        )


def _make_config_converter() -> cattrs.Converter:
    converter = make_converter()
    configure_converter(converter)
    return converter


_CONVERTER: Final = _make_config_converter()


def structure_config(raw: Mapping[str, Any]) -> GatewayConfig:
    """Structure already-merged settings (``GatewayConfig`` unstructured form) into the model."""
    return _CONVERTER.structure(raw, GatewayConfig)


def unstructure_config(config: GatewayConfig) -> Raw:
    """The plain-dict form of ``config``, the inverse of :func:`structure_config`."""
    raw: Raw = _CONVERTER.unstructure(config)
    return raw


# --------------------------------------------------------------------------------------------------
# Error messages


def _problems(exc: BaseException, path: Path_ = ()) -> Iterator[tuple[Path_, str]]:
    """Flatten cattrs' exception groups into (key path, message) pairs."""
    if isinstance(exc, cattrs.ClassValidationError):
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _problems(sub, (*path, note.name))
        for sub in without_notes:
            yield from _problems(sub, path)
    elif isinstance(exc, FieldValueError):
        yield (*path, exc.field), exc.message
    elif isinstance(exc, cattrs.ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield (*path, key), "unknown key"
    elif isinstance(exc, TypeError | ValueError):
        yield path, str(exc)
    else:
        yield path, cattrs.v.format_exception(exc, None)


@attrs.frozen(kw_only=True)
class _Layer:
    """One source of settings, in our nested shape, and how to name its keys in messages."""

    source: str
    raw: Raw
    #: our dotted key path -> the key as the user wrote it (a Tyk key, an environment variable)
    names: Mapping[str, str] = attrs.field(factory=dict)

    def name(self, path: Path_) -> str:
        dotted = ".".join(path)
        return self.names.get(dotted, dotted or "(top level)")

    def message(self, path: Path_, text: str) -> str:
        return f"{self.source}: {self.name(path)}: {text}"


# --------------------------------------------------------------------------------------------------
# Redis features we refuse (until the Redis store supports them)

_UNSUPPORTED_STORAGE: Final = {
    "use_ssl": "Redis over TLS is not supported yet",
    "enable_cluster": "Redis Cluster is not supported yet",
    "addrs": "several Redis addresses (Cluster or Sentinel) are not supported yet",
    "hosts": "several Redis addresses (Cluster or Sentinel) are not supported yet",
    "master_name": "Redis Sentinel is not supported yet",
}
_FALSE_WORDS: Final = frozenset({"", "0", "false", "no", "off"})


def _asks_for(value: Any) -> bool:
    """Whether a setting's value switches the feature on (``false``/empty/0 does not)."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def _refuse_unsupported_storage(layer: _Layer) -> list[str]:
    storage = layer.raw.get("storage")
    if not isinstance(storage, dict):
        return []
    messages = []
    for key, why in _UNSUPPORTED_STORAGE.items():
        if key in storage and _asks_for(storage.pop(key)):
            messages.append(layer.message(("storage", key), f"{why}; use a single Redis host"))
    return messages


def _check_layer(layer: _Layer) -> list[str]:
    """Every problem in one source, checked on its own so that messages name that source."""
    messages = _refuse_unsupported_storage(layer)
    try:
        _CONVERTER.structure(layer.raw, GatewayConfig)
    except (cattrs.BaseValidationError, _ShapeError, FieldValueError) as exc:
        messages.extend(layer.message(path, text) for path, text in _problems(exc))
    return messages


# --------------------------------------------------------------------------------------------------
# Helpers for nested dicts


def _set_in(raw: Raw, path: Path_, value: Any) -> None:
    node = raw
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            # A scalar where a section belongs; keep the scalar so structuring reports it.
            return
        node = child
    node[path[-1]] = value


def _merge(base: Raw, top: Mapping[str, Any]) -> Raw:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------------
# HOST:PORT


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 in brackets: ``[::1]:8080``) into a host and a port.

    Raises:
        ConfigError: the value is not ``HOST:PORT`` with a port from 0 to 65535.
    """
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not host:
            raise ConfigError([f"{value!r}: expected [IPV6]:PORT, for example [::1]:8080"])
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError([f"{value!r}: expected HOST:PORT, for example 127.0.0.1:8080"])
        if ":" in host:
            raise ConfigError([f"{value!r}: an IPv6 address needs brackets, as in [::1]:8080"])
        if not host:
            raise ConfigError([f"{value!r}: the host is missing, as in 0.0.0.0:8080"])
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError([f"{value!r}: the port must be a number from 0 to 65535"])
    return host, int(port_text)


# --------------------------------------------------------------------------------------------------
# Environment


def _leaf_fields(cls: type, prefix: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    for field in attrs.fields(cls):
        if attrs.has(field.type):
            yield from _leaf_fields(field.type, (*prefix, field.name))
        else:
            yield (*prefix, field.name), field.type


def _env_table() -> dict[str, tuple[Path_, Any]]:
    attrs.resolve_types(GatewayConfig)
    table = {
        ENV_PREFIX + "_".join(path).upper(): (path, field_type)
        for path, field_type in _leaf_fields(GatewayConfig)
    }
    # Refused Redis features are recognised too, so asking for them fails instead of being ignored.
    for key in _UNSUPPORTED_STORAGE:
        table[f"{ENV_PREFIX}STORAGE_{key.upper()}"] = (("storage", key), str)
    return table


_ENV_TABLE: Final = _env_table()
#: ``HOST:PORT`` settings (``listen``, ``demo_listen``) by their combined variable
#: (``TRIO_GATEWAY_LISTEN=HOST:PORT``, the environment twin of ``--listen``).
_ENV_ADDRESSES: Final = {ENV_PREFIX + "LISTEN": "listen", ENV_PREFIX + "DEMO_LISTEN": "demo_listen"}


def env_variable_names() -> list[str]:
    """Every ``TRIO_GATEWAY_*`` variable the loader reads, sorted (for ``--help`` and docs)."""
    return sorted([*_ENV_TABLE, *_ENV_ADDRESSES])


_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})


def _parse_env_value(text: str, field_type: Any) -> Any:
    """Turn a variable's text into the field's type; raise ValueError with a reason."""
    args = get_args(field_type)
    if get_origin(field_type) in (typing.Union, types.UnionType) and type(None) in args:
        if not text.strip():
            return None
        (field_type,) = (a for a in args if a is not type(None))
    if field_type is bool:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS - {""}:
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if field_type is int:
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if field_type is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {text!r}") from None
    return text  # str and Literal: the converter checks the choices


def _env_layer(env: Mapping[str, str]) -> tuple[_Layer, list[str], list[str]]:
    """The environment's settings, the problems found while parsing them, and warnings."""
    layer = _Layer(source="environment", raw={}, names={})
    names: dict[str, str] = {}
    errors: list[str] = []
    unknown: list[str] = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        text = env[variable]
        section = _ENV_ADDRESSES.get(variable)
        if section is not None:
            try:
                host, port = parse_listen(text)
            except ConfigError as exc:
                errors.extend(f"environment: {variable}: {m}" for m in exc.messages)
                continue
            # The specific variables are more precise, so they win over the combined one.
            layer.raw.setdefault(section, {}).setdefault("host", host)
            layer.raw[section].setdefault("port", port)
            names.setdefault(f"{section}.host", variable)
            names.setdefault(f"{section}.port", variable)
            continue
        if variable not in _ENV_TABLE:
            unknown.append(variable)
            continue
        path, field_type = _ENV_TABLE[variable]
        try:
            value = _parse_env_value(text, field_type)
        except ValueError as exc:
            errors.append(f"environment: {variable}: {exc}")
            continue
        _set_in(layer.raw, path, value)
        names[".".join(path)] = variable
    warnings = []
    if unknown:
        warnings.append(
            "ignored unknown environment variables (check the spelling): " + ", ".join(unknown)
        )
    return attrs.evolve(layer, names=names), errors, warnings


# --------------------------------------------------------------------------------------------------
# Command line


def _overrides_layer(overrides: Mapping[str, Any]) -> tuple[_Layer, list[str]]:
    """Command-line settings: dotted key paths (``listen.port``) or sections; ``None`` = not given.

    ``listen`` and ``demo_listen`` may also be ``HOST:PORT`` strings, as ``--listen`` takes them.
    """
    raw: Raw = {}
    errors: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, PathLike):
            value = str(Path(value))
        if key in ("listen", "demo_listen") and isinstance(value, str):
            try:
                host, port = parse_listen(value)
            except ConfigError as exc:
                errors.extend(f"command line: {key}: {m}" for m in exc.messages)
                continue
            value = {"host": host, "port": port}
        path = tuple(key.split("."))
        if isinstance(value, Mapping):
            # A section merges with what earlier dotted keys set inside it.
            below: Any = raw
            for part in path:
                below = below.get(part, {}) if isinstance(below, dict) else {}
            value = _merge(below if isinstance(below, dict) else {}, value)
        _set_in(raw, path, value)
    return _Layer(source="command line", raw=raw), errors


# --------------------------------------------------------------------------------------------------
# Files


def _read_file(path: Path) -> tuple[_Layer, list[str]]:
    """Read one config file by its extension; return its layer and its warnings."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".conf"):
        raise ConfigError(
            [
                f"{path}: unknown config format {suffix or '(no extension)'!r}; "
                "use .toml (trio-gateway) or .json/.conf (Tyk tyk.conf)"
            ]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror or exc}"]) from exc
    if suffix == ".toml":
        try:
            parsed: Any = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
        return _Layer(source=str(path), raw=parsed), []
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{path}: not valid JSON (tyk.conf): {exc}"]) from exc
    if not isinstance(parsed, dict):
        raise ConfigError(
            [f"{path}: a tyk.conf must be a JSON object, got {describe_type(parsed)}"]
        )
    raw, names, warnings = map_tyk_conf(parsed)
    return _Layer(source=str(path), raw=raw, names=names), [f"{path}: {w}" for w in warnings]


# --------------------------------------------------------------------------------------------------
# Tyk's tyk.conf

#: Tyk key path -> our key path(s). Tyk's zero values (0, "", false) mean "Tyk's default", so they
#: leave ours in place.
_TYK_KEYS: Final[Mapping[Path_, tuple[Path_, ...]]] = {
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
    **{("storage", key): (("storage", key),) for key in _UNSUPPORTED_STORAGE},
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
    # Tyk caches sessions in each process (10 s by default); ours is the Redis store's cache.
    ("local_session_cache", "cached_session_timeout"): (("storage", "session_cache_ttl"),),
    ("local_session_cache", "disable_cached_session_state"): (),
}
_TYK_SECTIONS: Final = frozenset(path[0] for path in _TYK_KEYS if len(path) == 2)
#: Tyk's documented sample secret: a config that still carries it has an admin API anyone can use.
_TYK_SAMPLE_SECRET: Final = "352d20ee67be67f6340b4c0605b044b7"
_TYK_LOG_LEVELS: Final = {"warn": "warning"}
_SAMPLE_SECRET_WARNING: Final = (
    "secret is Tyk's published sample secret; anyone can use the admin API until you change it"
)


def _is_go_zero(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and value == 0)
    )


def _tyk_targets(tyk_path: Path_, value: Any) -> list[tuple[Path_, Any]]:
    """Our key paths and values for one tyk.conf key's value."""
    if tyk_path == ("jsvm_timeout",) and type(value) in (int, float) and value <= 0:
        value = _default_at(("javascript", "timeout"))  # Tyk: 0 or less means its 5 s default
    if tyk_path == ("log_level",) and isinstance(value, str):
        value = _TYK_LOG_LEVELS.get(value.lower(), value.lower())
    return [(target, value) for target in _TYK_KEYS[tyk_path]]


def _default_at(path: Path_) -> Any:
    node: Any = _DEFAULTS
    for key in path:
        node = getattr(node, key)
    return node


def _tyk_env_layer(tyk_env: TykEnv) -> _Layer:
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
                _set_in(raw, ("storage", "session_cache_ttl"), 0.0)
                names["storage.session_cache_ttl"] = variable
            continue
        zero = _is_go_zero(value)
        for target, our_value in _tyk_targets(tyk_path, value):
            if zero and target[-1] not in _UNSUPPORTED_STORAGE:
                our_value = _default_at(target)
            _set_in(raw, target, our_value)
            names[".".join(target)] = variable
    storage = [path for path in tyk_env.values if path[0] == "storage"]
    if storage and ("storage", "type") not in tyk_env.values:
        # As for a tyk.conf storage section: Tyk's only store is Redis.
        _set_in(raw, ("storage", "type"), "redis")
        names["storage.type"] = tyk_env.names[storage[0]]
    return _Layer(source="environment", raw=raw, names=names)


def map_tyk_conf(data: Mapping[str, Any]) -> tuple[Raw, dict[str, str], list[str]]:
    """Map a parsed ``tyk.conf`` onto our settings (pure).

    Returns our nested settings, our key path -> Tyk key (for messages), and warnings: one that
    lists every key that does not apply here, and one if the admin secret is Tyk's sample secret.
    """
    raw: Raw = {}
    names: dict[str, str] = {}
    ignored: list[str] = []

    def visit(tyk_path: Path_, value: Any) -> None:
        tyk_name = ".".join(tyk_path)
        if tyk_path not in _TYK_KEYS:
            ignored.append(tyk_name)
            return
        if _is_go_zero(value):
            return
        for target, our_value in _tyk_targets(tyk_path, value):
            _set_in(raw, target, our_value)
            names[".".join(target)] = tyk_name

    for key, value in data.items():
        if key in _TYK_SECTIONS and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                visit((key, sub_key), sub_value)
        else:
            visit((key,), value)

    cache = data.get("local_session_cache")
    if isinstance(cache, Mapping) and cache.get("disable_cached_session_state") is True:
        _set_in(raw, ("storage", "session_cache_ttl"), 0.0)
        names["storage.session_cache_ttl"] = "local_session_cache.disable_cached_session_state"

    storage = data.get("storage")
    if isinstance(storage, Mapping) and not storage.get("type"):
        # Tyk's only store is Redis: a storage section means Redis even without a type.
        _set_in(raw, ("storage", "type"), "redis")
        names["storage.type"] = "storage.type"

    warnings = []
    if ignored:
        warnings.append(
            f"ignored {len(ignored)} tyk.conf key(s) that do not apply to trio-gateway: "
            + ", ".join(sorted(ignored))
        )
    if data.get("secret") == _TYK_SAMPLE_SECRET:
        warnings.append(_SAMPLE_SECRET_WARNING)
    return raw, names, warnings


# --------------------------------------------------------------------------------------------------
# Putting it together


def load_config(
    path: Path | None, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[GatewayConfig, list[str]]:
    """Load the gateway settings; return them with the warnings to show the user.

    Args:
        path: a ``.toml`` (ours) or ``.json``/``.conf`` (Tyk ``tyk.conf``) file, or ``None``.
        env: the environment (``os.environ``); only ``TRIO_GATEWAY_*`` variables are read.
        overrides: command-line settings, by dotted key path (``{"listen.port": 9000}``) or
            ``{"listen": "HOST:PORT"}``; ``None`` values mean "not given".

    Raises:
        ConfigError: every problem found, each naming its source and key.
    """
    errors: list[str] = []
    warnings: list[str] = []
    layers: list[_Layer] = []
    tyk_env = read_tyk_env(env)
    if path is not None and tyk_env.omit_config_file and path.suffix.lower() != ".toml":
        warnings.append(f"{OMIT_CONFIG_FILE}=true: {path} is not read (Tyk's meaning)")
    elif path is not None:
        file_layer, file_warnings = _read_file(path)
        layers.append(file_layer)
        warnings.extend(file_warnings)
    errors.extend(tyk_env.errors)
    layers.append(_tyk_env_layer(tyk_env))
    if tyk_env.unknown:
        warnings.append(
            "ignored TYK_GW_* environment variables for tyk.conf keys that do not apply to "
            "trio-gateway: " + ", ".join(tyk_env.unknown)
        )
    env_layer, env_errors, env_warnings = _env_layer(env)
    errors.extend(env_errors)
    warnings.extend(env_warnings)
    layers.append(env_layer)
    cli_layer, cli_errors = _overrides_layer(overrides)
    errors.extend(cli_errors)
    layers.append(cli_layer)

    merged: Raw = {}
    for layer in layers:  # lowest precedence first
        errors.extend(_check_layer(layer))
        merged = _merge(merged, layer.raw)
    if errors:
        raise ConfigError(errors)
    config = structure_config(merged)
    # The file's sample secret matters only if nothing overrode it (TYK_GW_SECRET often does).
    sample = [w for w in warnings if w.endswith(_SAMPLE_SECRET_WARNING)]
    warnings = [w for w in warnings if w not in sample]
    if config.secret == _TYK_SAMPLE_SECRET:
        warnings.extend(sample or [_SAMPLE_SECRET_WARNING])
    return config, warnings
