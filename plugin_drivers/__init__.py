"""Plugin drivers, chosen by the API definition's driver name (Tyk's ``custom_middleware.driver``).

Each driver implements :class:`trio_gateway.drivers.Driver` and imports only the public API
(:mod:`trio_gateway.drivers`, ``.hooks``, ``.errors``). The tables map Tyk's driver names to
``module:function``: a factory called with the driver's settings
(:class:`~trio_gateway.drivers.DriverSettings`) for each API that uses it, and, for a driver with
resources shared by every API (the gRPC channels), an opener the gateway enters once in its root
nursery. Modules are imported only when an API (or the configuration) uses them: the gRPC driver
pulls in protobuf, which gateways without gRPC plugins should not pay for. docs/drivers.md says how
to add one.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final

from trio_gateway.drivers import Driver, DriverFactory, DriverSettings, PluginDriverError

__all__ = ["DRIVERS", "SHARED", "UNSUPPORTED_DRIVERS", "create_driver", "open_shared"]

#: Driver name -> "module:factory", the factory taking the driver's settings.
DRIVERS: Final[dict[str, str]] = {
    "python": "plugin_drivers.python.driver:create",
    "grpc": "plugin_drivers.grpc.driver:create",
    # Tyk's JSVM middleware; "javascript" is our alias for "otto".
    "otto": "plugin_drivers.javascript.driver:create",
    "javascript": "plugin_drivers.javascript.driver:create",
}

#: Driver name -> "module:opener" for drivers with a resource shared by every API. The opener
#: takes the settings and returns an async context manager, or None when the configuration does
#: not ask for the resource (no gRPC server configured).
SHARED: Final[dict[str, str]] = {
    "grpc": "plugin_drivers.grpc.driver:open_shared",
}

#: Tyk drivers that cannot run here, with the reason given to the user.
UNSUPPORTED_DRIVERS: Final[dict[str, str]] = {
    "goplugin": "Go plugins (.so files) cannot be loaded by a Python gateway",
    "lua": "Lua plugins are not supported by trio-gateway",
}

SharedOpener = Callable[[DriverSettings], AbstractAsyncContextManager[Any] | None]


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@asynccontextmanager
async def open_shared(settings: DriverSettings) -> AsyncIterator[dict[str, Any]]:
    """Open every driver's shared resource the settings ask for, for the block (the gateway
    enters it in its root nursery and passes the mapping on as ``DriverSettings.shared``)."""
    shared: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for name, target in SHARED.items():
            opener: SharedOpener = _resolve(target)
            manager = opener(settings)
            if manager is not None:
                shared[name] = await stack.enter_async_context(manager)
        yield shared


def create_driver(name: str, settings: DriverSettings | None = None) -> Driver:
    """A new driver instance for ``name``, built with ``settings`` (defaults when None); raises
    :class:`PluginDriverError` if there is no such driver."""
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
    factory: DriverFactory = _resolve(target)
    return factory(settings if settings is not None else DriverSettings())
