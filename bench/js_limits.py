"""JavaScript limits, measured: how long a stopped script holds its thread and VM, and RSS under
memory runaways (issue 15).

    .venv/bin/python bench/js_limits.py [--runs 5] [--runaways 10]

1. An endless loop in a hook whose deadline (0.5 s) is below ``jsvm_timeout`` (5 s): the time the
   client waits for its 504, and the time until the same API's VM answers again (the next request
   on that API waits for the VM: that is how long the stopped script held it and its thread).
2. The same loop stopped by ``jsvm_timeout`` (0.5 s, hook deadline 10 s).
3. Scripts that allocate without end against the memory cap (64 MiB): every one answered 500,
   the API answering 200 after each, and this process's RSS before, at its peak and after.

Prints the load average too: the engine's limit is processor time, so on a loaded machine the
wall-clock time until a stop is longer. Results: docs/javascript.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from _js_gateway import get, js_api, peak_rss_mib, rss_mib, start_gateway, start_upstream
from _js_gateway import write_apps as write_api_files

from trio_gateway._config.model import JavascriptConfig

SCRIPT = """
var passThrough = new TykJS.TykMiddleware.NewMiddleware({});
passThrough.NewProcessRequest(function (request, session, config) {
    return passThrough.ReturnData(request, {});
});
var loop = new TykJS.TykMiddleware.NewMiddleware({});
loop.NewProcessRequest(function (request, session, config) {
    while (true) {}
});
var grow = new TykJS.TykMiddleware.NewMiddleware({});
grow.NewProcessRequest(function (request, session, config) {
    var keep = [];
    while (true) { keep.push(new Array(10000).join("x") + keep.length); }
});
"""


def with_endpoint(doc: dict[str, Any], script: Path, name: str, timeout: float) -> dict[str, Any]:
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {
        "go_plugin": [
            {
                "path": "/stop",
                "method": "GET",
                "plugin_path": str(script),
                "func_name": name,
                "timeout": timeout,
            }
        ]
    }
    return doc


async def measure(runs: int, runaways: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "limits.js"
        script.write_text(SCRIPT)
        async with trio.open_nursery() as nursery:
            upstream = await start_upstream(nursery)
            apis = [
                with_endpoint(js_api("deadline", script, "passThrough"), script, "loop", 0.5),
                with_endpoint(js_api("jsvm", script, "passThrough"), script, "loop", 10),
                with_endpoint(js_api("memory", script, "passThrough"), script, "grow", 10),
            ]
            apps = write_api_files(folder, upstream, apis)
            # jsvm_timeout 5 s for "deadline"; the "jsvm" API gets its own gateway below.
            gw = await start_gateway(nursery, apps, JavascriptConfig(enable=True))
            await stop_and_recover(gw.address, "deadline", runs)
            gw2 = await start_gateway(nursery, apps, JavascriptConfig(enable=True, timeout=0.5))
            await stop_and_recover(gw2.address, "jsvm", runs)

            before = rss_mib()
            statuses = []
            for _ in range(runaways):
                statuses.append(await get(gw.address, "/memory/stop"))
                statuses.append(await get(gw.address, "/memory/other"))
            after = rss_mib()
            assert statuses == [500, 200] * runaways, statuses
            print(
                f"memory: {runaways} runaways against a 64 MiB cap, each a 500 and the API 200"
                f" after it; RSS {before:.0f} MiB before, {after:.0f} MiB after,"
                f" peak {peak_rss_mib():.0f} MiB"
            )
            gw.shutdown()
            gw2.shutdown()
            nursery.cancel_scope.cancel()


CASES = {
    "deadline": "hook deadline 0.5 s, jsvm_timeout 5 s",
    "jsvm": "jsvm_timeout 0.5 s, hook deadline 10 s",
}


async def stop_and_recover(address: tuple[str, int], api_id: str, runs: int) -> None:
    """The loop's 504, then the same API's next request: how long until each came."""
    answered, freed = [], []
    for _ in range(runs):
        start = time.perf_counter()
        assert await get(address, f"/{api_id}/stop") == 504
        answered.append(time.perf_counter() - start)
        assert await get(address, f"/{api_id}/other") == 200
        freed.append(time.perf_counter() - start)
    what = CASES[api_id]
    print(
        f"{what}: 504 after {statistics.median(answered):.2f} s (max {max(answered):.2f});"
        f" thread and VM free after {statistics.median(freed):.2f} s (max {max(freed):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runaways", type=int, default=10)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    trio.run(measure, args.runs, args.runaways)


if __name__ == "__main__":
    main()
