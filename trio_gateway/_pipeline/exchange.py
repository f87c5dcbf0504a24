"""Per-request state the pipeline carries between stages (one per request, built by the server)."""

from __future__ import annotations

import math

import attrs

from .._apidef.model import ApiDefinition
from .._session.model import Session


@attrs.define(eq=False, slots=True, kw_only=True)
class Exchange:
    """What one request has accumulated on its walk.

    The server passes ``api`` and ``deadline`` (absolute, on ``trio.current_time()``'s clock);
    the rest starts empty and is filled by the stages.
    """

    api: ApiDefinition
    deadline: float = math.inf
    #: The caller already runs this request under a cancel scope with ``deadline`` (the gateway
    #: does): the pipeline then skips its own scope around built-ins-only walks.
    deadline_enforced: bool = False
    #: The session once authenticated (by custom auth, or later by the built-in token auth).
    session: Session | None = None
    session_key: str = ""
    #: True when a hook changed ``session.meta_data`` (the session store writes it back).
    meta_data_changed: bool = False
    #: True when custom auth created the session (Tyk schedules it for a store update).
    session_created: bool = False
    #: Set once the pipeline's finisher has run (it persists session changes exactly once).
    finished: bool = False
    #: Headers for the response the client gets from the upstream (``X-RateLimit-*``).
    response_headers: tuple[tuple[bytes, bytes], ...] = ()
