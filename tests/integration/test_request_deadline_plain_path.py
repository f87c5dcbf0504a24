"""The request deadline on the plain proxy path (an API without hooks or auth), which the
listener's :class:`~trio_gateway._deadlines.RequestDeadlines` keeps instead of a cancel scope
per request: real sockets, Trio's mock clock (the deadlines are exact, the test takes no time).
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawResponse, open_client
from tests.helpers.upstream import ReceivedRequest, Reply, start_upstream
from trio_gateway._config.model import GatewayConfig

#: The 504 a request's deadline gets (docs/tyk-differences.md).
TIMEOUT_BODY = {"error": "Upstream service reached hard timeout."}


async def _timed_request(
    address: tuple[str, int], target: str, results: dict[str, tuple[float, RawResponse, bool]]
) -> None:
    """Send one GET on a connection of its own; note when the answer came, the answer, and
    whether the gateway closed the connection after it."""
    async with open_client(address, read_timeout=600) as client:
        started = trio.current_time()
        response = await client.request("GET", target)
        elapsed = trio.current_time() - started
        results[target] = (elapsed, response, not await client._fill())


async def test_an_upstream_slower_than_the_deadline_gets_a_504_exactly_at_it_and_the_connection_closes(  # noqa: E501
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    never = trio.Event()

    async def hold(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hold)
    write_keyless_api(tmp_path, api_id="slow", listen_path="/slow/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path, config=GatewayConfig(proxy_default_timeout=30))
    results: dict[str, tuple[float, RawResponse, bool]] = {}

    await _timed_request(gw.address, "/slow/x", results)

    elapsed, response, closed = results["/slow/x"]
    assert abs(elapsed - 30) < 0.05
    assert response.status == 504
    assert response.header(b"content-type") == b"application/json"
    assert response.json() == TIMEOUT_BODY
    assert response.header(b"x-request-id")
    assert response.header(b"connection") == b"close"
    assert closed
    # The upstream exchange was given up: its connection is closed, not pooled.
    with trio.fail_after(1):
        await upstream.requests[0].connection.closed_by_peer.wait()


async def test_a_shorter_deadline_arriving_later_fires_first(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The timer sleeps until the earliest deadline it knows; a request whose deadline comes
    # before that (an API with a shorter timeout) must wake it, or it answers 30 s late.
    never = trio.Event()

    async def hold(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    upstream = await start_upstream(nursery, hold)
    write_keyless_api(tmp_path, api_id="long", listen_path="/long/", target_url=upstream.url)
    write_keyless_api(tmp_path, api_id="short", listen_path="/short/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path, config=GatewayConfig(proxy_default_timeout=60))
    gw.gateway.snapshot.runtimes["short"].timeout = 5.0
    results: dict[str, tuple[float, RawResponse, bool]] = {}

    async with trio.open_nursery() as clients:
        clients.start_soon(_timed_request, gw.address, "/long/x", results)
        await trio.sleep(1)  # (mock clock: no real wait) the long one is in flight first
        clients.start_soon(_timed_request, gw.address, "/short/x", results)

    assert abs(results["/short/x"][0] - 5) < 0.05
    assert abs(results["/long/x"][0] - 60) < 0.05
    assert results["/short/x"][1].status == results["/long/x"][1].status == 504


async def test_requests_that_finish_in_time_keep_their_connection_and_are_not_cut_later(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # A request that got its answer leaves the deadlines: 40 s later (past its deadline) the
    # connection still carries another request, which is answered too.
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="fast", listen_path="/fast/", target_url=upstream.url)
    gw = await start_gateway(
        nursery,
        tmp_path,
        config=GatewayConfig(proxy_default_timeout=30),
        keepalive_timeout=600,
    )
    async with open_client(gw.address, read_timeout=600) as client:
        first = await client.request("GET", "/fast/a")
        await trio.sleep(40)
        second = await client.request("GET", "/fast/b")
    assert (first.status, second.status) == (200, 200)
    assert not first.closes
    assert len(upstream.requests) == 2
