"""trio-gateway: an API gateway on Trio that runs Tyk plugins under structured concurrency.

Embedding::

    import trio, trio_gateway

    config, warnings = trio_gateway.load_config(None, {}, {"listen": "127.0.0.1:8080"})
    trio.run(lambda: trio_gateway.serve_gateway(config, apps_dir=pathlib.Path("apps")))

Plugin authors use :mod:`trio_gateway.hooks`; errors live in :mod:`trio_gateway.errors`.
"""

from __future__ import annotations

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
