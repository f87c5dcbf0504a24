"""Microbenchmark: what one Tyk-style Python hook call costs the gateway, part by part.

The call of ``bench/variants.py``'s ``tyk-python-pre`` (one ``@Hook`` Pre hook setting a header)
on a curl-like GET, in the order the python driver does it, in µs of CPU time
(``time.process_time``) per call, medians over ``--rounds`` rounds of ``--calls`` calls:

* ``build (generated classes)``: ``wire.build_object``, the Object filled field by field (what
  the driver did first);
* ``build (encode + parse)``: ``object_encoder.encode_object`` then ``Object.FromString``
  (what it does now: the bytes are written in Python, parsed in C);
* ``dispatch``: Tyk's call on the Object (request wrapper, ``add_header``, the return check);
* ``apply``: ``coprocess.hook_call.apply_reply`` of the edited Object to the request;
* ``hop (to_thread)``: an empty function through ``trio.to_thread.run_sync`` with a limiter,
  abandon on cancel (the native sync hooks' hop before);
* ``hop (start_thread_soon)``: the same through ``threads.run_in_worker_thread`` (now);
* ``driver.call``: the whole ``PythonDriver.call`` for the hook (build + hop + dispatch + apply).

    .venv/bin/python bench/bench_tyk_python.py [--rounds 7 --calls 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLUGIN = """
from tyk.decorators import *


@Hook
def SetHeader(request, session, spec):
    request.add_header("X-Tyk-Python", "pre")
    return request, session
"""

HEADERS = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"curl/8.5.0"), (b"accept", b"*/*")]


async def measure(rounds: int, calls: int) -> dict[str, float]:
    from plugin_drivers.coprocess import object_encoder, wire
    from plugin_drivers.coprocess.hook_call import apply_reply
    from plugin_drivers.coprocess.proto import coprocess_object_pb2 as object_pb
    from plugin_drivers.python import PythonDriver, tyk_style
    from plugin_drivers.threads import run_in_worker_thread
    from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
    from trio_gateway._exchange import Request
    from trio_gateway.hooks import ApiInfo, HookContext, Stage

    folder = Path(tempfile.mkdtemp(prefix="bench-tyk-"))
    (folder / "middleware.py").write_text(PLUGIN)
    plugin = PluginRef(name="SetHeader", path=str(folder))
    api = ApiDefinition(
        api_id="bench",
        listen_path="/",
        target_url="http://127.0.0.1:8081/",
        middleware=MiddlewareConfig(driver="python", pre=(plugin,)),
    )
    from trio_gateway._pipeline import HookDefaults
    from trio_gateway._pipeline.build import build_chain

    (hook,) = build_chain(api, HookDefaults()).hooks
    driver = PythonDriver()
    await driver.load(api, [hook])
    info = ApiInfo.from_api(api)
    loaded = driver._loaded[hook]
    spec = tyk_style.spec_map(info, "")

    def request() -> Request:
        return Request(method="GET", path="/", query="", headers=list(HEADERS))

    def context() -> HookContext:
        return HookContext._create(stage=Stage.PRE, api=info, hook=hook, request=request())

    sample = object_pb.Object.FromString(
        object_encoder.encode_object(
            stage=Stage.PRE, hook_name=hook.name, api=info, request=request(), body=b"", spec=b""
        )
    )

    def build_classes() -> None:
        wire.build_object(
            stage=Stage.PRE, hook_name=hook.name, api=info, request=request(), body=b""
        )

    def build_bytes() -> None:
        object_pb.Object.FromString(
            object_encoder.encode_object(
                stage=Stage.PRE,
                hook_name=hook.name,
                api=info,
                request=request(),
                body=b"",
                spec=b"",
            )
        )

    def dispatch() -> None:
        obj = object_pb.Object()
        obj.CopyFrom(sample)
        tyk_style.dispatch(loaded.fn, loaded.tyk_arity, obj, dict(spec), hook.label)

    edited = object_pb.Object()
    edited.CopyFrom(sample)
    tyk_style.dispatch(loaded.fn, loaded.tyk_arity, edited, dict(spec), hook.label)

    def apply() -> None:
        apply_reply(edited, context())

    limiter = trio.CapacityLimiter(16)

    def nothing() -> None:
        return None

    async def hop_to_thread() -> None:
        await trio.to_thread.run_sync(nothing, limiter=limiter, abandon_on_cancel=True)

    async def hop_start_thread_soon() -> None:
        await run_in_worker_thread(nothing, limiter, nothing)

    async def driver_call() -> None:
        await driver.call(hook, context())

    sync_parts: dict[str, Callable[[], None]] = {
        "build (generated classes)": build_classes,
        "build (encode + parse)": build_bytes,
        "dispatch": dispatch,
        "apply": apply,
    }
    async_parts: dict[str, Callable[[], Awaitable[None]]] = {
        "hop (to_thread)": hop_to_thread,
        "hop (start_thread_soon)": hop_start_thread_soon,
        "driver.call": driver_call,
    }
    samples: dict[str, list[float]] = {name: [] for name in [*sync_parts, *async_parts]}
    for _ in range(rounds):
        for name, fn in sync_parts.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            samples[name].append((time.process_time() - start) / calls * 1e6)
        for name, afn in async_parts.items():
            start = time.process_time()
            for _ in range(calls):
                await afn()
            samples[name].append((time.process_time() - start) / calls * 1e6)
    await driver.aclose()
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = trio.run(measure, args.rounds, args.calls)
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        print(f"{name:28} {value:8.1f} µs")


if __name__ == "__main__":
    main()
