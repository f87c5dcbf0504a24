"""Tyk-style ``@Hook`` functions: Tyk's coprocess ``Object`` in, in-place edits out.

Tyk's Python dispatcher parses the ``Object`` the gateway sends, calls the hook with its parts
and serialises the *same* ``Object`` back, so only in-place edits count; the return value only
has to have the right shape. This does the same without the round trip through bytes on the
way back: the driver builds the ``Object`` (:func:`call_object`, on the event loop), the hook
edits it in a worker thread (:func:`dispatch`), and the driver applies it with the translation
every coprocess driver shares (``plugin_drivers/coprocess``).

The thread works only on the call's own ``Object``: a thread abandoned at its deadline edits a
message nobody reads, never a live request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from trio_gateway.drivers import ApiInfo, Decision, HookContext, HookError, HookRef

from ..coprocess import wire
from ..coprocess.hook_call import apply_reply, encode_call
from ..coprocess.proto import coprocess_object_pb2 as object_pb
from .loader import LoadFailure
from .tyk_api.tyk.decorators import Event, Hook
from .tyk_api.tyk.request import TykCoProcessRequest

__all__ = ["ARITIES", "apply", "call_object", "dispatch", "spec_map", "tyk_arity"]

#: Tyk calls ``f(request, session, spec)``, ``f(request, session, metadata, spec)`` or
#: ``f(request, response, session, metadata, spec)``.
ARITIES: Final = (3, 4, 5)


def tyk_arity(fn: object) -> int:
    """The number of positional parameters Tyk will call a ``@Hook`` with (3, 4 or 5); raises
    :class:`LoadFailure` for what Tyk cannot call (it would fail every request)."""
    if isinstance(fn, Hook):
        count = fn.arg_count
        if count not in ARITIES:
            raise LoadFailure(
                f"@Hook function {fn.name} takes {count} positional parameters; Tyk calls hooks "
                "with 3 (request, session, spec), 4 (request, session, metadata, spec) or 5 "
                "(request, response, session, metadata, spec)"
            )
        return count
    if isinstance(fn, Event):
        raise LoadFailure(f"{fn.name} is an @Event handler, not a hook (use @Hook)")
    name = getattr(fn, "name", "?")
    raise LoadFailure(
        f"{name} uses Tyk's legacy @{type(fn).__name__} decorator, which Tyk itself cannot call; "
        "use @Hook"
    )


def spec_map(api: ApiInfo, bundle: str) -> dict[str, str]:
    """Tyk's ``spec`` map for the API's calls (``OrgID``, ``APIID``, ``bundle_hash``,
    ``config_data`` as JSON text when set). Hooks get a plain dict copy: a missing key raises
    ``KeyError`` as in Tyk (a protobuf map would answer ``""``)."""
    spec = {
        "OrgID": api.org_id,
        "APIID": api.api_id,
        "bundle_hash": hashlib.md5(bundle.encode()).hexdigest(),
    }
    if api.config_data:
        spec["config_data"] = wire.go_json(api.config_data)
    return spec


async def call_object(hook: HookRef, ctx: HookContext) -> object_pb.Object:
    """The ``Object`` Tyk would send for this call, without its ``spec`` (:func:`spec_map`).

    Encoded as the gRPC driver does and parsed (in C): as cheap as filling the generated classes
    for a small request, and a body is copied once (docs/performance.md, "Tyk-style Python
    hooks").
    """
    return object_pb.Object.FromString(await encode_call(hook, ctx, spec=b""))


def _unpack(result: Any, count: int, shape: str, name: str) -> tuple[Any, ...]:
    try:
        values = tuple(result)
    except TypeError:
        values = ()
    if len(values) != count:
        # Tyk unpacks the result and fails the call the same way (500 Middleware error).
        raise HookError(f"Tyk-style hook {name} must return {shape}, not {type(result).__name__}")
    return values


def dispatch(
    handler: Callable[..., Any],
    arity: int,
    obj: object_pb.Object,
    spec: dict[str, str],
    name: str,
) -> None:
    """Call ``handler`` as Tyk's dispatcher does (in a worker thread); it edits ``obj``.
    ``spec`` is the call's own copy of :func:`spec_map`."""
    request = TykCoProcessRequest(obj.request)
    session = obj.session
    if arity == 3:
        _unpack(handler(request, session, spec), 2, "(request, session)", name)
    elif arity == 4:
        metadata = session.metadata
        returned = handler(request, session, metadata, spec)
        _, new_session, new_metadata = _unpack(returned, 3, "(request, session, metadata)", name)
        # Tyk merges the returned metadata into the returned session: it counts only when that
        # is the session it was given (a new one is never sent back).
        if (
            new_session is session
            and new_metadata is not metadata
            and isinstance(new_metadata, Mapping)
        ):
            for key, value in new_metadata.items():
                metadata[str(key)] = str(value)
    else:
        handler(request, obj.response, session, session.metadata, spec)


def apply(obj: object_pb.Object, ctx: HookContext, label: str) -> Decision:
    """Apply the edited ``Object`` to the call's exchange (the gRPC driver's translation)."""
    try:
        return apply_reply(obj, ctx)
    except wire.WireError as exc:
        raise HookError(f"Tyk-style hook {label}: {exc}") from exc
