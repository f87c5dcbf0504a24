"""The public surface stays small, sorted and importable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trio_gateway
import trio_gateway.drivers
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


def test_driver_sdk_all_is_complete() -> None:
    exported = trio_gateway.drivers.__all__
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(trio_gateway.drivers, name), name
    # What drivers are built with and what they implement are part of the SDK.
    for name in ("Driver", "DriverFactory", "DriverSettings", "HookContext", "HookRef"):
        assert name in exported


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import trio_gateway",
        "import trio_gateway.errors",
        "from trio_gateway import errors",
        "import trio_gateway._config.load",
        "import trio_gateway._apidef.source",
        "import trio_gateway._routing",
        "import trio_gateway._proto.http1",
    ],
)
def test_pure_imports_load_no_trio_and_no_server(statement: str) -> None:
    loaded = _modules_loaded_by(statement)
    assert "trio" not in loaded
    assert "trio_gateway._server" not in loaded
    assert "trio_gateway._app" not in loaded


def test_package_names_load_on_first_use() -> None:
    loaded = _modules_loaded_by("import trio_gateway; trio_gateway.serve_gateway")
    assert "trio_gateway._app" in loaded
    assert sorted(dir(trio_gateway)) == dir(trio_gateway)
    assert set(trio_gateway.__all__) <= set(dir(trio_gateway))
