"""A helper module of the bundle, imported by plain name from middleware.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def gateway_name(config_data: Mapping[str, Any] | None) -> str:
    return str((config_data or {}).get("gateway_name", "trio-gateway"))
