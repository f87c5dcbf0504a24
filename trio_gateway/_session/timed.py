"""A session store that reports how long each operation took, and which failed, for /metrics.

A thin delegate: every coroutine method of the wrapped store is timed (labels: the operation
name, a bounded set) and its :class:`SessionStoreError` counted; everything else passes through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

import trio

from .._metrics import BUCKETS, Histogram, bucket_of
from .store import SessionStore, SessionStoreError

__all__ = ["StoreTimings", "timed_store"]


class StoreTimings:
    """Latency histogram and error count per store operation."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.errors: dict[str, int] = {}

    def histogram(self, operation: str) -> Histogram:
        """``operation``'s histogram, made (with its error count) on first use."""
        histogram = self.latency.get(operation)
        if histogram is None:
            histogram = self.latency[operation] = Histogram()
            self.errors[operation] = 0
        return histogram

    def observe(self, operation: str, seconds: float, failed: bool) -> None:
        self.histogram(operation).observe(seconds)
        if failed:
            self.errors[operation] += 1


class _TimedStore:
    """The delegate. A coroutine method's timed wrapper is made on its first lookup and kept as
    an instance attribute, so later lookups are plain attribute reads, not ``__getattr__`` calls
    (measured: the wrapper had cost ~5 µs of a keyed request, docs/performance.md)."""

    def __init__(self, inner: SessionStore, timings: StoreTimings) -> None:
        self._inner = inner
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        wrapped = self._time(name)
        setattr(self, name, wrapped)
        return wrapped

    def _time(self, name: str) -> Callable[..., Any]:
        inner, timings = self._inner, self._timings
        histogram = timings.histogram(name)
        counts = histogram.counts
        try:
            # The clock's own method (trio.current_time() is two more calls, twice per
            # operation); a wrapper is made inside the run that uses it (first lookup).
            now = trio.lowlevel.current_clock().current_time
        except RuntimeError:  # looked up outside Trio: the store cannot be awaited there anyway
            now = trio.current_time

        async def timed(*args: Any, **kwargs: Any) -> Any:
            # Looked up per call: the inner store may rebind its methods.
            method = getattr(inner, name)
            started = now()
            try:
                result = await method(*args, **kwargs)
            except SessionStoreError:
                timings.observe(name, now() - started, True)
                raise
            except BaseException:  # cancelled, or a bug: timed, not counted as a store error
                histogram.observe(now() - started)
                raise
            # Histogram.observe written out: twice per keyed request.
            seconds = now() - started
            counts[bucket_of(BUCKETS, seconds)] += 1
            histogram.total += seconds
            return result

        return timed


def timed_store(store: SessionStore, timings: StoreTimings) -> SessionStore:
    """``store`` with its operations timed into ``timings``."""
    return cast(SessionStore, _TimedStore(store, timings))
