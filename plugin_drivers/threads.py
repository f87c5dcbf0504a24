"""Sync plugin code in Trio worker threads, under a per-plugin thread limit (shared by drivers).

The ``python`` driver (sync hooks) and the ``otto`` driver (JavaScript calls) both run blocking
work with ``trio.to_thread.run_sync(..., abandon_on_cancel=True)`` under a
``trio.CapacityLimiter`` of ``hook.thread_limit`` tokens. The token is taken *before* the thread
starts (:class:`HeldToken`), so that a deadline passing while a call waits for a token (nothing
started) is told apart from one passing while the thread runs (the thread is abandoned and keeps
its token until it returns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
import trio

__all__ = ["HeldToken", "run_limited"]

T = TypeVar("T")


async def run_limited(
    limiter: trio.CapacityLimiter,
    fn: Callable[..., T],
    *args: object,
    on_abandon: Callable[[], None] | None = None,
) -> T:
    """``fn(*args)`` in a worker thread holding one of ``limiter``'s tokens.

    Waits for a token within the caller's deadline. When the caller is cancelled while the
    thread runs, the thread is abandoned (``on_abandon`` is called) and keeps its token until it
    returns; ``trio.Cancelled`` propagates either way.
    """
    held = HeldToken(limiter)
    await limiter.acquire_on_behalf_of(held)
    try:
        return await trio.to_thread.run_sync(
            fn,
            *args,
            # Trio documents "CapacityLimiter-like" limiters; its annotation is narrower.
            limiter=held,  # type: ignore[arg-type]
            abandon_on_cancel=True,
        )
    except trio.Cancelled:
        if held.handed_over and on_abandon is not None:
            on_abandon()
        raise
    finally:
        held.release_unless_handed_over()


@attrs.define(eq=False)
class HeldToken:
    """A limiter token already acquired, handed to ``trio.to_thread.run_sync`` as its limiter.

    Trio then "acquires" it without waiting and releases the real token when the thread
    returns, abandoned or not (the rule that keeps abandoned threads counted). If ``run_sync``
    gives up before taking it (cancelled at its first checkpoint), the caller releases it.
    """

    limiter: trio.CapacityLimiter
    handed_over: bool = False

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self.handed_over = True

    def release_on_behalf_of(self, borrower: object) -> None:
        self.limiter.release_on_behalf_of(self)

    def release_unless_handed_over(self) -> None:
        if not self.handed_over:
            self.handed_over = True
            self.limiter.release_on_behalf_of(self)
