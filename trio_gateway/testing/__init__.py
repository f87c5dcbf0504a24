"""The plugin-author test kit: a harness, Hypothesis strategies and a battery of checks.

.. versionadded:: 0.1

``pip install trio-gateway[testing]`` brings pytest, pytest-trio and Hypothesis; the pytest
plugin (registered by entry point) provides the fixtures. docs/plugin-testing.md is the tutorial
and the reference.

* :func:`open_harness` / :class:`Harness`: an API definition with its plugins served by the real
  gateway, against a recording upstream; each request gives a :class:`Result` (what the client
  got, what the upstream saw, the session, the hook trace of :class:`HookCall`);
  :class:`FakeUpstream` scripts the upstream and records what it saw.
* :mod:`trio_gateway.testing.strategies`: requests, sessions, API definitions, hook contexts.
* :func:`check_plugin`: the default battery; each check is also a function of its own.
* :func:`run_conformance` / :func:`load_vectors`: the cross-driver conformance vectors, for
  authors of drivers (docs/conformance.md); also importable from
  :mod:`trio_gateway.testing.conformance`.

.. versionchanged:: 0.1
   The conformance API is re-exported here.
"""

from __future__ import annotations

from ._fake_upstream import FakeUpstream
from ._model import ClientRequest, HookCall, Result, SeenRequest, UpstreamReply, echo_upstream
from .conformance import (
    ConformanceReport,
    ConformanceSetupError,
    PluginSpec,
    ResponseExpectation,
    ScriptedReply,
    UpstreamExpectation,
    Vector,
    VectorOutcome,
    VectorRequest,
    VectorSet,
    definition_from_file,
    load_vectors,
    run_conformance,
)
from .harness import ApiSource, Harness, UpstreamScript, load_apis, open_harness

__all__ = [
    "ApiSource",
    "ClientRequest",
    "ConformanceReport",
    "ConformanceSetupError",
    "FakeUpstream",
    "Harness",
    "HookCall",
    "PluginSpec",
    "ResponseExpectation",
    "Result",
    "ScriptedReply",
    "SeenRequest",
    "UpstreamExpectation",
    "UpstreamReply",
    "UpstreamScript",
    "Vector",
    "VectorOutcome",
    "VectorRequest",
    "VectorSet",
    "definition_from_file",
    "echo_upstream",
    "load_apis",
    "load_vectors",
    "open_harness",
    "run_conformance",
]
