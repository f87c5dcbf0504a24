"""Sync hooks under concurrency: N concurrent requests through examples/plugins/rewrite_response.py
(a plain ``def`` Response hook, run in worker threads), per thread limit.

    .venv/bin/python bench/reliability_sync_hooks.py --concurrency 200 --limits 16 32 64
    .venv/bin/python bench/reliability_sync_hooks.py --src /tmp/old   # a checkout without the fix

Each round: ``--concurrency`` connections each send ``--requests`` requests one after another
(keep-alive), all at once. Prints per limit: answered 200, other statuses, client errors, the
wall time and the p50/p99 latency. ``--limits default`` uses the gateway's default (no setting;
the only choice for an old checkout, whose config has no ``thread_limit``).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from pathlib import Path

import trio
from _reliability import (
    ROOT,
    Connection,
    drain,
    percentile,
    serve_json_upstream,
    start_gateway,
    stop,
    write_api,
)


async def one_round(
    src: Path, limit: str, concurrency: int, requests: int, hook_timeout: float
) -> str:
    async with trio.open_nursery() as nursery:
        upstream_port = await nursery.start(serve_json_upstream)
        with tempfile.TemporaryDirectory() as tmp:
            apps = Path(tmp) / "apps"
            plugins = Path(tmp) / "plugins"
            plugins.mkdir()
            shutil.copy(ROOT / "examples" / "plugins" / "rewrite_response.py", plugins)
            write_api(
                apps,
                "rewrite",
                f"http://127.0.0.1:{upstream_port}/",
                {
                    "driver": "python",
                    "response": [
                        {
                            "name": "wrap_response",
                            "path": "../plugins/rewrite_response.py",
                            "timeout": hook_timeout,
                        }
                    ],
                },
            )
            env = {} if limit == "default" else {"TRIO_GATEWAY_HOOKS_THREAD_LIMIT": limit}
            gateway = await start_gateway(src, ["--apps", str(apps)], env=env)
            stderr = bytearray()
            nursery.start_soon(drain, gateway.process.stderr, stderr)
            statuses: collections.Counter[int] = collections.Counter()
            errors: collections.Counter[str] = collections.Counter()
            latencies: list[float] = []
            ready = trio.Event()

            async def client() -> None:
                try:
                    conn = await Connection.open(gateway.address)
                except OSError as exc:
                    errors[type(exc).__name__] += 1
                    return
                try:
                    await ready.wait()
                    for _ in range(requests):
                        start = time.monotonic()
                        statuses[await conn.get("/rewrite/items")] += 1
                        latencies.append(time.monotonic() - start)
                except (OSError, ConnectionError, trio.BrokenResourceError) as exc:
                    errors[type(exc).__name__] += 1
                finally:
                    await conn.aclose()

            try:
                with trio.fail_after(300):
                    async with trio.open_nursery() as clients:
                        for _ in range(concurrency):
                            clients.start_soon(client)
                        await trio.sleep(0.5)  # let every connection open before the burst
                        started = time.monotonic()
                        ready.set()
                wall = time.monotonic() - started
            finally:
                await stop(gateway.process)
        nursery.cancel_scope.cancel()
    total = concurrency * requests
    return (
        f"thread_limit={limit:>7}  {statuses[200]:>5}/{total} answered 200  "
        f"other={dict(sorted((k, v) for k, v in statuses.items() if k != 200))}  "
        f"client_errors={dict(errors)}  wall={wall:.2f}s  "
        f"p50={percentile(latencies, 0.5) * 1000:.0f}ms  "
        f"p99={percentile(latencies, 0.99) * 1000:.0f}ms  "
        f"stderr={len(stderr.splitlines())} lines"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src", type=Path, default=ROOT, help="checkout to run (default: this one)"
    )
    parser.add_argument("--limits", nargs="+", default=["16", "32", "64"])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5, help="requests per connection")
    parser.add_argument("--hook-timeout", type=float, default=2.0, help="as in the example API")
    args = parser.parse_args()
    for limit in args.limits:
        print(
            trio.run(
                one_round, args.src, limit, args.concurrency, args.requests, args.hook_timeout
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
