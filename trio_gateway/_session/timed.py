"""A session store that reports how long each operation took, and which failed, for /metrics.

A thin delegate: every coroutine method of the wrapped store is timed (labels: the operation
name, a bounded set) and its :class:`SessionStoreError` counted; everything else passes through.

Timed with ``time.perf_counter`` (a duration needs no Trio clock, and a C call costs less than
the clock's Python method), and counted in batches: an operation only appends its duration;
the histogram counts a batch of them in C (``StoreTimings.fold``), at the latest when /metrics
is read. Two operations per keyed request: the per-call work is on its hot path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

from .._metrics import FOLD_EVERY, Histogram
from .store import SessionStore, SessionStoreError

__all__ = ["StoreTimings", "timed_store"]


class StoreTimings:
    """Latency histogram and error count per store operation."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.errors: dict[str, int] = {}
        #: Per operation: durations not yet counted in its histogram (at most FOLD_EVERY).
        self.pending: dict[str, list[float]] = {}

    def histogram(self, operation: str) -> Histogram:
        """``operation``'s histogram, made (with its error count) on first use."""
        histogram = self.latency.get(operation)
        if histogram is None:
            histogram = self.latency[operation] = Histogram()
            self.errors[operation] = 0
            self.pending[operation] = []
        return histogram

    def observe(self, operation: str, seconds: float, failed: bool) -> None:
        self.histogram(operation).observe(seconds)
        if failed:
            self.errors[operation] += 1

    def fold(self, operation: str | None = None) -> None:
        """Count the pending durations (of ``operation``, or of all): before a scrape reads
        the histograms, and whenever a batch is full."""
        for name in (operation,) if operation is not None else tuple(self.pending):
            pending = self.pending[name]
            if pending:
                batch = pending[:]
                pending.clear()  # in place: the timed wrappers hold this list
                self.latency[name].observe_all(batch)


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
        pending = timings.pending[name]
        append = pending.append

        async def timed(*args: Any, **kwargs: Any) -> Any:
            # Looked up per call: the inner store may rebind its methods.
            method = getattr(inner, name)
            started = perf_counter()
            try:
                result = await method(*args, **kwargs)
            except SessionStoreError:
                timings.observe(name, perf_counter() - started, True)
                raise
            except BaseException:  # cancelled, or a bug: timed, not counted as a store error
                histogram.observe(perf_counter() - started)
                raise
            append(perf_counter() - started)
            if len(pending) >= FOLD_EVERY:
                timings.fold(name)
            return result

        return timed


def timed_store(store: SessionStore, timings: StoreTimings) -> SessionStore:
    """``store`` with its operations timed into ``timings``."""
    return cast(SessionStore, _TimedStore(store, timings))
