"""The timeout sweeper cuts many expired connections without stalling the loop in one batch."""

from __future__ import annotations

import math
from typing import Any, cast

import attrs
import trio
import trio.testing

from trio_gateway._exchange import Request, Response
from trio_gateway._server import SWEEP_BATCH, HttpServer, ServerLimits


@attrs.define(eq=False)
class FakeConnection:
    """What the sweeper looks at: a deadline, and ``time_out`` to cut the connection off."""

    cut: list[int]
    clock: list[int]
    deadline: float = math.inf

    def time_out(self) -> None:
        self.cut.append(self.clock[0])


async def no_handler(request: Request) -> Response:
    raise AssertionError("not called")


async def test_many_expired_connections_are_cut_over_several_batches(
    mock_clock: trio.testing.MockClock,
) -> None:
    server = HttpServer(no_handler, limits=ServerLimits(keepalive_timeout=8.0))
    cut: list[int] = []
    ticks = [0]  # scheduler batches seen by a bystander task
    count = 500
    fakes = [FakeConnection(cut, ticks, deadline=1.0) for _ in range(count)]
    fakes.append(FakeConnection(cut, ticks))  # no deadline: never cut
    server.connections = cast(Any, set(fakes))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server._sweep_timeouts)
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(2.0)  # past every deadline and the sweeper's interval

        # A bystander that runs once per scheduler batch, like any other connection's task.
        while len(cut) < count:
            await trio.lowlevel.checkpoint()
            ticks[0] += 1
        nursery.cancel_scope.cancel()

    assert len(cut) == count
    per_batch = [cut.count(tick) for tick in set(cut)]
    # The bystander's turn comes between every few dozen cuts, never after all of them at once.
    assert max(per_batch) <= 2 * SWEEP_BATCH, max(per_batch)
