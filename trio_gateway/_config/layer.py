"""One source of settings (a :class:`Layer`), and the small pieces every source shares.

A layer holds its settings in our nested shape (``{"listen": {"port": 8080}}``) together with
the names the user wrote for them (a Tyk key, an environment variable), so that a problem is
reported in the user's words. The loader merges the layers, lowest precedence first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import ConfigError

__all__ = [
    "FALSE_WORDS",
    "KeyPath",
    "Layer",
    "Raw",
    "asks_for",
    "merge",
    "parse_listen",
    "set_in",
]

KeyPath = tuple[str, ...]
Raw = dict[str, Any]

FALSE_WORDS: Final = frozenset({"", "0", "false", "no", "off"})


@attrs.frozen(kw_only=True)
class Layer:
    """One source of settings, in our nested shape, and how to name its keys in messages."""

    source: str
    raw: Raw
    #: our dotted key path -> the key as the user wrote it (a Tyk key, an environment variable)
    names: Mapping[str, str] = attrs.field(factory=dict)

    def name(self, path: KeyPath) -> str:
        dotted = ".".join(path)
        return self.names.get(dotted, dotted or "(top level)")

    def message(self, path: KeyPath, text: str) -> str:
        return f"{self.source}: {self.name(path)}: {text}"


def asks_for(value: Any) -> bool:
    """Whether a setting's value switches the feature on (``false``/empty/0 does not)."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


# --------------------------------------------------------------------------------------------------
# Nested dicts


def set_in(raw: Raw, path: KeyPath, value: Any) -> None:
    """Set ``raw[path[0]][path[1]]... = value``, making the sections on the way."""
    node = raw
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            # A scalar where a section belongs; keep the scalar so structuring reports it.
            return
        node = child
    node[path[-1]] = value


def merge(base: Raw, top: Mapping[str, Any]) -> Raw:
    """``base`` with ``top`` laid over it, section by section (neither is changed)."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            merged[key] = merge(below, value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------------
# HOST:PORT (the command line's --listen and the TRIO_GATEWAY_LISTEN variable)


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
