"""Microbenchmark: cost of the hook pipeline per no-op native hook.

Runs ``ApiPipeline.run_request`` with 0, 1, 5 and 20 no-op ``async def`` hooks (PRE stage, the
real ``python`` driver) and prints the median time per request and per hook, the 0-hook walk
subtracted. Target: <= 15 µs per no-op native hook.

    .venv/bin/python bench/bench_pipeline.py [--rounds 30] [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

# Run from a checkout: the repository root first (an old editable install may not map
# plugin_drivers as a regular package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
from trio_gateway._exchange import Request
from trio_gateway._pipeline import Exchange, HookDefaults, build_pipeline


async def noop(ctx: object) -> None:
    return None


def _api(hooks: int) -> ApiDefinition:
    return ApiDefinition(
        api_id=f"bench-{hooks}",
        listen_path="/b/",
        target_url="http://127.0.0.1:8091/",
        middleware=MiddlewareConfig(
            driver="python",
            pre=tuple(PluginRef(name="bench_hooks:noop") for _ in range(hooks)),
        ),
    )


async def _measure(hooks: int, rounds: int, requests: int) -> float:
    """Median ns per request over ``rounds`` batches of ``requests``."""
    api = _api(hooks)
    pipeline = await build_pipeline(api, HookDefaults())
    request = Request(method="GET", path="/b/x", query="", headers=[(b"host", b"h")])
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(requests):
            await pipeline.run_request(
                request, Exchange(api=api, deadline=trio.current_time() + 30)
            )
        samples.append((time.perf_counter_ns() - start) / requests)
    await pipeline.aclose()
    return statistics.median(samples)


async def main(rounds: int, requests: int) -> None:
    module = types.ModuleType("bench_hooks")
    module.noop = noop  # type: ignore[attr-defined]
    sys.modules["bench_hooks"] = module
    base = await _measure(0, rounds, requests)
    print(f"{'hooks':>5} {'ns/request':>11} {'ns/hook':>9}")
    print(f"{0:>5} {base:>11.0f} {'-':>9}")
    for hooks in (1, 5, 20):
        per_request = await _measure(hooks, rounds, requests)
        print(f"{hooks:>5} {per_request:>11.0f} {(per_request - base) / hooks:>9.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    trio.run(main, args.rounds, args.requests)
