"""RequestDeadlines: the plain proxy path's deadlines without a scope per request."""

from __future__ import annotations

import trio
import trio.testing

from trio_gateway import _deadlines
from trio_gateway._deadlines import RequestDeadlines
from trio_gateway._exchange import Response


def _answer() -> Response:
    return Response(status=504, headers=[])


def test_finished_requests_leave_no_entries_behind_a_long_one_beyond_the_bound() -> None:
    # One request stays in flight (a slow upstream) while thousands come and go: their entries
    # sit below its own on the heap, which must not grow with them.
    deadlines = RequestDeadlines()
    slow = deadlines.guard(lambda: None)
    slow.arm(10.0, _answer)
    quick = deadlines.guard(lambda: None)
    for i in range(20_000):
        quick.arm(11.0 + i, _answer)
        quick.disarm()
        assert len(deadlines._heap) <= 2 * (deadlines.in_flight + 1) + _deadlines._SLACK
    assert deadlines.in_flight == 1
    slow.disarm()
    assert deadlines.in_flight == 0
    assert deadlines._heap == []  # in order: each end takes its own entry off the top


async def test_only_requests_still_in_flight_expire_each_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    deadlines = RequestDeadlines()
    expired: list[tuple[str, float]] = []
    first = deadlines.guard(lambda: expired.append(("first", trio.current_time())))
    second = deadlines.guard(lambda: expired.append(("second", trio.current_time())))
    done = deadlines.guard(lambda: expired.append(("done", trio.current_time())))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(deadlines.run)
        await trio.sleep(0.5)
        first.arm(3.0, _answer)
        second.arm(7.0, _answer)
        done.arm(2.0, _answer)
        done.disarm()  # answered in time
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert expired == [("first", 3.0), ("second", 7.0)]
    assert first.expired is _answer
    assert second.expired is _answer
    assert done.expired is None
    second.disarm()  # after its expiry: nothing left to undo
    assert deadlines.in_flight == 0
