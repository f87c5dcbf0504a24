"""Our ``TRIO_GATEWAY_*`` environment variables, as a layer of settings (pure: env is passed in).

Every leaf setting has one variable, named by its key path (``listen.port`` is
``TRIO_GATEWAY_LISTEN_PORT``); ``TRIO_GATEWAY_LISTEN=HOST:PORT`` is the twin of ``--listen``.
Tyk's own ``TYK_GW_*`` variables are ``tyk_env.py`` and ``tyk_conf.py``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Final, get_args, get_origin

import attrs

from ..errors import ConfigError
from .convert import UNSUPPORTED_STORAGE
from .layer import FALSE_WORDS, KeyPath, Layer, parse_listen, set_in
from .model import GatewayConfig

__all__ = ["ENV_PREFIX", "env_layer", "env_variable_names"]

ENV_PREFIX: Final = "TRIO_GATEWAY_"


def _leaf_fields(cls: type, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    for field in attrs.fields(cls):
        if attrs.has(field.type):
            yield from _leaf_fields(field.type, (*prefix, field.name))
        else:
            yield (*prefix, field.name), field.type


def _env_table() -> dict[str, tuple[KeyPath, Any]]:
    attrs.resolve_types(GatewayConfig)
    table = {
        ENV_PREFIX + "_".join(path).upper(): (path, field_type)
        for path, field_type in _leaf_fields(GatewayConfig)
    }
    # Refused Redis features are recognised too, so asking for them fails instead of being ignored.
    for key in UNSUPPORTED_STORAGE:
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
        if word in FALSE_WORDS - {""}:
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


def env_layer(env: Mapping[str, str]) -> tuple[Layer, list[str], list[str]]:
    """The environment's settings, the problems found while parsing them, and warnings."""
    layer = Layer(source="environment", raw={}, names={})
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
        set_in(layer.raw, path, value)
        names[".".join(path)] = variable
    warnings = []
    if unknown:
        warnings.append(
            "ignored unknown environment variables (check the spelling): " + ", ".join(unknown)
        )
    return attrs.evolve(layer, names=names), errors, warnings
