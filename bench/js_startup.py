"""Start-up with JavaScript: N APIs, each with one JS Pre hook (issue 15: 100 in under 5 s).

    .venv/bin/python bench/js_startup.py [--apis 100] [--runs 3]

Measures, in this process, the time from calling ``serve_gateway`` until it listens (every API's
VM built: built-ins, Underscore.js, the TykJS library, the API's file), then checks that every
API answers 200 with its hook, and reports the process's RSS with them loaded (``--apis 0``
gives the RSS without them). Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import trio
from _js_gateway import get, js_api, rss_mib, start_gateway, start_upstream, write_apps

from trio_gateway._config.model import JavascriptConfig

SCRIPT = """
var {name} = new TykJS.TykMiddleware.NewMiddleware({{}});
{name}.NewProcessRequest(function (request, session, config) {{
    request.SetHeaders["X-Hook"] = "{name}";
    return {name}.ReturnData(request, {{}});
}});
"""


async def one_run(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with trio.open_nursery() as nursery:
            upstream = await start_upstream(nursery)
            apis = []
            for i in range(count):
                name = f"hook{i}"
                script = folder / f"{name}.js"
                script.write_text(SCRIPT.format(name=name))
                apis.append(js_api(f"api{i}", script, name))
            apps = write_apps(folder, upstream, apis)
            start = time.perf_counter()
            gw = await start_gateway(nursery, apps, JavascriptConfig(enable=True))
            elapsed = time.perf_counter() - start
            resident = rss_mib()
            statuses = [await get(gw.address, f"/api{i}/") for i in range(count)]
            assert statuses == [200] * count, statuses
            gw.shutdown()
            nursery.cancel_scope.cancel()
    return elapsed, resident


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apis", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times, rss = [], []
    for run in range(args.runs):
        elapsed, resident = trio.run(one_run, args.apis)
        times.append(elapsed)
        rss.append(resident)
        print(f"run {run + 1}: {args.apis} JS APIs serving after {elapsed:.2f} s")
    print(
        f"median {statistics.median(times):.2f} s (max {max(times):.2f} s) for {args.apis} APIs;"
        f" process RSS with them loaded: {max(rss):.0f} MiB"
    )


if __name__ == "__main__":
    main()
