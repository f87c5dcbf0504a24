"""Turn API definitions that name a bundle into ones that carry the bundle's hooks.

The manifest's ``custom_middleware`` replaces the API's completely, for every driver (Tyk's
rule): ``python`` hooks, ``grpc`` hooks (a bundle that only names hooks), and the JavaScript
driver when it lands. Paths in the manifest resolve inside the bundle directory; a ``python``
hook without a path uses the bundle's ``middleware.py`` (Tyk's Python entry point), or the only
file of a bundle whose ``file_list`` has one entry (as Tyk's Python loader does).

Bundles of different APIs are fetched concurrently in one nursery, under one total deadline. A
bundle several APIs share is fetched once. Any failure leaves that API out of the result's
``apis`` mapping and in ``failures`` with Tyk's reason; the caller makes it answer 503.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from .._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
from .._apidef.unsupported import CLASSIC_KEYS, OAS_KEYS, check_middleware
from .._config.model import BundlesConfig
from ..errors import BundleError
from .fetch import FetchPolicy
from .store import LoadedBundle, load_bundle

__all__ = ["TOTAL_FETCH_DEADLINE", "apply_bundle", "resolve_bundles"]

log = logging.getLogger("trio_gateway.bundles")

#: Bound on fetching every bundle of one (re)load: five 5 s attempts plus backoff is ~33 s.
TOTAL_FETCH_DEADLINE = 60.0

PYTHON_ENTRY = "middleware.py"

#: Tyk's download schedule (a module global so that tests can shorten the backoff).
FETCH_POLICY = FetchPolicy()


def _python_entry(file_list: tuple[str, ...]) -> str:
    """Tyk's Python entry file: ``middleware.py``, or the only file of a one-file bundle."""
    return file_list[0] if len(file_list) == 1 else PYTHON_ENTRY


def _inside(directory: Path, ref: PluginRef, driver: str, entry: str = PYTHON_ENTRY) -> PluginRef:
    path = ref.path
    if not path and driver == "python":
        path = entry
    if not path or driver == "grpc":
        return ref
    if os.path.isabs(path):
        raise BundleError("", f"hook {ref.name!r}: path {path!r} must be relative to the bundle")
    resolved = os.path.normpath(os.path.join(directory, path))
    if os.path.commonpath([resolved, str(directory)]) != str(directory):
        raise BundleError("", f"hook {ref.name!r}: path {path!r} leaves the bundle directory")
    return attrs.evolve(ref, path=resolved)


def apply_bundle(api: ApiDefinition, bundle: LoadedBundle) -> ApiDefinition:
    """``api`` with the manifest's hooks (pure). Raises BundleError (without the name)."""
    mw = bundle.manifest.middleware
    if mw.is_empty():
        raise BundleError(bundle.name, "No hooks defined")
    if not mw.driver:
        raise BundleError(bundle.name, "No driver specified")
    directory = bundle.directory
    entry = _python_entry(bundle.manifest.file_list)

    def resolve(refs: tuple[PluginRef, ...]) -> tuple[PluginRef, ...]:
        return tuple(_inside(directory, r, mw.driver, entry) for r in refs)

    try:
        merged = MiddlewareConfig(
            driver=mw.driver,
            pre=resolve(mw.pre),
            auth_check=(
                _inside(directory, mw.auth_check, mw.driver, entry) if mw.auth_check else None
            ),
            post_key_auth=resolve(mw.post_key_auth),
            post=resolve(mw.post),
            response=resolve(mw.response),
            # Per-endpoint plugins are not part of a manifest (Tyk keeps them in the API).
            endpoints=api.middleware.endpoints,
            id_extractor=mw.id_extractor,
            # Our extensions: the manifest's if it sets them, else the API's.
            timeout=mw.timeout if mw.timeout is not None else api.middleware.timeout,
            failure_mode=mw.failure_mode or api.middleware.failure_mode,
            thread_limit=mw.thread_limit or api.middleware.thread_limit,
        )
    except BundleError as exc:
        raise BundleError(bundle.name, exc.reason) from None
    result = attrs.evolve(api, middleware=merged)
    problems = check_middleware(result, OAS_KEYS if api.format == "oas" else CLASSIC_KEYS)
    if problems:
        raise BundleError(bundle.name, "; ".join(problems))
    return result


@attrs.frozen(kw_only=True)
class ResolvedApis:
    #: Every API in the input order; those with a bundle carry its hooks (or are failed).
    apis: list[ApiDefinition]
    #: api_id -> why its bundle failed (the API answers 503).
    failures: dict[str, str]


async def resolve_bundles(
    apis: Sequence[ApiDefinition],
    settings: BundlesConfig,
    *,
    deadline: float = TOTAL_FETCH_DEADLINE,
) -> ResolvedApis:
    """Fetch every named bundle concurrently and apply each to its APIs."""
    names = sorted({api.bundle for api in apis if api.bundle})
    loaded: dict[str, LoadedBundle | str] = {}

    async def one(name: str) -> None:
        try:
            loaded[name] = await load_bundle(name, settings, fetch=FETCH_POLICY)
        except BundleError as exc:
            loaded[name] = exc.reason

    if names:
        with trio.move_on_after(deadline):
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(one, name)
    out: list[ApiDefinition] = []
    failures: dict[str, str] = {}
    for api in apis:
        if not api.bundle:
            out.append(api)
            continue
        got = loaded.get(api.bundle, f"not fetched within {deadline:g}s")
        try:
            if isinstance(got, str):
                raise BundleError(api.bundle, got)
            out.append(apply_bundle(api, got))
        except BundleError as exc:
            failures[api.api_id] = f"plugin bundle {api.bundle!r}: {exc.reason}"
            out.append(api)
    return ResolvedApis(apis=out, failures=failures)
