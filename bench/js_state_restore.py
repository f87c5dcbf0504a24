"""What putting the globals back before every JavaScript call costs (issue 15, per-request state).

    .venv/bin/python bench/js_state_restore.py [--calls 3000] [--rounds 7]

Calls a middleware straight on its API's VM (``ApiScripts.run_middleware``, no HTTP), with the
per-call restore of the loaded state (what the gateway does) and without it (the VM built without
its snapshot, as before the restore existed), alternating the two ``--rounds`` times, and prints
the best and the median microseconds per call of each. Two scripts: ``header`` (the Pre hook of
bench/js_call_cost.py, no state of its own) and ``globals`` (the same plus a counter, an object of
20 fields and an array of 100 numbers it changes on every call). Last, what the alternative
would cost per call: a fresh engine context (``JsVm``, its own runtime) and a whole API VM
(library, Underscore trap, the script, snapshot). Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from js_call_cost import GLOBALS_SCRIPT, SCRIPT

from plugin_drivers.javascript.engine import JsVm
from plugin_drivers.javascript.scripts import ApiScripts, JsSource


class QuietHost:
    def log(self, message: str) -> None: ...
    def rawlog(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def make_http_request(self, request_json: str, *, timeout: float) -> str | None:
        return None

    def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None:
        return None

    def set_key_data(
        self, key: str, session_json: str, suppress_reset: str, *, timeout: float
    ) -> None: ...
    def batch_request(self, request_json: str, *, timeout: float) -> str | None:
        return None


def build(source: str, *, restore: bool) -> ApiScripts:
    original = JsVm.evaluate

    def evaluate(self: JsVm, text: str, *, filename: str, timeout: float) -> None:
        if restore or filename != "<snapshot>":
            original(self, text, filename=filename, timeout=timeout)

    JsVm.evaluate = evaluate  # type: ignore[method-assign]
    try:
        return ApiScripts(
            api_id="bench", sources=[JsSource(name="bench.js", text=source)], host=QuietHost()
        )
    finally:
        JsVm.evaluate = original  # type: ignore[method-assign]


def per_call(api: ApiScripts, calls: int) -> float:
    request: dict[str, Any] = {
        "URL": "/bench/",
        "Headers": {"Host": ["bench"]},
        "SetHeaders": {},
        "Body": "",
    }
    start = time.perf_counter()
    for _ in range(calls):
        api.run_middleware("benchPre", request, {}, {}, timeout=1.0)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for name, source in (("header", SCRIPT), ("globals", GLOBALS_SCRIPT)):
        apis = {"restore": build(source, restore=True), "no restore": build(source, restore=False)}
        times: dict[str, list[float]] = {label: [] for label in apis}
        for _ in range(args.rounds):
            for label, api in apis.items():
                times[label].append(per_call(api, args.calls))
        for label, values in times.items():
            print(
                f"{name:8s} {label:11s} best {min(values):6.1f} us"
                f"  median {statistics.median(values):6.1f} us per call"
            )
        for api in apis.values():
            api.close()
    fresh: dict[str, list[float]] = {"a bare engine context": [], "a whole API VM": []}
    for _ in range(20):
        start = time.perf_counter()
        JsVm(memory_limit=64 << 20, name="bench").close()
        fresh["a bare engine context"].append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        build(SCRIPT, restore=True).close()
        fresh["a whole API VM"].append((time.perf_counter() - start) * 1e6)
    for label, values in fresh.items():
        print(f"fresh per call: {label:22s} median {statistics.median(values):7.0f} us")


if __name__ == "__main__":
    main()
