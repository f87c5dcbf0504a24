"""Sync (plain ``def``) hooks under concurrency, over real sockets: calls wait for a worker thread
within their hook's deadline instead of failing at once (docs/reliability.md)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch
from tests.helpers.upstream import start_upstream
from trio_gateway._app import RunningGateway

# A sync hook with some real work in it (10 ms of a thread's time), and one the test controls.
PLUGIN = """
import threading
import time

RELEASE = threading.Event()

def slow_work(ctx):
    time.sleep(0.01)
    ctx.request.set_header("x-worked", "1")

def held(ctx):
    RELEASE.wait(10)  # bounded: the test sets it
"""


async def start_with_hook(
    nursery: trio.Nursery, tmp_path: Path, api_id: str, hook: str, **middleware: Any
) -> RunningGateway:
    """A gateway serving one API whose pre hook is ``hook`` from PLUGIN, and its upstream."""
    upstream = await start_upstream(nursery)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "sync_hooks.py").write_text(PLUGIN)
    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id=api_id,
        listen_path=f"/{api_id}/",
        target_url=upstream.url,
        custom_middleware={
            "driver": "python",
            "pre": [{"name": hook, "path": "../plugins/sync_hooks.py"}],
            **middleware,
        },
    )
    return await start_gateway(nursery, apps)


async def test_200_concurrent_requests_through_a_sync_hook_all_answered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # 200 calls of 10 ms on 16 threads take ~0.13 s; the deadline only bounds a stuck test.
    gateway = await start_with_hook(nursery, tmp_path, "work", "slow_work", timeout=20)
    statuses: list[int] = []

    async def one() -> None:
        response = await fetch(gateway.address, "GET", "/work/x")
        statuses.append(response.status)

    with trio.fail_after(60):
        async with trio.open_nursery() as clients:
            for _ in range(200):
                clients.start_soon(one)
    assert statuses == [200] * 200
    pipeline = gateway.gateway.snapshot.runtimes["work"].pipeline
    assert pipeline is not None
    stats = pipeline.statistics()
    assert (stats.errors, stats.unavailable, stats.timeouts) == (0, 0, 0)
    gateway.shutdown()


async def test_a_request_without_a_thread_by_its_deadline_gets_504(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # One thread for the API (the per-API override); its only thread is held by the first call.
    gateway = await start_with_hook(nursery, tmp_path, "held", "held", timeout=0.5, thread_limit=1)
    runtime = gateway.gateway.snapshot.runtimes["held"]
    assert runtime.pipeline is not None
    driver: Any = runtime.pipeline.driver
    release: threading.Event = next(iter(driver._loaded.values())).fn.__globals__["RELEASE"]
    try:
        with trio.fail_after(30):
            first = await fetch(gateway.address, "GET", "/held/a")
            assert first.status == 504  # its thread was abandoned at the deadline ...
            assert driver.statistics().threads_alive == 1  # ... and still holds the token
            second = await fetch(gateway.address, "GET", "/held/b")
            assert second.status == 504  # waited its whole deadline for a thread
            assert driver.statistics().thread_waits == 1
    finally:
        release.set()
    gateway.shutdown()
