"""Directory-loaded JavaScript middleware.

The files are ``<middleware_path>/<api_id>/{pre,auth,post_auth,post}/*.js``.

Tyk (``tyk-compat.md`` §2.7; ``loadCustomMiddleware`` in Tyk's ``gateway/server.go``) adds these
files to an API's hooks with no entry in the API definition: the hook name is the file name up to
its first dot, and a name ending in ``_with_session`` asks for the session. Files are taken in
name order. As in Tyk, ``pre`` and ``post`` files run after the definition's hooks of that stage,
``post_auth`` files before them, and an ``auth`` file replaces the definition's ``auth_check``
(the last one in name order wins). A definition that names no driver gets Tyk's default,
``otto``; one naming another driver is left alone (its hooks are not JavaScript). We read the
folder only when ``enable_jsvm`` is on. Reading it touches the disk: call this in a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

from ._apidef.model import ApiDefinition, PluginRef

__all__ = ["JS_DRIVERS", "with_folder_middleware"]

#: Driver names that run JavaScript middleware.
JS_DRIVERS: Final = frozenset({"otto", "javascript"})

_SESSION_SUFFIX: Final = "_with_session"


def _folder_hooks(folder: Path) -> tuple[PluginRef, ...]:
    if not folder.is_dir():
        return ()
    refs = []
    for path in sorted(folder.glob("*.js")):
        if not path.is_file():
            continue
        name = path.name.split(".", 1)[0]
        refs.append(
            PluginRef(name=name, path=str(path), require_session=name.endswith(_SESSION_SUFFIX))
        )
    return tuple(refs)


def with_folder_middleware(api: ApiDefinition, middleware_path: str) -> ApiDefinition:
    """``api`` with the JavaScript files of its middleware folder added to its hooks."""
    mw = api.middleware
    if mw.driver not in JS_DRIVERS and mw.driver != "":
        return api
    base = Path(middleware_path) / api.api_id
    if not base.is_dir():
        return api
    pre = _folder_hooks(base / "pre")
    auth = _folder_hooks(base / "auth")
    post_auth = _folder_hooks(base / "post_auth")
    post = _folder_hooks(base / "post")
    if not (pre or auth or post_auth or post):
        return api
    middleware = attrs.evolve(
        mw,
        driver=mw.driver or "otto",
        pre=mw.pre + pre,
        auth_check=auth[-1] if auth else mw.auth_check,
        post_key_auth=post_auth + mw.post_key_auth,
        post=mw.post + post,
    )
    return attrs.evolve(api, middleware=middleware)
