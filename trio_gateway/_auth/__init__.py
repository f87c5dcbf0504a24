"""The request path's glue for keys and sessions: built-in auth, limits, session persistence.

The decisions are pure (``trio_gateway._builtins``); the store is ``trio_gateway._session``.
:func:`build_api_auth` picks an API's steps at load time; the pipeline runs them (see
``ApiPipeline.authenticate`` / ``builtins`` / ``finish``).
"""

from __future__ import annotations

from .build import ApiAuth, build_api_auth
from .services import AuthServices

__all__ = ["ApiAuth", "AuthServices", "build_api_auth"]
