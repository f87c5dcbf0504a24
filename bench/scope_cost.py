"""Microbenchmark: what a Trio cancel scope costs, against the other ways to bound a wait
(the reason for ``trio_gateway/_deadlines.py``).

    .venv/bin/python bench/scope_cost.py [--calls 200000]

Prints µs per operation (wall time, one task, nothing else running):

* ``scope with deadline``: ``with trio.CancelScope(deadline=...)``, entered and left;
* ``plain scope``: the same without a deadline;
* ``set and reset a held scope's deadline``: moving a deadline on a scope already entered,
  then back to infinity;
* ``RequestDeadlines arm + disarm``: what the plain proxy path pays per request instead;
* ``checkpoint``: ``trio.lowlevel.checkpoint()`` (a trip through the scheduler), for scale.
"""

from __future__ import annotations

import argparse
import math
import time

import trio

from trio_gateway._deadlines import RequestDeadlines
from trio_gateway._exchange import Response


def _answer() -> Response:
    return Response(status=504, headers=[])


async def main(calls: int) -> None:
    now = trio.current_time()
    results: dict[str, float] = {}

    start = time.perf_counter()
    for i in range(calls):
        with trio.CancelScope(deadline=now + 30 + i * 1e-6):  # noqa: ASYNC100 (timed)
            pass
    results["scope with deadline"] = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(calls):
        with trio.CancelScope():  # noqa: ASYNC100 (what is timed)
            pass
    results["plain scope"] = time.perf_counter() - start

    with trio.CancelScope() as held:  # noqa: ASYNC100 (what is timed)
        start = time.perf_counter()
        for i in range(calls):
            held.deadline = now + 30 + i * 1e-6
            held.deadline = math.inf
        results["set and reset a held scope's deadline"] = time.perf_counter() - start

    deadlines = RequestDeadlines()
    guard = deadlines.guard(lambda: None)
    start = time.perf_counter()
    for i in range(calls):
        guard.arm(now + 30 + i * 1e-6, _answer)
        guard.disarm()
    results["RequestDeadlines arm + disarm"] = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(calls):
        await trio.lowlevel.checkpoint()
    results["checkpoint"] = time.perf_counter() - start

    for name, seconds in results.items():
        print(f"{name:>40}: {seconds / calls * 1e6:6.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    trio.run(main, parser.parse_args().calls)
