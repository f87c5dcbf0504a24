"""Where API definitions come from: a folder of JSON files (and, later, the admin API).

A broken file is reported and skipped; the others still load. Each message starts with the file
path. Duplicates (same ``api_id``, or same domain + listen path) are refused in sorted file order,
naming both files, so the outcome does not depend on the order the OS lists the folder in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._converter import describe_type
from .._paths import listen_path_key
from ..errors import ApiDefinitionError
from .classic import parse_classic
from .model import ApiDefinition
from .oas import is_oas_document, parse_oas

__all__ = [
    "LoadReport",
    "load_api_definition_file",
    "load_api_definitions",
    "parse_definition",
    "read_json_file",
]

_OAS_SUFFIX = "-oas.json"


@attrs.define
class LoadReport:
    """What a load produced: the APIs to serve, and messages (each starting with a file path)."""

    apis: list[ApiDefinition] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_definition(
    obj: object, source: str, *, companion: Mapping[str, Any] | None = None
) -> ApiDefinition:
    """Parse one definition, detecting the format by content (OAS: ``openapi`` + the extension)."""
    if not isinstance(obj, Mapping):
        raise ApiDefinitionError(source, [f"expected a JSON object, got {describe_type(obj)}"])
    if _is_dashboard_wrapper(obj):
        return _parse_dashboard_export(obj, source)
    if isinstance(obj.get("apis"), list) and "api_id" not in obj:
        raise ApiDefinitionError(
            source,
            [
                f"this is a Tyk Dashboard API list ({len(obj['apis'])} entries under `apis`); "
                "save each entry in its own file (the entry as it is, or its `api_definition`)"
            ],
        )
    if is_oas_document(obj):
        return parse_oas(obj, source, companion=companion)
    if "openapi" in obj:
        raise ApiDefinitionError(
            source, ["an OpenAPI document without x-tyk-api-gateway is not a Tyk API definition"]
        )
    return parse_classic(obj, source)


def _is_dashboard_wrapper(obj: Mapping[str, Any]) -> bool:
    """The Tyk Dashboard's shape (``GET /api/apis/{id}``, tyk-sync dumps, UI exports):
    ``{"api_definition": {...}, "api_model": {...}, ...}``, plus ``"oas"`` for a Tyk OAS API."""
    return isinstance(obj.get("api_definition"), Mapping) and not (
        "api_id" in obj or "proxy" in obj or "openapi" in obj
    )


def _parse_dashboard_export(obj: Mapping[str, Any], source: str) -> ApiDefinition:
    """A Dashboard export: its OAS document when it carries one, else its Classic definition.

    For a Tyk OAS API the Dashboard sends the OAS document (``oas``) beside a Classic
    ``api_definition`` with ``is_oas: true`` that mirrors it: the OAS document is the API, and
    the Classic half fills what it leaves out (as in Tyk's file-mode pair).
    """
    classic = obj["api_definition"]
    oas = obj.get("oas")
    if isinstance(oas, Mapping) and is_oas_document(oas):
        return parse_oas(oas, source, companion=classic)
    if classic.get("is_oas") is True:
        raise ApiDefinitionError(
            source,
            [
                "api_definition.is_oas is true but the export has no `oas` document with "
                "x-tyk-api-gateway; export the API with its OAS document "
                "(Dashboard: GET /api/apis/oas/{id}/export)"
            ],
        )
    return parse_definition(classic, source)


def read_json_file(path: Path) -> object:
    """Parse a JSON file; errors name the file and, for bad JSON, the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiDefinitionError(str(path), [f"cannot read: {exc}"]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiDefinitionError(
            str(path), [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from exc


def load_api_definition_file(path: Path) -> ApiDefinition:
    """Load one file (the OAS half of a file-mode pair picks up its Classic companion)."""
    obj = read_json_file(path)
    companion: Mapping[str, Any] | None = None
    if path.name.endswith(_OAS_SUFFIX):
        classic_half = path.with_name(path.name[: -len(_OAS_SUFFIX)] + ".json")
        if classic_half.is_file():
            loaded = read_json_file(classic_half)
            companion = loaded if isinstance(loaded, Mapping) else None
    elif isinstance(obj, Mapping) and obj.get("is_oas") is True:
        oas_half = path.with_name(path.stem + _OAS_SUFFIX)
        if not oas_half.is_file():
            raise ApiDefinitionError(
                str(path), [f"is_oas: true, but its OAS document {oas_half.name} is missing"]
            )
        return load_api_definition_file(oas_half)
    return parse_definition(obj, str(path), companion=companion)


def load_api_definitions(folder: Path) -> LoadReport:
    """Load every ``*.json`` in ``folder`` (sorted by name). Never raises for a bad definition."""
    report = LoadReport()
    try:
        files = sorted(p for p in folder.glob("*.json") if p.is_file())
    except OSError as exc:
        report.errors.append(f"{folder}: cannot list: {exc}")
        return report
    names = {p.name for p in files}
    by_id: dict[str, ApiDefinition] = {}
    by_route: dict[tuple[str, str], ApiDefinition] = {}
    for path in files:
        if _is_classic_half_of_pair(path, names):
            continue  # its X-oas.json twin is the API; loading both would duplicate it
        try:
            api = load_api_definition_file(path)
        except ApiDefinitionError as exc:
            report.errors.extend(exc.messages)
            continue
        report.warnings.extend(f"{path}: {w}" for w in api.warnings)
        if not api.active:
            report.warnings.append(f"{path}: active is false; the API is not served")
            continue
        first = by_id.get(api.api_id)
        if first is not None:
            report.errors.append(
                f"{path}: api_id {api.api_id!r} is already used by {first.source}; not loaded"
            )
            continue
        route = (api.domain, listen_path_key(api.listen_path))
        first = by_route.get(route)
        if first is not None:
            where = f" on domain {api.domain!r}" if api.domain else ""
            report.errors.append(
                f"{path}: listen path {api.listen_path!r}{where} is already used by "
                f"{first.source}; not loaded"
            )
            continue
        by_id[api.api_id] = api
        by_route[route] = api
        report.apis.append(api)
    return report


def _is_classic_half_of_pair(path: Path, names: set[str]) -> bool:
    return (
        not path.name.endswith(_OAS_SUFFIX)
        and f"{path.stem}{_OAS_SUFFIX}" in names
        and (_declares_oas(path))
    )


def _declares_oas(path: Path) -> bool:
    try:
        obj = read_json_file(path)
    except ApiDefinitionError:
        return False  # report it when it is loaded on its own
    return isinstance(obj, Mapping) and obj.get("is_oas") is True
