"""Plugin drivers, chosen by the API definition's driver name (Tyk's ``custom_middleware.driver``).

Each driver is an attrs class implementing ``trio_gateway.hooks.Driver``. The table maps Tyk's
driver names to ``module:class``; modules are imported only when an API uses them (the gRPC driver
pulls in protobuf, which API definitions without gRPC plugins should not pay for).
"""

from __future__ import annotations

import importlib
from typing import Final

from trio_gateway.errors import PluginDriverError
from trio_gateway.hooks import Driver

__all__ = ["DRIVERS", "UNSUPPORTED_DRIVERS", "create_driver"]

#: Driver name -> "module:class". Other engineers add their drivers here (grpc, otto).
DRIVERS: Final[dict[str, str]] = {
    "python": "plugin_drivers.python.driver:PythonDriver",
    "grpc": "plugin_drivers.grpc.driver:GrpcDriver",
}

#: Tyk drivers that cannot run here, with the reason given to the user.
UNSUPPORTED_DRIVERS: Final[dict[str, str]] = {
    "goplugin": "Go plugins (.so files) cannot be loaded by a Python gateway",
    "lua": "Lua plugins are not supported by trio-gateway",
}


def create_driver(name: str) -> Driver:
    """A new driver instance for ``name``; raises :class:`PluginDriverError` if there is none."""
    if name in UNSUPPORTED_DRIVERS:
        raise PluginDriverError(f"driver {name!r} is not available: {UNSUPPORTED_DRIVERS[name]}")
    target = DRIVERS.get(name)
    if target is None:
        if not name:
            raise PluginDriverError(
                "the API has plugins but names no driver (custom_middleware.driver)"
            )
        known = ", ".join(sorted(DRIVERS))
        raise PluginDriverError(f"no plugin driver named {name!r} (available: {known})")
    module_name, _, class_name = target.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    driver: Driver = factory()
    return driver
