"""Microbenchmark: the gateway's request walk, routing to response, with the upstream stubbed out.

``Gateway.handle`` on three APIs: keyless without plugins, keyless with a no-op Pre and a no-op
Post native hook, and one no-op Response hook. The upstream call (``forward``) answers at once,
so what is measured is the walk the gateway owns: routing, the deadline scope, the hooks, the
upstream step and its error mapping. Prints the median µs of CPU time (``time.process_time``:
steadier than wall time on a shared machine) per request of each. Runs against any
checkout (it patches ``forward`` wherever the walk imports it from), so two commits compare:

    .venv/bin/python bench/bench_walk.py [--rounds 15] [--requests 2000] [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import importlib
import ssl
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any


async def noop(ctx: object) -> None:
    return None


async def main(rounds: int, requests: int) -> None:

    from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
    from trio_gateway._config.model import GatewayConfig
    from trio_gateway._exchange import Request, Response
    from trio_gateway._gateway import Gateway, build_snapshot
    from trio_gateway._upstream.connection import UpstreamPool

    async def forward(request: Any, up: Any, pool: Any, *, body_timeout: float) -> Response:
        return Response(status=200, headers=[(b"content-length", b"0")], body_bytes=b"")

    for name in ("trio_gateway._gateway", "trio_gateway._pipeline.walk"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "forward"):
            module.forward = forward  # type: ignore[attr-defined]

    hook = PluginRef(name="bench_walk_hooks:noop")
    apis = [
        ApiDefinition(api_id="plain", listen_path="/plain/", target_url="http://127.0.0.1:1/"),
        ApiDefinition(
            api_id="prepost",
            listen_path="/prepost/",
            target_url="http://127.0.0.1:1/",
            middleware=MiddlewareConfig(driver="python", pre=(hook,), post=(hook,)),
        ),
        ApiDefinition(
            api_id="response",
            listen_path="/response/",
            target_url="http://127.0.0.1:1/",
            middleware=MiddlewareConfig(driver="python", response=(hook,)),
        ),
    ]
    config = GatewayConfig()
    snapshot = await build_snapshot(apis, config)
    pool = UpstreamPool(ssl.create_default_context())
    gateway = Gateway(config=config, snapshot=snapshot, pool=pool)
    print(f"{'api':>9} {'µs/request':>11}")
    for api in apis:
        path = f"{api.listen_path}x"
        samples = []
        for _ in range(rounds):
            start = time.process_time_ns()
            for _ in range(requests):
                request = Request(method="GET", path=path, query="", headers=[(b"host", b"h")])
                response = await gateway.handle(request)
                assert response.status == 200, response.status
            samples.append((time.process_time_ns() - start) / requests / 1000)
        print(f"{api.api_id:>9} {statistics.median(samples):>11.2f}")
    await snapshot.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    hooks_module = types.ModuleType("bench_walk_hooks")
    hooks_module.noop = noop  # type: ignore[attr-defined]
    sys.modules["bench_walk_hooks"] = hooks_module
    import trio

    trio.run(main, args.rounds, args.requests)
