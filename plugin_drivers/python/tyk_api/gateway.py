"""Tyk's ``gateway`` module (``from gateway import TykGateway as tyk``), one per plugin namespace.

Tyk's functions are called on the class (``tyk.log("hi", "info")``) and reach the gateway they
run in; here each module namespace gets its own module object whose ``TykGateway`` is bound to
the API's :class:`PluginServices` (its store, its API id for log lines, the Trio run to call
back into). No globals: two gateways in one process never share it.

Plugin code runs in worker threads started by Trio, so the store calls go back to the event loop
with ``trio.from_thread.run`` and wait there (bounded by :data:`STORE_TIMEOUT`, Tyk's 1 s).
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs
import trio

from trio_gateway.drivers import DriverStore

__all__ = ["STORE_TIMEOUT", "PluginServices", "gateway_module"]

log = logging.getLogger("trio_gateway.plugins.python")

#: Tyk bounds ``store_data`` and ``get_data`` by one second (``coprocess_api.go``).
STORE_TIMEOUT: Final = 1.0
#: A failing store is reported once per this many seconds per API (then with a count).
_REPORT_INTERVAL: Final = 10.0

_LEVELS: Final = {"debug": logging.DEBUG, "error": logging.ERROR, "warning": logging.WARNING}

T = TypeVar("T")


@attrs.define(eq=False)
class _ThrottledWarning:
    """One warning per interval, then a count: a store outage must not flood the log from
    every worker thread. Thread-safe (plugin code runs in many threads)."""

    interval: float = _REPORT_INTERVAL
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _next: float = 0.0
    _suppressed: int = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self.interval
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("%s%s", message, more)


@attrs.define(eq=False)
class PluginServices:
    """What ``TykGateway``'s functions reach for one API's plugins."""

    api_id: str
    #: The gateway's store (None when the driver runs outside a gateway: data calls fail).
    store: DriverStore | None
    #: The Trio run the driver was loaded in (worker threads call back into it).
    trio_token: trio.lowlevel.TrioToken
    _store_failures: _ThrottledWarning = attrs.field(factory=_ThrottledWarning)

    def log(self, message: object, level: str = "info") -> None:
        log.log(_LEVELS.get(level, logging.INFO), "plugin api=%s: %s", self.api_id, message)

    def print(self, text: str, *, stderr: bool) -> None:
        log.log(
            logging.WARNING if stderr else logging.INFO,
            "plugin output api=%s: %s",
            self.api_id,
            text,
        )

    def _call_store(self, what: str, call: Callable[[DriverStore], Awaitable[T]]) -> T | None:
        store = self.store
        if store is None:
            self._store_failures.warning(
                f"plugin api={self.api_id}: {what} failed: the driver has no store"
            )
            return None

        async def bounded() -> T:
            with trio.fail_after(STORE_TIMEOUT):
                return await call(store)

        try:
            return trio.from_thread.run(bounded, trio_token=self.trio_token)
        except Exception as exc:  # store down, timeout, gateway stopping: Tyk logs and goes on
            self._store_failures.warning(
                f"plugin api={self.api_id}: {what} failed: {type(exc).__name__}: {exc}"
            )
            return None

    def store_data(self, key: str, value: str | bytes, ttl: int) -> None:
        data = value.encode() if isinstance(value, str) else bytes(value)
        self._call_store("store_data", lambda store: store.store_data(str(key), data, int(ttl)))

    def get_data(self, key: str) -> bytes:
        """The stored bytes, or ``b""`` when missing, expired or the store failed (Tyk's answer)."""
        data = self._call_store("get_data", lambda store: store.get_data(str(key)))
        return data or b""

    def trigger_event(self, name: str, payload: str) -> None:
        # The gateway runs no event handlers (docs/tyk-differences.md): the event is logged.
        log.info("plugin event api=%s: %s %s", self.api_id, name, payload)


def gateway_module(services: PluginServices) -> types.ModuleType:
    """A ``gateway`` module whose ``TykGateway`` is bound to ``services``."""

    class TykGateway:
        """Tyk's gateway functions, called on the class: ``tyk.log("message", "info")``."""

        @staticmethod
        def log(message: Any, level: str = "info") -> None:
            services.log(message, level)

        @staticmethod
        def log_error(message: Any) -> None:
            services.log(message, "error")

        @staticmethod
        def store_data(key: str, value: str | bytes, ttl: int) -> None:
            services.store_data(key, value, ttl)

        @staticmethod
        def get_data(key: str) -> bytes:
            return services.get_data(key)

        @staticmethod
        def trigger_event(name: str, payload: str) -> None:
            services.trigger_event(name, payload)

    module = types.ModuleType("gateway", "Tyk's gateway functions for plugin code.")
    module.TykGateway = TykGateway  # type: ignore[attr-defined]
    return module
