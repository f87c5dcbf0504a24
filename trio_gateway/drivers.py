"""The driver SDK: everything a plugin driver may use, and nothing else.

.. versionadded:: 0.1

A plugin driver runs an API's hooks in some plugin runtime (native Python, a gRPC coprocess
server, JavaScript...). Drivers live outside the gateway (``plugin_drivers/``) and import only
this module, :mod:`trio_gateway.hooks` and :mod:`trio_gateway.errors`; the import contracts in
``pyproject.toml`` (``lint-imports``) hold them to it. docs/drivers.md walks through writing one.

What a driver gets:

* **Its settings**, passed in when the gateway builds it: the gateway calls the driver's factory
  with a :class:`DriverSettings` (gateway config); each hook entry (:class:`HookRef`) carries the
  values resolved per API and per hook (``timeout``, ``failure_mode``, ``thread_limit``).
  A driver that needs a resource shared by all APIs (the gRPC driver's channels) names an opener
  that the gateway enters once in its root nursery; what it yields arrives as
  ``settings.shared``. No context variables, no globals.
* **The hook call context** (:class:`HookContext`): the request/response views for plugins, the
  ``raw_*`` accessors for Tyk-protocol drivers (:class:`Request`, :class:`Response`,
  :class:`Session`), the session rules per stage, the API's ``config_data`` (:class:`ApiInfo`).
  The deadline is the cancel scope the gateway calls :meth:`Driver.call` in; ``trio.Cancelled``
  must propagate.
* **Decisions** (:data:`CONTINUE`, :class:`Respond`) and **failures**
  (:class:`PluginDriverError`, :class:`HookTimeout`, :class:`HookError`).
* **Store access**: ``settings.store`` (:class:`DriverStore`): sessions by key (JS
  ``TykGetKeyData``) and plugin data (Tyk's ``store_data``/``get_data``).
* **Sessions as Tyk's JSON** (:func:`session_to_json`, :func:`session_from_json`), for drivers
  whose plugins see the session as JSON (JavaScript).
* **Logging**: :class:`FailureLog` turns repeated failures into one line per cause and interval.
* **Sockets**: :func:`open_raw_tcp_stream` (the gateway's fair TCP stream) for drivers that speak
  to a plugin server, and Tyk's error bodies (:func:`error_body`, :data:`ERROR_HEADERS`).
"""

from __future__ import annotations

from typing import Protocol

from ._apidef.model import (
    ApiDefinition,
    FailureMode,
    PluginRef,
    Stage,
    VirtualEndpoint,
    VirtualSource,
)
from ._driver_settings import (
    DEFAULT_BLOCKING_THRESHOLD,
    DriverSettings,
    DriverStore,
    GrpcSettings,
    JsSettings,
)
from ._error_body import ERROR_HEADERS, error_body
from ._exchange import BodySource, Headers, Request, Response
from ._logsummary import FailureLog
from ._net import RawSocketStream, open_raw_tcp_stream
from ._session.json import session_from_json, session_to_json
from ._session.model import AccessDefinition, AllowedUrl, Session
from .errors import HookError, HookTimeout, PluginDriverError
from .hooks import (
    CONTINUE,
    HOOK_API_VERSION,
    ApiInfo,
    Continue,
    Decision,
    Driver,
    HookContext,
    HookRef,
    Respond,
    TraceContext,
)

__all__ = [
    "CONTINUE",
    "DEFAULT_BLOCKING_THRESHOLD",
    "ERROR_HEADERS",
    "HOOK_API_VERSION",
    "AccessDefinition",
    "AllowedUrl",
    "ApiDefinition",
    "ApiInfo",
    "BodySource",
    "Continue",
    "Decision",
    "Driver",
    "DriverFactory",
    "DriverSettings",
    "DriverStore",
    "FailureLog",
    "FailureMode",
    "GrpcSettings",
    "Headers",
    "HookContext",
    "HookError",
    "HookRef",
    "HookTimeout",
    "JsSettings",
    "PluginDriverError",
    "PluginRef",
    "RawSocketStream",
    "Request",
    "Respond",
    "Response",
    "Session",
    "Stage",
    "TraceContext",
    "VirtualEndpoint",
    "VirtualSource",
    "error_body",
    "open_raw_tcp_stream",
    "session_from_json",
    "session_to_json",
]


class DriverFactory(Protocol):
    """What ``plugin_drivers.DRIVERS`` names for each driver: builds one driver for one API."""

    def __call__(self, settings: DriverSettings, /) -> Driver: ...

