"""Tyk's ``tyk.session`` names for the session messages."""

from __future__ import annotations

from plugin_drivers.coprocess.proto import coprocess_session_state_pb2 as _session

__all__ = [
    "AccessDefinition",
    "AccessSpec",
    "BasicAuthData",
    "JWTData",
    "Monitor",
    "TykSession",
]

TykSession = _session.SessionState
AccessSpec = _session.AccessSpec
AccessDefinition = _session.AccessDefinition
BasicAuthData = _session.BasicAuthData
JWTData = _session.JWTData
Monitor = _session.Monitor
