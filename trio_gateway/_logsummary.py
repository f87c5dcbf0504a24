"""Repeated failures, logged once per interval with a count, so that an outage cannot flood the log.

A plugin server or Redis going away makes every request fail the same way; one WARNING with
two chained tracebacks per request wrote 22 MB of stderr in a 5 s gRPC outage and halved the
error path's throughput (docs/reliability.md, "Log volume during outages"). A
:class:`FailureLog` instead writes, per *key* (the caller's choice: API and cause):

* the first failure at once, at WARNING, as ONE line carrying the exception's type and message
  (and its causes'), so the cause is visible at the default level;
* nothing more for ``interval`` seconds, only a count;
* then one summary line with the count: at the next failure with that key, or from the
  sweeper task (:func:`run_failure_log_sweeper`) when the failures stopped.

Tracebacks go to DEBUG, every time (``--log-level debug`` shows each one).

State is per Trio run (a ``RunVar``): two gateways in one process (tests) never hide each
other's lines, and the clock (``trio.current_time``) is always the current run's.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Hashable

import attrs
import trio

__all__ = ["DEFAULT_INTERVAL", "FailureLog", "describe_exception", "run_failure_log_sweeper"]

#: Seconds between two lines for the same key.
DEFAULT_INTERVAL = 10.0
#: How many causes (``raise ... from``) a warning line names at most.
_MAX_CAUSES = 3


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` for ``exc`` and its causes, on one line (``OSError: ...`` etc.)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) <= _MAX_CAUSES:
        seen.add(id(current))
        text = str(current).replace("\n", " ").strip()
        part = f"{type(current).__name__}: {text}" if text else type(current).__name__
        # A wrapper whose message already quotes its cause (perhaps without the cause's own
        # "CODE: " prefix) does not need it twice.
        core = text.split(": ", 1)[-1]
        if not parts or (text not in parts[-1] and core not in parts[-1]):
            parts.append(part)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return " <- ".join(parts)


@attrs.define(eq=False)
class _Window:
    started: float
    ends: float
    #: Failures counted and not yet reported, and the last one's text.
    suppressed: int = 0
    last_text: str = ""


#: Every FailureLog, for the sweeper (weak: a test's own instances go away with it).
_ALL: weakref.WeakSet[FailureLog] = weakref.WeakSet()


@attrs.define(eq=False)
class FailureLog:
    """Summarises repeated failures written to ``logger`` (see the module docstring)."""

    logger: logging.Logger
    interval: float = DEFAULT_INTERVAL
    #: Seconds, monotonic; the current Trio run's clock (a ``MockClock`` in tests).
    clock: Callable[[], float] = trio.current_time
    _windows: trio.lowlevel.RunVar[dict[Hashable, _Window]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._windows = trio.lowlevel.RunVar(f"failure_log_{id(self)}")
        _ALL.add(self)

    def _state(self) -> dict[Hashable, _Window]:
        try:
            return self._windows.get()
        except LookupError:
            windows: dict[Hashable, _Window] = {}
            self._windows.set(windows)
            return windows

    def warning(self, key: Hashable, message: str, exc: BaseException | None = None) -> None:
        """Report one failure: ``message`` (already formatted) plus ``exc``'s type and message."""
        text = message if exc is None else f"{message}: {describe_exception(exc)}"
        if exc is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s", text, exc_info=exc)
        now = self.clock()
        windows = self._state()
        window = windows.get(key)
        if window is not None and now < window.ends:
            window.suppressed += 1
            window.last_text = text
            return
        if window is not None and window.suppressed:
            self._summary(text, window.suppressed + 1, now - window.started)
        else:
            self.logger.warning("%s", text)
        windows[key] = _Window(started=now, ends=now + self.interval)

    def sweep(self, *, everything: bool = False) -> None:
        """Report the counts of windows that ended (``everything``: of all windows, at
        shutdown), and forget them (keeps the state bounded)."""
        try:
            windows = self._windows.get()
        except LookupError:
            return
        now = self.clock()
        for key, window in list(windows.items()):
            if everything or now >= window.ends:
                if window.suppressed:
                    self._summary(window.last_text, window.suppressed, now - window.started)
                del windows[key]

    def _summary(self, text: str, count: int, seconds: float) -> None:
        self.logger.warning("%s (%d times in the last %.0f s)", text, count, seconds)


async def run_failure_log_sweeper(interval: float = 1.0) -> None:
    """Sweep every :class:`FailureLog` each ``interval`` seconds, until cancelled (the
    gateway's root nursery runs it), so that the count of an outage that ended is reported;
    when cancelled (shutdown), report every count not reported yet."""
    try:
        while True:
            await trio.sleep(interval)
            for failure_log in list(_ALL):
                failure_log.sweep()
    finally:
        for failure_log in list(_ALL):
            failure_log.sweep(everything=True)
