"""The plugin-author test kit: a harness, Hypothesis strategies and a battery of checks.

.. versionadded:: 0.1

``pip install trio-gateway[testing]`` brings pytest, pytest-trio and Hypothesis; the pytest
plugin (registered by entry point) provides the fixtures. docs/plugin-testing.md is the tutorial
and the reference.

* :func:`open_harness` / :class:`Harness`: an API definition with its plugins served by the real
  gateway, against a recording upstream; each request gives a :class:`Result` (what the client
  got, what the upstream saw, the session, the hook trace of :class:`HookCall`).
* :mod:`trio_gateway.testing.strategies`: requests, sessions, API definitions, hook contexts.
* :func:`check_plugin`: the default battery; each check is also a function of its own.
"""

from __future__ import annotations

from ._model import ClientRequest, HookCall, Result, SeenRequest, UpstreamReply, echo_upstream
from .harness import ApiSource, Harness, UpstreamScript, load_apis, open_harness

__all__ = [
    "ApiSource",
    "ClientRequest",
    "Harness",
    "HookCall",
    "Result",
    "SeenRequest",
    "UpstreamReply",
    "UpstreamScript",
    "echo_upstream",
    "load_apis",
    "open_harness",
]
