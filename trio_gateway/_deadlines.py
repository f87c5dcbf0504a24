"""Request deadlines kept by one task per server, instead of a cancel scope per request.

A Trio cancel scope with a deadline costs ~3.9 µs to open and close on this machine kind
(``bench/scope_cost.py``): about 5 % of a keyless proxied request, more than the rest of the
walk. Most walks need no scope of their own (the plain proxy path; built-in auth and limits;
native Python hooks that fail closed: ``ApiPipeline.guardable``): while the walk is under way,
the request's deadline sits in :class:`RequestDeadlines` (a heap push when it starts, a check
when it ends), and one task, :meth:`RequestDeadlines.run`, wakes when the earliest deadline
passes. A request still in flight then has its connection's scope cancelled
(:class:`DeadlineGuard`), and the connection answers the request's 504 (or the waiting hook's
timeout answer) and closes: the connection is where the request's scope already is.

The timer task sleeps until the earliest deadline on the heap and is woken early only when a
request arrives whose deadline comes before that (an API with a shorter timeout than the ones in
flight); with nothing in flight it looks again after :data:`IDLE_LOOK`. Entries of requests that
finished are dropped lazily (from the top of the heap as requests end, all of them when the heap
holds many more than are in flight), so the heap is bounded by the requests in flight.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ._exchange import Response

__all__ = ["DeadlineGuard", "RequestDeadlines"]

#: Seconds between two looks of the timer when no request is in flight (it could sleep for
#: ever, but then the first request after a pause would have to wake it).
IDLE_LOOK = 1.0
#: Finished requests' entries the heap may hold beyond twice the requests in flight before it
#: is rebuilt without them.
_SLACK = 1024

_Entry = tuple[float, int, "DeadlineGuard"]


class RequestDeadlines:
    """The deadlines of one listener's requests whose walks run without a scope."""

    __slots__ = ("_armed", "_heap", "_seq", "_target", "_wake")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        #: Entry numbers: unique, so ties on the deadline never compare guards.
        self._seq = itertools.count(1)
        #: Guards armed now (the heap's live entries).
        self._armed = 0
        #: When the timer task wakes next (its scope's deadline).
        self._target = -math.inf
        self._wake: trio.CancelScope | None = None

    def guard(self, on_expiry: Callable[[], None]) -> DeadlineGuard:
        """A guard for one connection; ``on_expiry`` cancels the connection's scope."""
        return DeadlineGuard(self, on_expiry)

    @property
    def in_flight(self) -> int:
        return self._armed

    def _drop_finished(self) -> None:
        """Many finished requests' entries below a long one still in flight: drop them all."""
        heap = self._heap
        heap[:] = [entry for entry in heap if entry[2]._seq == entry[1]]
        heapq.heapify(heap)

    def _pop_finished(self) -> None:
        heap = self._heap
        while heap and heap[0][2]._seq != heap[0][1]:
            heapq.heappop(heap)

    async def run(self) -> None:
        """Expire each request still in flight when its deadline passes (until cancelled)."""
        heap = self._heap
        clock = trio.lowlevel.current_clock()
        while True:
            now = clock.current_time()
            while heap and heap[0][0] <= now:
                _, seq, guard = heapq.heappop(heap)
                if guard._seq == seq:
                    guard._expire()
            self._pop_finished()
            self._target = heap[0][0] if heap else now + IDLE_LOOK
            with trio.CancelScope(deadline=self._target) as scope:
                self._wake = scope
                await trio.sleep_forever()
            self._wake = None


class DeadlineGuard:
    """One connection's request deadline: armed while its request's walk is under way."""

    __slots__ = ("_deadlines", "_on_expiry", "_seq", "answer", "expired")

    def __init__(self, deadlines: RequestDeadlines, on_expiry: Callable[[], None]) -> None:
        self._deadlines = deadlines
        self._on_expiry = on_expiry
        #: The live entry's number; 0 when not armed.
        self._seq = 0
        #: What the client gets if the deadline passes (the API's 504), while armed.
        self.answer: Callable[[], Response] | None = None
        #: Set when the deadline passed: the connection answers it (and closes).
        self.expired: Callable[[], Response] | None = None

    # arm() and disarm() run once each per request: RequestDeadlines' bookkeeping is written
    # out here rather than called.

    def arm(self, deadline: float, answer: Callable[[], Response]) -> None:
        """Watch ``deadline`` (absolute, Trio's clock); ``answer`` makes the client's 504."""
        self.answer = answer
        deadlines = self._deadlines
        seq = self._seq = next(deadlines._seq)
        heap = deadlines._heap
        heapq.heappush(heap, (deadline, seq, self))
        armed = deadlines._armed = deadlines._armed + 1
        if len(heap) > 2 * armed + _SLACK:
            deadlines._drop_finished()
        if deadline < deadlines._target and deadlines._wake is not None:
            deadlines._wake.cancel()  # the timer sleeps past this deadline: wake it to look again

    def disarm(self) -> None:
        """The call ended in time (or failed, or was cancelled): stop watching."""
        if self._seq:
            self._seq = 0
            self.answer = None
            deadlines = self._deadlines
            deadlines._armed -= 1
            heap = deadlines._heap
            # Requests mostly end in the order they began: this one's entry is usually on top.
            while heap and heap[0][2]._seq != heap[0][1]:
                heapq.heappop(heap)

    def rearm(self, deadline: float, answer: Callable[[], Response]) -> None:
        """Watch ``deadline`` with ``answer`` instead of what was watched (if anything)."""
        self.disarm()
        self.arm(deadline, answer)

    def _expire(self) -> None:
        self._seq = 0
        self._deadlines._armed -= 1
        self.expired, self.answer = self.answer, None
        self._on_expiry()
