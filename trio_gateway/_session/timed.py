"""A session store that reports how long each operation took, and which failed, for /metrics.

A thin delegate: every coroutine method of the wrapped store is timed (labels: the operation
name, a bounded set) and its :class:`SessionStoreError` counted; everything else passes through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

import trio

from .._metrics import Histogram
from .store import SessionStore, SessionStoreError

__all__ = ["StoreTimings", "timed_store"]


class StoreTimings:
    """Latency histogram and error count per store operation."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.errors: dict[str, int] = {}

    def observe(self, operation: str, seconds: float, failed: bool) -> None:
        histogram = self.latency.get(operation)
        if histogram is None:
            histogram = self.latency[operation] = Histogram()
            self.errors[operation] = 0
        histogram.observe(seconds)
        if failed:
            self.errors[operation] += 1


class _TimedStore:
    def __init__(self, inner: SessionStore, timings: StoreTimings) -> None:
        self._inner = inner
        self._timings = timings
        self._wrapped: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped[name] = self._time(name)
        return wrapped

    def _time(self, name: str) -> Callable[..., Any]:
        timings = self._timings

        async def timed(*args: Any, **kwargs: Any) -> Any:
            # Looked up per call: the inner store may rebind its methods.
            method = getattr(self._inner, name)
            started = trio.current_time()
            failed = False
            try:
                return await method(*args, **kwargs)
            except SessionStoreError:
                failed = True
                raise
            finally:
                timings.observe(name, trio.current_time() - started, failed)

        return timed


def timed_store(store: SessionStore, timings: StoreTimings) -> SessionStore:
    """``store`` with its operations timed into ``timings``."""
    return cast(SessionStore, _TimedStore(store, timings))
