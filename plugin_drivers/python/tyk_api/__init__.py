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
import importlib
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .gateway import PluginServices, gateway_module

__all__ = ["PluginServices", "plugin_builtins", "provided_modules"]

_PROTO: Final = "plugin_drivers.coprocess.proto."
_TYK: Final = "plugin_drivers.python.tyk_api.tyk"

#: Dotted name as plugin code writes it -> the module's real name (the same for every namespace).
_SHARED: Final[Mapping[str, str]] = {
    "tyk": _TYK,
    "tyk.decorators": f"{_TYK}.decorators",
    "tyk.request": f"{_TYK}.request",
    "tyk.session": f"{_TYK}.session",
    **{
        name: _PROTO + name
        for name in (
            "coprocess_common_pb2",
            "coprocess_mini_request_object_pb2",
            "coprocess_object_pb2",
            "coprocess_response_object_pb2",
            "coprocess_return_overrides_pb2",
            "coprocess_session_state_pb2",
        )
    },
}


class _ProvidedModules(Mapping[str, types.ModuleType]):
    """The shared names, imported when plugin code first imports one (so a gateway whose Python
    plugins are all native never loads protobuf), plus the namespace's own ``gateway``."""

    def __init__(self, own: Mapping[str, types.ModuleType]) -> None:
        self._own = own

    def __getitem__(self, name: str) -> types.ModuleType:
        module = self._own.get(name)
        if module is not None:
            return module
        return importlib.import_module(_SHARED[name])

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (name for name in _SHARED if name not in self._own)

    def __len__(self) -> int:
        return len(self._own) + sum(1 for name in _SHARED if name not in self._own)


def provided_modules(services: PluginServices) -> Mapping[str, types.ModuleType]:
    """Every name Tyk's plugins import, ``gateway`` (and ``tyk.gateway``) bound to ``services``."""
    gateway = gateway_module(services)
    return _ProvidedModules({"gateway": gateway, "tyk.gateway": gateway})


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
