"""The conformance vectors' model, and loading them (the shipped file or the caller's own).

:mod:`trio_gateway.testing.conformance` is the public face; docs/conformance.md the format.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import cattrs

from .._converter import make_converter

#: The vectors shipped with the kit (package data beside this module).
VECTORS_FILE: Final = "conformance_vectors.json"


class ConformanceSetupError(Exception):
    """The runner could not start the plugins (a refused definition, bad arguments): not a
    difference in behaviour, so it is raised instead of reported."""


def _no_line_breaks(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Vector data goes onto the wire as it is; a CR or LF in it would forge other headers.
    texts: Iterable[str]
    if isinstance(value, str):
        texts = (value,)
    else:
        texts = (part for pair in value for part in pair)  # type: ignore[attr-defined]
    for text in texts:
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"{attribute.name}: {text!r} contains a line break or NUL")


@attrs.frozen(kw_only=True)
class VectorRequest:
    """What the client sends. ``path`` is the request target (with the query); ``body`` None
    sends no body (no Content-Length)."""

    method: str = attrs.field(validator=_no_line_breaks)
    path: str = attrs.field(validator=_no_line_breaks)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), validator=_no_line_breaks)
    body: str | None = None


@attrs.frozen(kw_only=True)
class ScriptedReply:
    """What the recording upstream answers for a vector (by default: a JSON echo of the request)."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), validator=_no_line_breaks)
    body: str = ""


@attrs.frozen(kw_only=True)
class UpstreamExpectation:
    """What the upstream must receive; a field left None is not checked. ``headers`` maps a
    name (any case) to all its values, in order."""

    method: str | None = None
    path: str | None = None
    query: str | None = None
    headers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    absent_headers: tuple[str, ...] = ()
    body: str | None = None


@attrs.frozen(kw_only=True)
class ResponseExpectation:
    """What the client must get. ``json`` compares the parsed body (so an error template's
    whitespace does not matter); ``body`` compares the text exactly. None: not checked."""

    status: int
    headers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    absent_headers: tuple[str, ...] = ()
    json: Any = None
    body: str | None = None


@attrs.frozen(kw_only=True)
class Vector:
    """One behaviour: request in, what the upstream sees (None: it is never called), what the
    client gets."""

    name: str
    plugin: str
    request: VectorRequest
    upstream: UpstreamExpectation | None
    response: ResponseExpectation
    upstream_reply: ScriptedReply | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class PluginSpec:
    """A plugin the vectors describe: what it does, its hooks (by stage), and the API definition
    fields every driver's version shares (api_id, listen path, auth mode, config_data)."""

    description: str
    hooks: Mapping[str, Any]
    definition: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class VectorSet:
    format: int
    plugins: Mapping[str, PluginSpec]
    vectors: tuple[Vector, ...]
    about: str = ""

    def __attrs_post_init__(self) -> None:
        names = [vector.name for vector in self.vectors]
        if len(set(names)) != len(names):
            raise ValueError("vector names must be unique")
        for vector in self.vectors:
            if vector.plugin not in self.plugins:
                raise ValueError(f"vector {vector.name}: no plugin named {vector.plugin!r}")

    def for_plugin(self, plugin: str) -> tuple[Vector, ...]:
        return tuple(vector for vector in self.vectors if vector.plugin == plugin)


_converter = make_converter()


def load_vectors(source: Path | Mapping[str, Any] | None = None) -> VectorSet:
    """The shipped vectors (``source`` None), or vectors from a JSON file or a loaded document.

    Raises:
        ConformanceSetupError: the document does not have the vectors' shape (the message says
            where).
    """
    if source is None:
        text = (importlib.resources.files(__package__) / VECTORS_FILE).read_text("utf-8")
        document: Any = json.loads(text)
    elif isinstance(source, Path):
        document = json.loads(source.read_text("utf-8"))
    else:
        document = source
    try:
        return _converter.structure(document, VectorSet)
    except cattrs.BaseValidationError as exc:
        detail = "; ".join(cattrs.transform_error(exc, format_exception=_describe_error))
    except (ValueError, TypeError) as exc:
        detail = str(exc)
    raise ConformanceSetupError(f"bad conformance vectors: {detail}")


def _describe_error(exc: BaseException, type_: type | None) -> str:
    # The validators' own messages say what is wrong; cattrs' default would say "invalid value".
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)
