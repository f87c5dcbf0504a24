"""The request deadline on APIs with plugin hooks, end to end.

On such APIs the upstream call runs inside the hook walk's own cancel scope (one scope per request,
``ApiPipeline.run_request_then``): these tests hold that the request's deadline still answers 504
and cancels the upstream request, also after a hook timed out under a fail-open policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from trio_gateway._config.model import GatewayConfig

HOOKS = '''
import trio

async def passes(ctx):
    return None

async def stalls(ctx):
    await trio.sleep(60)
'''

#: The API's request deadline in these tests (seconds).
REQUEST_TIMEOUT = 0.5


async def holding_upstream(nursery: trio.Nursery) -> RawUpstream:
    never = trio.Event()

    async def hold(request: ReceivedRequest, reply: Reply) -> None:
        await never.wait()

    return await start_upstream(nursery, hold)


def write_api(apps: Path, target_url: str, pre: list[dict[str, object]]) -> None:
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "hooks.py").write_text(HOOKS)
    write_keyless_api(
        apps,
        api_id="hooked",
        listen_path="/hooked/",
        target_url=target_url,
        custom_middleware={"driver": "python", "pre": pre},
    )


async def fetch_status(address: tuple[str, int]) -> int:
    with trio.fail_after(10):
        response = await fetch(address, "GET", "/hooked/x")
    return response.status


PASSES = {"name": "passes", "path": "hooks.py"}
#: Times out after 0.1 s; its policy goes on with the walk.
STALLS_OPEN = {"name": "stalls", "path": "hooks.py", "timeout": 0.1, "failure_mode": "open"}


@pytest.mark.parametrize(
    "pre", [[PASSES], [STALLS_OPEN]], ids=["after-a-hook", "after-a-fail-open-hook-timeout"]
)
async def test_stalled_upstream_behind_hooks_is_504_and_cancelled(
    nursery: trio.Nursery, tmp_path: Path, pre: list[dict[str, object]]
) -> None:
    """After a hook timed out under fail-open, the walk's scope is spent: the upstream call runs
    in a fresh one, which must still carry the request's deadline."""
    upstream = await holding_upstream(nursery)
    write_api(tmp_path / "apps", upstream.url, pre)
    config = GatewayConfig(proxy_default_timeout=REQUEST_TIMEOUT)
    gw = await start_gateway(nursery, tmp_path / "apps", config=config)

    started = trio.current_time()
    assert await fetch_status(gw.address) == 504
    assert trio.current_time() - started >= REQUEST_TIMEOUT
    # The upstream request was cancelled: its connection is closed, not kept for reuse.
    with trio.fail_after(10):
        await upstream.requests[0].connection.closed_by_peer.wait()


async def test_fail_open_hook_timeout_goes_on_to_the_upstream(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The walk's scope is spent by the hook's timeout; the upstream call gets a fresh one."""
    upstream = await start_upstream(nursery)
    write_api(tmp_path / "apps", upstream.url, [STALLS_OPEN, PASSES])
    gw = await start_gateway(nursery, tmp_path / "apps")

    assert await fetch_status(gw.address) == 200
    assert len(upstream.requests) == 1


async def test_gateway_keeps_serving_after_a_timed_out_request(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    release = trio.Event()

    async def first_holds(request: ReceivedRequest, reply: Reply) -> None:
        if not release.is_set():
            release.set()
            await trio.Event().wait()  # never answered: the gateway gives up first
        await reply.respond(200, body=b"ok")

    upstream = await start_upstream(nursery, first_holds)
    write_api(tmp_path / "apps", upstream.url, [PASSES])
    config = GatewayConfig(proxy_default_timeout=REQUEST_TIMEOUT)
    gw = await start_gateway(nursery, tmp_path / "apps", config=config)

    assert await fetch_status(gw.address) == 504
    assert await fetch_status(gw.address) == 200
