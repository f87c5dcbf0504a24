"""Sessions to and from Tyk's JSON form (what ``/tyk/keys`` and the stores speak).

Tyk writes ``null`` for empty maps and lists (Go nil) and, since v5.14, omits zero values, so
reading tolerates both; unknown keys (fields of newer Tyk versions) are ignored. Writing emits every
field, as Tyk v5.8 does.

The converter comes from the project's factory (``_converter.make_converter``), so sessions get
the same no-silent-coercion rules as every other input; :func:`configure_session_converter` adds
the session hooks to it (the factory may call it too, if it wants sessions everywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn

from .._converter import make_converter
from .model import (
    AccessDefinition,
    AccessLimit,
    AllowedUrl,
    BasicAuthData,
    JwtData,
    Monitor,
    Session,
)

__all__ = ["configure_session_converter", "session_from_json", "session_to_json"]


def _dropping_nulls(
    inner: Callable[[Any, Any], Any], keep: frozenset[str] = frozenset()
) -> Callable[[Any, Any], Any]:
    """Wrap a structure function so ``null`` means "use the default" (Go's nil slices/maps)."""

    def structure(value: Any, cls: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        cleaned = {k: v for k, v in value.items() if v is not None or k in keep}
        return inner(cleaned, cls)

    return structure


def configure_session_converter(conv: cattrs.Converter) -> None:
    """Register the session hooks on ``conv``."""
    # Innermost first: a generated structure function binds the hooks of its field types.
    for cls, keep in (
        (AllowedUrl, frozenset[str]()),
        (BasicAuthData, frozenset[str]()),
        (JwtData, frozenset[str]()),
        (Monitor, frozenset[str]()),
        (AccessLimit, frozenset[str]()),
        (AccessDefinition, frozenset({"limit"})),
        (Session, frozenset[str]()),
    ):
        conv.register_structure_hook(cls, _dropping_nulls(make_dict_structure_fn(cls, conv), keep))


_CONVERTER = make_converter()
configure_session_converter(_CONVERTER)


def session_to_json(session: Session) -> dict[str, Any]:
    """The session as Tyk's JSON object (a dict ready for ``json.dumps``)."""
    result: dict[str, Any] = _CONVERTER.unstructure(session)
    return result


def session_from_json(data: Any) -> Session:
    """Parse Tyk's JSON session; bad input raises cattrs' ``ClassValidationError``."""
    return _CONVERTER.structure(data, Session)
