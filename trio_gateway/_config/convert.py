"""The gateway config's cattrs converter, and its errors turned into messages that name a key.

The project converter (``_converter.make_converter``) tolerates unknown keys, because Tyk
definitions carry many we ignore; the gateway's own settings do not, so the hooks registered here
forbid them class by class, so that a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from .._converter import describe_type, make_converter
from .layer import KeyPath, Layer, Raw, asks_for
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

__all__ = [
    "UNSUPPORTED_STORAGE",
    "check_layer",
    "configure_converter",
    "structure_config",
    "unstructure_config",
]

_CONFIG_CLASSES: Final[tuple[type, ...]] = (
    ListenConfig,
    LimitsConfig,
    UpstreamConfig,
    HooksConfig,
    CoprocessConfig,
    StorageConfig,
    GatewayConfig,
)


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


def _problems(exc: BaseException, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
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


# --------------------------------------------------------------------------------------------------
# Redis features we refuse (until the Redis store supports them)

#: Storage keys that ask for a Redis feature we lack -> why. Every source recognises them, so that
#: asking for one fails instead of being ignored.
UNSUPPORTED_STORAGE: Final = {
    "use_ssl": "Redis over TLS is not supported yet",
    "enable_cluster": "Redis Cluster is not supported yet",
    "addrs": "several Redis addresses (Cluster or Sentinel) are not supported yet",
    "hosts": "several Redis addresses (Cluster or Sentinel) are not supported yet",
    "master_name": "Redis Sentinel is not supported yet",
}


def _refuse_unsupported_storage(layer: Layer) -> list[str]:
    storage = layer.raw.get("storage")
    if not isinstance(storage, dict):
        return []
    messages = []
    for key, why in UNSUPPORTED_STORAGE.items():
        if key in storage and asks_for(storage.pop(key)):
            messages.append(layer.message(("storage", key), f"{why}; use a single Redis host"))
    return messages


def check_layer(layer: Layer) -> list[str]:
    """Every problem in one source, checked on its own so that messages name that source.

    Refused Redis features are taken out of ``layer.raw`` (they are reported, not merged).
    """
    messages = _refuse_unsupported_storage(layer)
    try:
        _CONVERTER.structure(layer.raw, GatewayConfig)
    except (cattrs.BaseValidationError, _ShapeError, FieldValueError) as exc:
        messages.extend(layer.message(path, text) for path, text in _problems(exc))
    return messages
