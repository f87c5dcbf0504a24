"""The project's one cattrs converter.

Every module that turns untrusted JSON/TOML into attrs objects gets its converter from
:func:`make_converter`, so that every input is held to the same rules and every hook lives in one
place. Register new hooks inside :func:`make_converter`.

The rule that matters most: **no silent coercion**. cattrs' defaults call ``str(x)``/``bool(x)``/
``int(x)``, which would turn ``"false"`` into ``True`` or ``5`` into ``"5"``; a gateway config or an
API definition with the wrong type is an error the user must see, with the field path.
"""

from __future__ import annotations

from typing import Any

import cattrs

__all__ = ["describe_type", "make_converter"]


def describe_type(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {describe_type(value)}")
    return value


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {describe_type(value)}")
    return value


def _structure_int(value: Any, _: type) -> int:
    # bool is an int subclass in Python; JSON's true is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"expected an integer, got {describe_type(value)}")
    return value


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {describe_type(value)}")
    return float(value)


def make_converter() -> cattrs.Converter:
    """Build the project's converter: strict primitives, unknown keys tolerated (Tyk's habit)."""
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    return converter
