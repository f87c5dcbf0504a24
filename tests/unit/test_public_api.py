"""The public surface stays small, sorted and importable."""

from __future__ import annotations

import trio_gateway
import trio_gateway.errors
import trio_gateway.hooks


def test_all_is_sorted_and_complete() -> None:
    assert trio_gateway.__all__ == sorted(trio_gateway.__all__)
    for name in trio_gateway.__all__:
        assert hasattr(trio_gateway, name), name


def test_errors_module_exports_every_error_class() -> None:
    exported = set(trio_gateway.errors.__all__)
    defined = {
        name
        for name, value in vars(trio_gateway.errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert defined == exported


def test_every_gateway_error_has_a_client_safe_status() -> None:
    for name in trio_gateway.errors.__all__:
        cls = getattr(trio_gateway.errors, name)
        assert 400 <= cls.status_hint < 600, name
        assert cls.public_message, name
