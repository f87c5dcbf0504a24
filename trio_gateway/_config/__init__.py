"""Gateway settings: the model (``model.py``) and its loader (``load.py``)."""

from __future__ import annotations

from .load import (
    ENV_PREFIX,
    configure_converter,
    env_variable_names,
    load_config,
    map_tyk_conf,
    parse_listen,
    structure_config,
    unstructure_config,
)
from .model import (
    CoprocessConfig,
    GatewayConfig,
    HooksConfig,
    LimitsConfig,
    ListenConfig,
    StorageConfig,
    UpstreamConfig,
)

__all__ = [
    "ENV_PREFIX",
    "CoprocessConfig",
    "GatewayConfig",
    "HooksConfig",
    "LimitsConfig",
    "ListenConfig",
    "StorageConfig",
    "UpstreamConfig",
    "configure_converter",
    "env_variable_names",
    "load_config",
    "map_tyk_conf",
    "parse_listen",
    "structure_config",
    "unstructure_config",
]
