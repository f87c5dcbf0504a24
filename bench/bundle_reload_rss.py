"""Memory over hot reloads that switch an API between two plugin bundles.

Both bundles ship ``middleware.py`` + ``helpers.py`` (same module names); each ``helpers.py``
holds ~4 MB of data at import, so a namespace that is not released would show in the RSS at once.
The bundles are served from ``file://`` (the download path is the same code for http). A real
gateway (``serve_gateway``, in this process) reloads its APIs folder ``--reloads`` times, each time
naming the other bundle, and serves one request after each reload (the bundle's hook must run).
Prints RSS (``/proc/self/status`` VmRSS) and the number of plugin modules in ``sys.modules``
every ``--every`` reloads.

    .venv/bin/python bench/bundle_reload_rss.py            # 100 reloads
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

import trio
import trio.testing

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import write_keyless_api  # noqa: E402
from tests.helpers.bundles import make_bundle  # noqa: E402
from tests.helpers.client import fetch  # noqa: E402
from tests.helpers.upstream import start_upstream  # noqa: E402
from trio_gateway._app import serve_gateway  # noqa: E402
from trio_gateway._config.model import BundlesConfig, GatewayConfig, ListenConfig  # noqa: E402

PLUGIN = b"""
from helpers import VALUE, BALLAST

async def tag(ctx):
    ctx.request.set_header("X-Bundle", VALUE + str(len(BALLAST)))
"""


def bundle(value: str) -> bytes:
    helpers = f"VALUE = {value!r}\nBALLAST = [bytes(1024) for _ in range(4096)]\n".encode()
    return make_bundle({"middleware.py": PLUGIN, "helpers.py": helpers})


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def plugin_modules() -> int:
    return sum(1 for name in sys.modules if name.startswith("_trio_gateway_ns_"))


async def main(reloads: int, every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = tmp / "served"
        served.mkdir()
        (served / "a.zip").write_bytes(bundle("a"))
        (served / "b.zip").write_bytes(bundle("b"))
        config = GatewayConfig(
            listen=ListenConfig(port=0),
            bundles=BundlesConfig(
                enable_downloader=True,
                base_url=served.as_uri(),
                middleware_path=str(tmp / "middleware"),
            ),
        )
        apps = tmp / "apps"
        async with trio.open_nursery() as nursery:
            upstream = await start_upstream(nursery)

            def write(name: str) -> None:
                write_keyless_api(
                    apps,
                    api_id="switching",
                    listen_path="/s/",
                    target_url=upstream.url,
                    custom_middleware_bundle=name,
                )

            write("a.zip")
            gw = await nursery.start(
                lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
            )
            assert gw.control is not None
            print("reloads  rss_kib  plugin_modules  header")
            for i in range(reloads + 1):
                if i:
                    write("b.zip" if i % 2 else "a.zip")
                    result = await gw.control.reloader.reload()
                    assert result.ok, result.message
                response = await fetch(gw.address, "GET", "/s/x")
                headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
                header = headers.get("x-bundle")
                if i % every == 0:
                    # Let the previous snapshot's close task run, then collect.
                    await trio.testing.wait_all_tasks_blocked()
                    gc.collect()
                    print(f"{i:7d}  {rss_kib():7d}  {plugin_modules():14d}  {header}")
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    trio.run(main, args.reloads, args.every)
