"""Scrape-time gauges end to end: sync plugins' worker threads per plugin, and upstream
connections open (in use or idle). A real gateway and upstream on 127.0.0.1 sockets; the scrape is
parsed with prometheus_client's own parser."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from tests.integration.test_metrics_and_trace_e2e import api, get, samples
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig

THREADS = """
import threading

stuck_started = threading.Event()
stuck_release = threading.Event()


def quick(ctx):
    pass


def stuck(ctx):
    stuck_started.set()
    stuck_release.wait(30)
"""


async def start(nursery: trio.Nursery, tmp_path: Path, upstream: RawUpstream) -> RunningGateway:
    apps = tmp_path / "apps"
    apps.mkdir(parents=True)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "threads.py").write_text(THREADS)
    path = "../plugins/threads.py"
    docs = [
        api("plain", upstream.url),
        api(
            "threads",
            upstream.url,
            pre=[
                {"name": "quick", "path": path},
                {"name": "stuck", "path": path, "timeout": 0.2},
            ],
        ),
    ]
    for doc in docs:
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))
    settings = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0))
    gateway: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(settings, apps_dir=apps, task_status=task_status)
    )
    return gateway


async def scrape(address: tuple[str, int]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = await get(address, "/metrics")
    assert status == 200
    return samples(body.decode())


def plugin_labels(hook: str) -> tuple[tuple[str, str], ...]:
    return (("api", "threads"), ("driver", "python"), ("hook", hook))


async def test_abandoned_and_alive_threads_are_counted_per_plugin(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    gateway = await start(nursery, tmp_path, upstream)
    (module,) = [
        m
        for m in list(sys.modules.values())
        if hasattr(m, "stuck_release") and str(tmp_path) in str(getattr(m, "__file__", ""))
    ]
    try:
        # quick runs and returns; stuck passes its deadline: 504, its thread abandoned.
        assert (await get(gateway.address, "/threads/a"))[0] == 504
        assert await trio.to_thread.run_sync(module.stuck_started.wait, 10)
        scraped = await scrape(gateway.address)
        stuck = plugin_labels("pre[1] stuck")
        quick = plugin_labels("pre[0] quick")
        assert scraped[("trio_gateway_hook_threads_abandoned", stuck)] == 1
        assert scraped[("trio_gateway_hook_threads_alive", stuck)] == 1
        assert scraped[("trio_gateway_hook_threads_abandoned", quick)] == 0
        assert scraped[("trio_gateway_hook_threads_alive", quick)] == 0
        # An API without sync plugins has no thread series.
        assert not any(
            name.startswith("trio_gateway_hook_threads") and ("api", "plain") in labels
            for name, labels in scraped
        )
    finally:
        module.stuck_release.set()


async def test_upstream_connections_open_counts_those_in_use_and_idle(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    release = trio.Event()

    async def respond(request: ReceivedRequest, reply: Reply) -> None:
        if request.target.endswith(b"/hold"):
            await release.wait()
        reply.close_after = request.target.endswith(b"/close")
        await reply.respond(200, body=b"ok")

    upstream = await start_upstream(nursery, respond)
    gateway = await start(nursery, tmp_path, upstream)
    address = gateway.address

    assert (await get(address, "/plain/a"))[0] == 200
    scraped = await scrape(address)
    assert scraped[("trio_gateway_upstream_connections_open", ())] == 1
    assert scraped[("trio_gateway_upstream_connections_idle", ())] == 1

    answered: list[int] = []

    async def held() -> None:
        answered.append((await get(address, "/plain/hold"))[0])

    async with trio.open_nursery() as requests:
        requests.start_soon(held)
        requests.start_soon(held)
        await upstream.wait_until(
            lambda: sum(r.target.endswith(b"/hold") for r in upstream.requests) == 2
        )
        # Both connections are in use (the idle one was taken, a second opened): open, not idle.
        scraped = await scrape(address)
        assert scraped[("trio_gateway_upstream_connections_open", ())] == 2
        assert scraped[("trio_gateway_upstream_connections_idle", ())] == 0
        release.set()
    assert answered == [200, 200]
    scraped = await scrape(address)
    assert scraped[("trio_gateway_upstream_connections_open", ())] == 2
    assert scraped[("trio_gateway_upstream_connections_idle", ())] == 2

    # The upstream ends the next exchange with "Connection: close": the gateway closes that
    # connection, and the gauge drops.
    assert (await get(address, "/plain/close"))[0] == 200
    scraped = await scrape(address)
    assert scraped[("trio_gateway_upstream_connections_open", ())] == 1
    assert scraped[("trio_gateway_upstream_connections_idle", ())] == 1
