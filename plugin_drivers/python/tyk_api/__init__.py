"""The modules Tyk-style Python plugin code imports, under Tyk's own names.

Tyk puts its ``coprocess/python`` folders on the interpreter's path, so plugin files import
``tyk.decorators``, ``gateway`` (a module the Go side provides) and the generated
``coprocess_*_pb2`` modules by plain name. Here those names exist only inside a plugin folder's
module namespace (``namespace.py``): :func:`provided_modules` is the table the namespace's
``__import__`` consults first, and :func:`plugin_builtins` replaces ``print`` so that plugin
output reaches the gateway's log. Nothing is added to ``sys.path`` or registered in
``sys.modules`` under these names.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Mapping
from typing import Any, Final

from plugin_drivers.coprocess.proto import (
    coprocess_common_pb2,
    coprocess_mini_request_object_pb2,
    coprocess_object_pb2,
    coprocess_response_object_pb2,
    coprocess_return_overrides_pb2,
    coprocess_session_state_pb2,
)

from . import tyk
from .gateway import PluginServices, gateway_module
from .tyk import decorators, request, session

__all__ = ["PluginServices", "plugin_builtins", "provided_modules"]

#: Dotted name as plugin code writes it -> module (the same for every namespace).
_SHARED: Final[Mapping[str, types.ModuleType]] = {
    "tyk": tyk,
    "tyk.decorators": decorators,
    "tyk.request": request,
    "tyk.session": session,
    "coprocess_common_pb2": coprocess_common_pb2,
    "coprocess_mini_request_object_pb2": coprocess_mini_request_object_pb2,
    "coprocess_object_pb2": coprocess_object_pb2,
    "coprocess_response_object_pb2": coprocess_response_object_pb2,
    "coprocess_return_overrides_pb2": coprocess_return_overrides_pb2,
    "coprocess_session_state_pb2": coprocess_session_state_pb2,
}


def provided_modules(services: PluginServices) -> dict[str, types.ModuleType]:
    """Every name Tyk's plugins import, ``gateway`` (and ``tyk.gateway``) bound to ``services``."""
    gateway = gateway_module(services)
    return {**_SHARED, "gateway": gateway, "tyk.gateway": gateway}


def plugin_builtins(services: PluginServices) -> dict[str, Any]:
    """Builtins that plugin modules get instead of the interpreter's: ``print`` to stdout or
    stderr becomes a log line of the gateway (a file given explicitly is written as usual)."""

    def plugin_print(
        *values: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if file is not None and file is not sys.stdout and file is not sys.stderr:
            builtins.print(*values, sep=sep, end=end, file=file, flush=flush)
            return
        text = (" " if sep is None else sep).join(map(str, values))
        services.print(text, stderr=file is sys.stderr)

    return {"print": plugin_print}
