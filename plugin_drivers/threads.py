"""Sync plugin code in worker threads, under a per-plugin thread limit (shared by drivers).

The ``python`` driver (sync and Tyk-style hooks) and the ``otto`` driver (the gateway built-ins
a script calls, between its steps on the VM's thread) both run blocking work here.

``trio.to_thread.run_sync`` costs ~50 µs of CPU per call on the dev machine, a third of a
keyless request; most of it is machinery a plugin call does not use (context copy, the
``trio.from_thread`` plumbing for the thread, a limiter protocol wrapper). This does the same
job on Trio's own thread cache (``trio.lowlevel.start_thread_soon``) in ~30 µs
(``bench/bench_tyk_python.py``, docs/performance.md), with the same rules:

* a token of the plugin's ``CapacityLimiter`` is taken before the thread starts (waiting for one
  is cancellable: nothing started, nothing to abandon) and released only when the thread returns;
* a cancel (the hook's deadline, or the client leaving) while the thread runs *abandons* it: the
  caller gets ``trio.Cancelled`` at once, the thread's result is dropped when it comes, and its
  token stays borrowed until then, so abandoned threads keep counting against the limit.

Threads started here are not Trio threads: ``trio.from_thread.run`` needs an explicit
``trio_token`` in them (the Tyk ``gateway`` module passes one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    import outcome  # Trio's own dependency: only its types are used here

__all__ = ["run_in_worker_thread", "run_limited"]

T = TypeVar("T")


class _Call:
    """One call: the borrower of its limiter token, and whether its caller gave up on it."""

    __slots__ = ("abandoned", "limiter", "task")

    def __init__(self, limiter: trio.CapacityLimiter, task: trio.lowlevel.Task) -> None:
        self.limiter = limiter
        self.task = task
        self.abandoned = False

    def finish(self, result: outcome.Outcome[Any]) -> None:
        """On the event loop, once the thread returned."""
        self.limiter.release_on_behalf_of(self)
        if not self.abandoned:
            trio.lowlevel.reschedule(self.task, result)


async def run_in_worker_thread(
    fn: Callable[[], T], limiter: trio.CapacityLimiter, on_abandon: Callable[[], None]
) -> T:
    """``fn()`` in a worker thread under ``limiter``; ``on_abandon()`` is called (on the loop)
    when a cancel abandons the running thread."""
    call = _Call(limiter, trio.lowlevel.current_task())
    # A deadline already passed starts nothing (so abandons nothing).
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        # A free token is taken without the scheduler round trip that ``acquire_on_behalf_of``
        # makes on success (~10 µs): the wait for the thread below yields anyway.
        limiter.acquire_on_behalf_of_nowait(call)
    except trio.WouldBlock:
        await limiter.acquire_on_behalf_of(call)
    token = trio.lowlevel.current_trio_token()

    def deliver(result: outcome.Outcome[T]) -> None:
        # In the worker thread, after fn returned (or raised).
        try:
            token.run_sync_soon(call.finish, result)
        except trio.RunFinishedError:
            pass  # the gateway stopped while an abandoned thread ran: nobody is waiting

    def abort(_: Any) -> trio.lowlevel.Abort:
        call.abandoned = True
        on_abandon()
        return trio.lowlevel.Abort.SUCCEEDED

    trio.lowlevel.start_thread_soon(fn, deliver)
    result: T = await trio.lowlevel.wait_task_rescheduled(abort)
    return result


async def run_limited(
    limiter: trio.CapacityLimiter,
    fn: Callable[..., T],
    *args: object,
    on_abandon: Callable[[], None] | None = None,
) -> T:
    """``fn(*args)`` through :func:`run_in_worker_thread` (``on_abandon`` optional)."""
    return await run_in_worker_thread(
        functools.partial(fn, *args), limiter, on_abandon or _nothing
    )


def _nothing() -> None:
    pass
