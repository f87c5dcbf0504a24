"""Find a hook's function: a ``.py`` file (``path``) or an importable ``module:function``.

Import runs user code and touches the disk, so the driver calls these functions in a worker thread.
Errors are plain messages; the driver prefixes the API and hook.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

from .namespace import ModuleNamespace
from .tyk_api.tyk.decorators import HANDLER_TYPES

#: The file Tyk loads from a bundle (and we from a plugin folder given as ``path``).
PYTHON_ENTRY = "middleware.py"


class LoadFailure(Exception):
    """A hook's function cannot be loaded; the message says why."""


def resolve_path(path: str, api_source: str) -> str:
    """``path`` made absolute: relative paths are relative to the API definition file's folder."""
    if os.path.isabs(path):
        return path
    base = os.path.dirname(api_source) if api_source and os.path.isfile(api_source) else os.getcwd()
    return os.path.normpath(os.path.join(base, path))


def plugin_file(path: str) -> str:
    """The file to import for a resolved ``path``: the file itself, or a folder's
    ``middleware.py`` (a Tyk bundle's layout, for plugins developed without a bundle)."""
    if os.path.isdir(path):
        entry = os.path.join(path, PYTHON_ENTRY)
        if not os.path.isfile(entry):
            raise LoadFailure(f"plugin folder {path} has no {PYTHON_ENTRY}")
        return entry
    if not path.endswith(".py"):
        raise LoadFailure(f"path {path!r} is neither a .py file nor a folder")
    return path


def load_file_module(
    filename: str,
    namespaces: dict[str, ModuleNamespace],
    make_namespace: Callable[[str], ModuleNamespace] = ModuleNamespace,
) -> ModuleType:
    """Import a plugin file in its folder's own namespace (``namespace.py``): sibling modules
    import by plain name, and no other folder's modules are seen. ``namespaces`` maps folders to
    the namespaces of one driver load (the driver releases them when it closes);
    ``make_namespace`` makes a folder's namespace the first time."""
    if not os.path.isfile(filename):
        raise LoadFailure(f"plugin file not found: {filename}")
    directory = os.path.dirname(filename)
    namespace = namespaces.get(directory)
    if namespace is None:
        namespace = namespaces[directory] = make_namespace(directory)
    try:
        return namespace.load_file(filename)
    except Exception as exc:
        raise LoadFailure(f"importing {filename} failed: {type(exc).__name__}: {exc}") from exc


def load_dotted(target: str) -> Callable[..., Any]:
    """``package.module:function`` imported normally."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise LoadFailure(f"{target!r} is neither a .py path nor a 'module:function' name")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LoadFailure(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return get_function(module, attr, module_name)


def find_hook(module: ModuleType, name: str, where: str) -> Callable[..., Any]:
    """The hook ``name`` of a plugin file: Tyk's rule first (a module-level decorator object
    whose function is called ``name``), else the module attribute ``name`` (native hooks)."""
    for value in vars(module).values():
        if isinstance(value, HANDLER_TYPES) and getattr(value, "name", None) == name:
            return cast("Callable[..., Any]", value)
    return get_function(module, name, where)


def get_function(module: ModuleType, name: str, where: str) -> Callable[..., Any]:
    fn = getattr(module, name, None)
    if fn is None:
        raise LoadFailure(f"{where} has no function {name!r}")
    if not callable(fn):
        raise LoadFailure(f"{where}.{name} is not callable")
    return fn  # type: ignore[no-any-return]


def check_native_signature(fn: Callable[..., Any], name: str) -> None:
    """A native hook takes exactly one positional argument, the context."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise LoadFailure(f"cannot inspect the signature of {name!r}: {exc}") from exc
    try:
        sig.bind(object())
    except TypeError:
        raise LoadFailure(
            f"{name}{sig} must take exactly one argument (the hook context)"
        ) from None
