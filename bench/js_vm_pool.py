"""One VM per API or a pool: what a Tyk middleware call costs, and whether more VMs help (issue 15).

    .venv/bin/python bench/js_vm_pool.py [--calls 2000] [--threads 4]

Times ``ApiScripts.run_middleware`` for a small Pre middleware (sets a header): sequential calls
on one VM; ``--threads`` threads sharing one VM (calls serialised on the VM's thread); the same
threads each with a VM of their own (a pool); and from Trio, the two ways of reaching the VM's
thread: a Trio worker thread that waits for the VM's thread, or the VM thread's future awaited
directly (the driver's way). Also the cost of building one VM (a VM per call would pay it on
every request). Results: docs/javascript.md ("Concurrency and state").
"""

from __future__ import annotations

import argparse
import threading
import time

import trio

from plugin_drivers.javascript.request_object import GatewayRequest, to_js_request
from plugin_drivers.javascript.scripts import ApiScripts, JsSource

SCRIPT = """
var benchPre = new TykJS.TykMiddleware.NewMiddleware({});
benchPre.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Bench-Js"] = "1";
    return benchPre.ReturnData(request, {});
});
"""


class _QuietHost:
    def log(self, message: str) -> None: ...

    def rawlog(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def _vm() -> ApiScripts:
    return ApiScripts(
        api_id="bench",
        sources=[JsSource(name="bench.js", text=SCRIPT)],
        host=_QuietHost(),  # type: ignore[arg-type]
    )


REQUEST = to_js_request(
    GatewayRequest(
        method="GET",
        scheme="http",
        host="bench",
        url="/path?a=1",
        request_uri="/path?a=1",
        headers=(("Host", "bench"), ("User-Agent", "wrk"), ("Accept", "*/*")),
        body=b"",
    )
)
CONFIG = {"OrgID": "bench", "APIID": "bench"}


def calls(vm: ApiScripts, count: int) -> None:
    for _ in range(count):
        vm.run_middleware("benchPre", REQUEST, {}, CONFIG, timeout=5.0)


def threaded(vms: list[ApiScripts], count: int) -> float:
    threads = [threading.Thread(target=calls, args=(vm, count)) for vm in vms]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


async def from_trio(vm: ApiScripts, count: int) -> tuple[float, float]:
    """(µs per call through a Trio worker thread, µs per call awaiting the VM's future)."""

    def call() -> object:
        return vm.run_middleware("benchPre", REQUEST, {}, CONFIG, timeout=5.0)

    start = time.perf_counter()
    for _ in range(count):
        await trio.to_thread.run_sync(call)
    worker = (time.perf_counter() - start) / count * 1e6
    token = trio.lowlevel.current_trio_token()
    start = time.perf_counter()
    for _ in range(count):
        done = trio.Event()
        future = vm.submit(call)
        future.add_done_callback(lambda _, done=done: token.run_sync_soon(done.set))
        await done.wait()
        future.result()
    direct = (time.perf_counter() - start) / count * 1e6
    return worker, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    n, k = args.calls, args.threads

    start = time.perf_counter()
    built = [_vm() for _ in range(20)]
    build_ms = (time.perf_counter() - start) / 20 * 1000
    for vm in built:
        vm.close()

    one = _vm()
    calls(one, 200)  # warm up
    start = time.perf_counter()
    calls(one, n)
    sequential = (time.perf_counter() - start) / n * 1e6

    worker, direct = trio.run(from_trio, one, n)
    shared = threaded([one] * k, n // k) / n * 1e6
    pool = [_vm() for _ in range(k)]
    pooled = threaded(pool, n // k) / n * 1e6
    for vm in [one, *pool]:
        vm.close()
    print(f"build one VM: {build_ms:.2f} ms")
    print(f"sequential, one VM: {sequential:.0f} us per call ({1e6 / sequential:.0f} calls/s)")
    print(f"{k} threads, one shared VM: {shared:.0f} us per call ({1e6 / shared:.0f} calls/s)")
    print(f"{k} threads, one VM each: {pooled:.0f} us per call ({1e6 / pooled:.0f} calls/s)")
    print(f"from Trio via a worker thread: {worker:.0f} us per call")
    print(f"from Trio awaiting the VM thread's future: {direct:.0f} us per call")


if __name__ == "__main__":
    main()
