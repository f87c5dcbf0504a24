"""Load :class:`GatewayConfig` from a file, the environment and the command line.

Precedence, highest first: command line (``overrides``) > ``TRIO_GATEWAY_*`` environment variables
(``env.py``) > Tyk's ``TYK_GW_*`` environment variables (``tyk_env.py``, mapped by
``tyk_conf.py``; as in Tyk, they override the file) > the config file > the defaults in
``model.py``.

The file format follows the extension: ``.toml`` is ours (unknown keys are errors, so a typo never
silently falls back to a default); ``.json``/``.conf`` is read as a Tyk ``tyk.conf``, whose keys
that apply are mapped onto ours (``tyk_conf.py``) and whose other keys are reported in ONE warning.

Each source is a :class:`~.layer.Layer`, checked on its own before the layers are merged
(``convert.check_layer``), so that every problem is reported with the name the user wrote
(``gateway.toml: listen.port``, ``environment: TRIO_GATEWAY_LISTEN_PORT``, ``tyk.conf:
listen_port``). All problems are collected and raised together as one
:class:`~trio_gateway.errors.ConfigError`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from .._converter import describe_type
from ..errors import ConfigError
from .convert import check_layer, structure_config
from .env import env_layer
from .layer import Layer, Raw, merge, parse_listen, set_in
from .model import GatewayConfig
from .tyk_conf import SAMPLE_SECRET_WARNING, TYK_SAMPLE_SECRET, map_tyk_conf, tyk_env_layer
from .tyk_env import OMIT_CONFIG_FILE, read_tyk_env

__all__ = ["load_config"]


def _overrides_layer(overrides: Mapping[str, Any]) -> tuple[Layer, list[str]]:
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
            value = merge(below if isinstance(below, dict) else {}, value)
        set_in(raw, path, value)
    return Layer(source="command line", raw=raw), errors


def _read_file(path: Path) -> tuple[Layer, list[str]]:
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
        return Layer(source=str(path), raw=parsed), []
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{path}: not valid JSON (tyk.conf): {exc}"]) from exc
    if not isinstance(parsed, dict):
        raise ConfigError(
            [f"{path}: a tyk.conf must be a JSON object, got {describe_type(parsed)}"]
        )
    raw, names, warnings = map_tyk_conf(parsed)
    return Layer(source=str(path), raw=raw, names=names), [f"{path}: {w}" for w in warnings]


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
    layers: list[Layer] = []
    tyk_env = read_tyk_env(env)
    if path is not None and tyk_env.omit_config_file and path.suffix.lower() != ".toml":
        warnings.append(f"{OMIT_CONFIG_FILE}=true: {path} is not read (Tyk's meaning)")
    elif path is not None:
        file_layer, file_warnings = _read_file(path)
        layers.append(file_layer)
        warnings.extend(file_warnings)
    errors.extend(tyk_env.errors)
    layers.append(tyk_env_layer(tyk_env))
    if tyk_env.unknown:
        warnings.append(
            "ignored TYK_GW_* environment variables for tyk.conf keys that do not apply to "
            "trio-gateway: " + ", ".join(tyk_env.unknown)
        )
    our_env, env_errors, env_warnings = env_layer(env)
    errors.extend(env_errors)
    warnings.extend(env_warnings)
    layers.append(our_env)
    cli_layer, cli_errors = _overrides_layer(overrides)
    errors.extend(cli_errors)
    layers.append(cli_layer)

    merged: Raw = {}
    for layer in layers:  # lowest precedence first
        errors.extend(check_layer(layer))
        merged = merge(merged, layer.raw)
    if errors:
        raise ConfigError(errors)
    config = structure_config(merged)
    # The file's sample secret matters only if nothing overrode it (TYK_GW_SECRET often does).
    sample = [w for w in warnings if w.endswith(SAMPLE_SECRET_WARNING)]
    warnings = [w for w in warnings if w not in sample]
    if config.secret == TYK_SAMPLE_SECRET:
        warnings.extend(sample or [SAMPLE_SECRET_WARNING])
    return config, warnings
