"""One module namespace per plugin directory (a bundle, or a local plugin folder).

Tyk's Python bundles are folders holding ``middleware.py`` and helper modules that it imports by
plain name (``import helpers``). Putting each folder on ``sys.path`` would make two bundles that
both ship ``helpers.py`` share whichever loaded first, and would leave the folders on the user's
path. Instead each folder gets a private package name (``_trio_gateway_ns_<n>``) and its modules
are imported under it; the modules of the folder see an ``__import__`` that maps a top-level name
found in the folder to that package's submodule, and everything else to the normal import. Nothing
is added to ``sys.path``; :meth:`ModuleNamespace.release` drops every module of the namespace from
``sys.modules`` (the driver calls it when the API's plugins are closed, e.g. after a reload), so
their memory is freed once no hook refers to them.

A namespace may also be *provided* modules under fixed names (the Tyk-style plugin API: ``tyk``,
``gateway``, ``coprocess_object_pb2``...), which its modules' imports find before anything else,
and builtins to replace (``print``). They exist only for the namespace's modules.

Works on Python 3.11+ (Tyk's own loader uses ``imp``, gone in 3.12).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["NAMESPACE_PREFIX", "ModuleNamespace"]

NAMESPACE_PREFIX = "_trio_gateway_ns_"
_counter = itertools.count(1)
_registry: dict[str, ModuleNamespace] = {}
_registry_lock = threading.Lock()


class _NamespaceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that gives each module its namespace's ``__import__``."""

    def __init__(self, fullname: str, path: str, namespace: ModuleNamespace) -> None:
        super().__init__(fullname, path)
        self.namespace = namespace

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__["__builtins__"] = self.namespace.builtins
        super().exec_module(module)


class _NamespaceFinder(importlib.abc.MetaPathFinder):
    """Finds ``_trio_gateway_ns_<n>.<module>`` in its namespace's folder."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(NAMESPACE_PREFIX) or "." not in fullname:
            return None
        prefix, _, rest = fullname.partition(".")
        with _registry_lock:
            namespace = _registry.get(prefix)
        if namespace is None:
            return None
        base = os.path.join(namespace.directory, *rest.split("."))
        package_init = os.path.join(base, "__init__.py")
        if os.path.isfile(package_init):
            return importlib.util.spec_from_file_location(
                fullname,
                package_init,
                loader=_NamespaceLoader(fullname, package_init, namespace),
                submodule_search_locations=[base],
            )
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(
                fullname, base + ".py", loader=_NamespaceLoader(fullname, base + ".py", namespace)
            )
        return None


_finder = _NamespaceFinder()


def _install_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _local_names(directory: str) -> frozenset[str]:
    names = set()
    try:
        entries = os.listdir(directory)
    except OSError:
        return frozenset()
    for entry in entries:
        full = os.path.join(directory, entry)
        if entry.endswith(".py") and entry[:-3].isidentifier():
            names.add(entry[:-3])
        elif entry.isidentifier() and os.path.isfile(os.path.join(full, "__init__.py")):
            names.add(entry)
    return frozenset(names)


class ModuleNamespace:
    """The modules of one folder, imported under a private package name."""

    def __init__(
        self,
        directory: str,
        *,
        provided: Mapping[str, ModuleType] | None = None,
        builtins_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.prefix = f"{NAMESPACE_PREFIX}{next(_counter)}"
        self.local = _local_names(self.directory)
        #: Dotted name -> module, found by this namespace's imports before anything else.
        self.provided: Mapping[str, ModuleType] = provided or {}
        self._provided_tops = frozenset(name.partition(".")[0] for name in self.provided)
        package = ModuleType(self.prefix)
        package.__path__ = [self.directory]
        package.__package__ = self.prefix
        self.builtins: dict[str, Any] = dict(vars(builtins))
        self.builtins.update(builtins_overrides or {})
        self.builtins["__import__"] = self._import
        with _registry_lock:
            _install_finder()
            _registry[self.prefix] = self
            sys.modules[self.prefix] = package

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        top = name.partition(".")[0]
        if level == 0 and top in self._provided_tops:
            return self._import_provided(name, top, fromlist)
        if level == 0 and top in self.local:
            full = f"{self.prefix}.{name}"
            module = importlib.__import__(full, globals, locals, fromlist or (), 0)
            if fromlist:
                return module
            return sys.modules[f"{self.prefix}.{top}"]
        return builtins.__import__(name, globals, locals, fromlist or (), level)

    def _import_provided(self, name: str, top: str, fromlist: Sequence[str] | None) -> ModuleType:
        # ``import a.b`` binds ``a``; ``from a.b import x`` needs ``a.b`` itself.
        module = self.provided.get(name)
        if module is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return module if fromlist else self.provided[top]

    def load_file(self, filename: str) -> ModuleType:
        """Import ``filename`` (a file of this folder) and return its module."""
        stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(filename))[0])
        name = f"{self.prefix}.{stem}"
        existing = sys.modules.get(name)
        if existing is not None:
            return existing
        loader = _NamespaceLoader(name, filename, self)
        spec = importlib.util.spec_from_file_location(name, filename, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        # Registered while it runs, so dataclasses/pickling inside the plugin can find it.
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def release(self) -> None:
        """Forget every module of this namespace (their memory goes with the last reference)."""
        with _registry_lock:
            _registry.pop(self.prefix, None)
            dotted = self.prefix + "."
            for name in [n for n in sys.modules if n == self.prefix or n.startswith(dotted)]:
                sys.modules.pop(name, None)
