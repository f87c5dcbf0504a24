"""Where a JavaScript Pre hook's time goes, per request (issue 15; not a throughput figure).

    .venv/bin/python bench/js_call_cost.py [--requests 2000] [--script header|globals]

Serves, in this process, one keyless API without plugins and one with a JS Pre hook that sets a
header, sends ``--requests`` sequential keep-alive requests to each, and prints the mean latency
of each plus the mean time of each phase of the driver's call (building the request object, the
step on the VM's thread, decoding and applying the result, and the wait for the VM's thread from
Trio). ``--script globals`` uses a middleware whose file also keeps state in globals (a counter,
an object of 20 fields, an array of 100 numbers, which it changes on every call): every call
starts by putting them back as loaded (builtins.js), so this shows what that costs. Results:
docs/javascript.md ("Concurrency and state") and docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from _js_gateway import HEADER_SCRIPT, start_plain_and_js

import plugin_drivers.javascript.driver as driver
import plugin_drivers.javascript.scripts as scripts

SCRIPT = HEADER_SCRIPT

GLOBALS_SCRIPT = """
var calls = 0;
var table = {};
for (var i = 0; i < 20; i++) { table["k" + i] = i; }
var recent = [];
for (var j = 0; j < 100; j++) { recent.push(j); }
var benchPre = new TykJS.TykMiddleware.NewMiddleware({});
benchPre.NewProcessRequest(function (request, session, config) {
    calls++;
    table.last = request.URL;
    recent.push(calls);
    request.SetHeaders["X-Bench-Js"] = String(calls);
    return benchPre.ReturnData(request, {});
});
"""

TOTALS: dict[str, float] = collections.defaultdict(float)
COUNTS: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: str) -> None:
    """Wrap ``owner.name`` (a function or coroutine function) to add its time to ``label``."""
    original: Callable[..., Any] = getattr(owner, name)
    if original.__code__.co_flags & 0x80:  # a coroutine function

        @functools.wraps(original)
        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                TOTALS[label] += time.perf_counter() - start
                COUNTS[label] += 1

        setattr(owner, name, wrapper_async)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TOTALS[label] += time.perf_counter() - start
            COUNTS[label] += 1

    setattr(owner, name, wrapper)


async def measure(count: int, source: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            gw = await start_plain_and_js(nursery, Path(tmp), source)
            stream = await trio.open_tcp_stream(*gw.address)
            for target in ("/plain/", "/js/"):
                request = f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                start = time.perf_counter()
                for _ in range(count):
                    await stream.send_all(request)
                    data = b""
                    while not data.endswith(b"ok"):
                        data += await stream.receive_some()
                mean = (time.perf_counter() - start) / count * 1e6
                print(f"{target:8s} {mean:7.0f} us per request (sequential, keep-alive)")
            await stream.aclose()
            gw.shutdown()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--script", choices=["header", "globals"], default="header")
    args = parser.parse_args()
    timed(driver.JsDriver, "call", "the driver's whole call")
    timed(driver, "to_js_request_parts", "request object")
    timed(driver.JsDriver, "run_on_vm", "awaiting the VM thread (incl. the step)")
    timed(scripts.ApiScripts, "step", "the step on the VM thread")
    timed(driver, "parse_js_result", "decoding the result")
    timed(driver, "_apply_to_request", "applying it")
    trio.run(measure, args.requests, GLOBALS_SCRIPT if args.script == "globals" else SCRIPT)
    for label, total in TOTALS.items():
        print(f"{label:45s} {total / COUNTS[label] * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
