"""The public surface stays small, sorted and importable."""

from __future__ import annotations

import subprocess
import sys
import typing
from collections.abc import Iterator

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


def _public_types() -> set[type]:
    public: set[type] = set()
    for module in (trio_gateway, trio_gateway.errors, trio_gateway.hooks, trio_gateway.drivers):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type):
                public.add(value)
    return public


def _classes_in(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes_in(arg)


_CONTRACT_MODULES = ("trio_gateway.hooks", "trio_gateway.drivers", "trio_gateway._driver_settings")


def test_public_signatures_hand_out_only_public_types() -> None:
    # What hooks and drivers get from (or give to) the plugin and driver API is itself public:
    # no ``trio_gateway._private`` class in a signature or field of the contract's own classes
    # (the data models it hands out, ApiDefinition, Session, Request, Response, are public).
    public = _public_types()
    leaks = []
    for module in (trio_gateway.hooks, trio_gateway.drivers):
        for name in module.__all__:
            value = getattr(module, name)
            if not isinstance(value, type) or value.__module__ not in _CONTRACT_MODULES:
                continue
            members = [value, *(m for n, m in vars(value).items() if not n.startswith("_"))]
            for member in members:
                target = member.fget if isinstance(member, property) else member
                if not callable(target):
                    continue
                try:
                    hints = typing.get_type_hints(target)
                except (NameError, TypeError):
                    continue
                for field, hint in hints.items():
                    if field.startswith("_"):
                        continue  # a private attribute is not handed out
                    for cls in _classes_in(hint):
                        private = cls.__module__.startswith("trio_gateway._")
                        if private and cls not in public:
                            leaks.append(f"{module.__name__}.{name}: {cls.__qualname__}")
    assert leaks == []
