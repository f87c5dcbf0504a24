from __future__ import annotations

import copy
from typing import Any

import pytest

from trio_gateway.errors import ApiDefinitionError


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


CLASSIC_BASE: dict[str, Any] = {
    "api_id": "a1",
    "name": "Orders",
    "org_id": "acme",
    "active": True,
    "use_keyless": True,
    "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    "proxy": {"listen_path": "/orders/", "target_url": "http://up.internal:8080/"},
}

OAS_BASE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Orders", "version": "1"},
    "paths": {},
    "x-tyk-api-gateway": {
        "info": {"id": "a1", "name": "Orders", "orgId": "acme", "state": {"active": True}},
        "upstream": {"url": "http://up.internal:8080/"},
        "server": {"listenPath": {"value": "/orders/"}},
    },
}


def make_classic(**changes: Any) -> dict[str, Any]:
    """The base Classic definition with ``changes`` set at dotted keys (``__`` means ``.``)."""
    doc = copy.deepcopy(CLASSIC_BASE)
    for key, value in changes.items():
        _set(doc, key.replace("__", "."), value)
    return doc


def make_oas(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base OAS document with dotted keys set; ``x.`` abbreviates ``x-tyk-api-gateway.``."""
    doc = copy.deepcopy(OAS_BASE)
    for key, value in (changes or {}).items():
        if key.startswith("x."):
            key = "x-tyk-api-gateway." + key[2:]
        _set(doc, key, value)
    return doc


def messages_of(excinfo: pytest.ExceptionInfo[ApiDefinitionError]) -> str:
    return "\n".join(excinfo.value.messages)
