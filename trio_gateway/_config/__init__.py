"""Gateway settings: the model (``model.py``) and its loader (``load.py``).

The loader's parts, one job each: ``layer.py`` (one source of settings, merging, ``HOST:PORT``),
``convert.py`` (the converter; problems as messages naming the user's key), ``env.py`` (our
``TRIO_GATEWAY_*`` variables), ``tyk_env.py`` (reading Tyk's ``TYK_GW_*`` variables) and
``tyk_conf.py`` (tyk.conf keys, from a file or those variables, mapped onto ours).
"""

from __future__ import annotations

from .convert import configure_converter, structure_config, unstructure_config
from .env import ENV_PREFIX, env_variable_names
from .layer import parse_listen
from .load import load_config
from .model import (
    CoprocessConfig,
    GatewayConfig,
    HooksConfig,
    LimitsConfig,
    ListenConfig,
    StorageConfig,
    UpstreamConfig,
)
from .tyk_conf import map_tyk_conf

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
