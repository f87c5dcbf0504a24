"""Concurrency of Tyk-style Python hooks: N requests whose Pre hook sleeps, at once.

Tyk serialises every Python call behind one global lock, so N hooks that each sleep S seconds
take N × S there. Here each call runs in its own worker thread (under the plugin's
``thread_limit``, 16 by default): a real gateway (in-process, real sockets) with one
``@Hook`` Pre hook doing ``time.sleep(S)``, timed for one request, then for N concurrent ones
(each on its own connection). Prints the wall times and their ratio (the issue's target: N = 8,
S = 0.1 s, ratio < 2).

    .venv/bin/python bench/tyk_python_concurrency.py [--concurrent 8 --sleep 0.1 --repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import write_keyless_api
from tests.helpers.client import fetch
from tests.helpers.upstream import start_upstream
from trio_gateway._app import serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig

PLUGIN = """
import time
from tyk.decorators import *

@Hook
def Sleep(request, session, spec):
    time.sleep({sleep!r})
    return request, session
"""


async def main(concurrent: int, sleep: float, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tyk-concurrency-"))
    (folder / "plugin" / "middleware.py").parent.mkdir()
    (folder / "plugin" / "middleware.py").write_text(PLUGIN.format(sleep=sleep))
    async with trio.open_nursery() as nursery:
        upstream = await start_upstream(nursery)
        mw = {"driver": "python", "pre": [{"name": "Sleep", "path": str(folder / "plugin")}]}
        write_keyless_api(
            folder / "apps",
            api_id="sleep",
            listen_path="/",
            target_url=upstream.url,
            custom_middleware=mw,
        )
        config = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0))
        gw = await nursery.start(
            lambda task_status: serve_gateway(
                config, apps_dir=folder / "apps", task_status=task_status
            )
        )

        async def one() -> None:
            response = await fetch(gw.address, "GET", "/x")
            assert response.status == 200, response.status

        await one()  # warm up: imports, the thread cache
        singles, groups = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            await one()
            singles.append(time.perf_counter() - start)
            start = time.perf_counter()
            async with trio.open_nursery() as group:
                for _ in range(concurrent):
                    group.start_soon(one)
            groups.append(time.perf_counter() - start)
        gw.shutdown()
        nursery.cancel_scope.cancel()
    single, group = statistics.median(singles), statistics.median(groups)
    print(f"1 request:            {single * 1000:7.1f} ms (median of {repeat})")
    print(f"{concurrent} concurrent requests: {group * 1000:7.1f} ms (median of {repeat})")
    print(f"ratio: {group / single:.2f} (serialised, as behind Tyk's lock: {concurrent:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    trio.run(main, args.concurrent, args.sleep, args.repeat)
