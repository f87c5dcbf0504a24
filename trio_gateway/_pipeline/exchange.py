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
    #: The client's ``Host`` header (for the upstream request: X-Forwarded-Host, preserve_host).
    host_header: bytes | None = None
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
