"""The request object Tyk-style hooks get (Tyk's ``TykCoProcessRequest``)."""

from __future__ import annotations

from typing import Any

__all__ = ["TykCoProcessRequest"]


class TykCoProcessRequest:
    """Wraps the call's ``MiniRequestObject`` (``.object``); the helpers edit it in place."""

    __slots__ = ("object",)

    def __init__(self, request: Any) -> None:
        self.object = request

    def add_header(self, key: str, value: str) -> None:
        self.object.set_headers[key] = value

    def delete_header(self, key: str) -> None:
        self.object.delete_headers.append(key)

    def add_param(self, key: str, value: str) -> None:
        self.object.add_params[key] = value

    def delete_param(self, key: str) -> None:
        self.object.delete_params.append(key)

    def get_header(self, key: str) -> str | None:
        """The header's first value by its exact (Go-canonical) name, e.g. ``Authorization``."""
        headers = self.object.headers
        return headers[key] if key in headers else None
