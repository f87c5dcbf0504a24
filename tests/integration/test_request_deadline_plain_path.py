"""The request deadline where the listener's :class:`~trio_gateway._deadlines.RequestDeadlines`
keeps it instead of a cancel scope per request: the plain proxy path (an API without hooks or
auth) and pipelines of built-in steps only (token auth, limits). Real sockets, Trio's mock
clock (the deadlines are exact, the test takes no time).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
import trio.testing

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import RawResponse, open_client
from tests.helpers.upstream import ReceivedRequest, Reply, start_upstream
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig
from trio_gateway._ratelimit import LimitResult, Limits
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session

#: The 504 a request's deadline gets (docs/tyk-differences.md).
TIMEOUT_BODY = {"error": "Upstream service reached hard timeout."}


async def _never_answer(request: ReceivedRequest, reply: Reply) -> None:
    """An upstream that takes the request and never answers it."""
    await trio.sleep_forever()


async def _timed_request(
    address: tuple[str, int],
    target: str,
    results: dict[str, tuple[float, RawResponse, bool]],
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Send one GET on a connection of its own; note when the answer came, the answer, and
    whether the gateway closed the connection after it."""
    async with open_client(address, read_timeout=600) as client:
        started = trio.current_time()
        response = await client.request("GET", target, headers)
        answered = trio.current_time()
        # Closed at once after the answer (the mock clock would reach the keep-alive bound
        # otherwise: then it is not "closed").
        closed = not await client._fill() and trio.current_time() == answered
        results[target] = (answered - started, response, closed)


async def test_an_upstream_slower_than_the_deadline_gets_a_504_exactly_at_it_and_the_connection_closes(  # noqa: E501
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_upstream(nursery, _never_answer)
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
    upstream = await start_upstream(nursery, _never_answer)
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


async def test_a_keyed_api_without_hooks_gets_its_504_at_the_deadline_too(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Token auth, a rate limit and a quota (built-in steps only): the walk runs without a
    # scope, and the deadline still ends a request whose upstream is too slow, at the deadline.
    upstream = await start_upstream(nursery, _never_answer)
    write_keyless_api(
        tmp_path, api_id="keyed", listen_path="/keyed/", target_url=upstream.url, use_keyless=False
    )
    store = MemorySessionStore()
    await store.put_session("k1", Session(rate=1000, per=1, quota_max=10, quota_renewal_rate=60))
    config = attrs.evolve(
        GatewayConfig(proxy_default_timeout=30), listen=ListenConfig(host="127.0.0.1", port=0)
    )
    gw: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=tmp_path, session_store=store, task_status=task_status
        )
    )
    results: dict[str, tuple[float, RawResponse, bool]] = {}

    await _timed_request(gw.address, "/keyed/x", results, (("Authorization", "k1"),))

    elapsed, response, closed = results["/keyed/x"]
    assert abs(elapsed - 30) < 0.05
    assert response.status == 504
    assert response.json() == TIMEOUT_BODY
    assert response.closes
    assert closed
    # The key was checked and counted on the way (the built-ins ran before the upstream call).
    session = await store.get_session("k1")
    assert session is not None
    assert session.quota_remaining == 9


class _BrokenStore(MemorySessionStore):
    """A store with a bug: looking up ``lookup-bug`` and counting ``count-bug`` raise."""

    async def get_session(self, key: str, *, shared: bool = False) -> Session | None:
        if key == "lookup-bug":
            raise RuntimeError("a bug in the store's lookup")
        return await super().get_session(key, shared=shared)

    async def consume(self, key: str, limits: Limits, *, now: float) -> LimitResult:
        if key == "count-bug":
            raise RuntimeError("a bug in the store's counting")
        return await super().consume(key, limits, now=now)


async def test_a_built_in_step_that_raises_gets_its_policy_answer_on_the_guarded_walk(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Built-in steps alone walk without the per-step machinery (steps.walk_builtins_guarded);
    # a step that raises still gets its failure policy's answer, counted against that step,
    # and the gateway goes on serving.
    upstream = await start_upstream(nursery)
    write_keyless_api(
        tmp_path, api_id="keyed", listen_path="/keyed/", target_url=upstream.url, use_keyless=False
    )
    store = _BrokenStore()
    for key in ("good", "lookup-bug", "count-bug"):
        await store.put_session(key, Session(rate=1000, per=1, quota_max=10, quota_renewal_rate=60))
    config = attrs.evolve(GatewayConfig(), listen=ListenConfig(host="127.0.0.1", port=0))
    gw: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=tmp_path, session_store=store, task_status=task_status
        )
    )
    pipeline = gw.gateway.snapshot.runtimes["keyed"].pipeline
    assert pipeline is not None
    assert pipeline.builtins_only

    async with open_client(gw.address) as client:
        lookup = await client.request("GET", "/keyed/x", (("Authorization", "lookup-bug"),))
        count = await client.request("GET", "/keyed/x", (("Authorization", "count-bug"),))
        good = await client.request("GET", "/keyed/x", (("Authorization", "good"),))

    # Built-in auth fails closed as an auth step does; the built-ins as a middleware error.
    assert (lookup.status, lookup.json()) == (403, {"error": "Key not authorised"})
    assert (count.status, count.json()) == (500, {"error": "Middleware error"})
    assert good.status == 200
    assert good.header(b"x-ratelimit-remaining") == b"9"
    assert len(upstream.requests) == 1
    statistics = pipeline.statistics()
    assert statistics.errors == 2
    assert statistics.failures_by_hook == {"auth[0] built-in auth": 1, "post_auth[0] built-ins": 1}


HOOKS = """
import trio


async def slow(ctx):
    await trio.sleep(10)


async def brief(ctx):
    await trio.sleep(1)
"""


async def test_native_hooks_that_fail_closed_keep_their_own_deadline_without_a_scope(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Native hooks that all fail closed walk without a scope too: a hook that waits gets its
    # own deadline on the connection's guard, with its own timeout answer (its policy's, counted
    # as its timeout), and the request's deadline holds again once the hook has returned.
    upstream = await start_upstream(nursery, _never_answer)
    plugin = tmp_path / "hooks.py"
    plugin.write_text(HOOKS)
    for api_id, name in (("slow", "slow"), ("brief", "brief")):
        write_keyless_api(
            tmp_path / "apps",
            api_id=api_id,
            listen_path=f"/{api_id}/",
            target_url=upstream.url,
            custom_middleware={
                "driver": "python",
                "pre": [{"name": name, "path": str(plugin), "timeout": 2}],
            },
        )
    gw = await start_gateway(
        nursery, tmp_path / "apps", config=GatewayConfig(proxy_default_timeout=30)
    )
    assert gw.gateway.snapshot.runtimes["slow"].pipeline.guardable  # type: ignore[union-attr]
    results: dict[str, tuple[float, RawResponse, bool]] = {}

    await _timed_request(gw.address, "/slow/x", results)
    await _timed_request(gw.address, "/brief/x", results)

    elapsed, response, closed = results["/slow/x"]
    assert abs(elapsed - 2) < 0.05  # the hook's own deadline
    assert response.status == 504
    assert response.json() == TIMEOUT_BODY
    assert closed
    statistics = gw.gateway.snapshot.runtimes["slow"].pipeline.statistics()  # type: ignore[union-attr]
    assert statistics.timeouts == 1
    # The brief hook returned after 1 s; the upstream never answers: the request's own deadline
    # (30 s from the start) ends it.
    elapsed, response, closed = results["/brief/x"]
    assert abs(elapsed - 30) < 0.05
    assert response.status == 504
    assert closed
    assert len(upstream.requests) == 1  # only the brief hook's request reached the upstream
