"""trio-gateway: an API gateway on Trio that runs Tyk plugins under structured concurrency.

Embedding::

    import trio, trio_gateway

    config, warnings = trio_gateway.load_config(None, {}, {"listen": "127.0.0.1:8080"})
    trio.run(lambda: trio_gateway.serve_gateway(config, apps_dir=pathlib.Path("apps")))

Plugin authors use :mod:`trio_gateway.hooks`; plugin drivers :mod:`trio_gateway.drivers`; errors
live in :mod:`trio_gateway.errors`.

The names below are imported on first use (PEP 562): ``import trio_gateway.errors`` or a pure
module (the parsers, the config and API-definition loaders) does not load Trio and the server.
The import contracts in ``pyproject.toml`` (``lint-imports``) keep it so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._apidef.model import ApiDefinition as ApiDefinition
    from ._apidef.source import LoadReport as LoadReport
    from ._apidef.source import load_api_definitions as load_api_definitions
    from ._app import RunningGateway as RunningGateway
    from ._app import serve_gateway as serve_gateway
    from ._config.load import load_config as load_config
    from ._config.model import GatewayConfig as GatewayConfig

__version__ = "0.1.0"

__all__ = [
    "ApiDefinition",
    "GatewayConfig",
    "LoadReport",
    "RunningGateway",
    "load_api_definitions",
    "load_config",
    "serve_gateway",
]

#: Public name -> the private module that defines it.
_LAZY: dict[str, str] = {
    "ApiDefinition": "._apidef.model",
    "GatewayConfig": "._config.model",
    "LoadReport": "._apidef.source",
    "RunningGateway": "._app",
    "load_api_definitions": "._apidef.source",
    "load_config": "._config.load",
    "serve_gateway": "._app",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
