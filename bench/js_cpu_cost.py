"""CPU time a JavaScript Pre hook adds to a request, under concurrency (issue 15; a tool, not a
throughput figure).

    taskset -c 1 .venv/bin/python bench/js_cpu_cost.py [--seconds 3] [--connections 16] [--rounds 3]

Serves, in this process, one keyless API without plugins (``/plain/``) and one with a JS Pre hook
that sets a header (``/js/``), and drives each with ``--connections`` keep-alive clients in the
same process for ``--seconds``. Prints the process CPU time per request (all threads: clients,
gateway, upstream, the VM thread) for each, and the difference: what the hook costs. Pin it to one
core (taskset) so that the VM thread and the event loop share it, as in bench/proxy.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import tempfile
from pathlib import Path

import trio
from _js_gateway import HEADER_SCRIPT, start_plain_and_js

SCRIPT = HEADER_SCRIPT


def _thread_switches() -> dict[str, tuple[str, int, int]]:
    """Each thread of this process: its name and its voluntary and involuntary context switches."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            out[task.name] = (
                fields["Name"].strip(),
                int(fields["voluntary_ctxt_switches"]),
                int(fields["nonvoluntary_ctxt_switches"]),
            )
        except (OSError, KeyError, ValueError):
            continue
    return out


async def drive(
    address: tuple[str, int], target: str, connections: int, seconds: float, verbose: bool = False
) -> Usage:
    """CPU use per request over ``seconds`` of ``connections`` clients sending to ``target``."""
    request = f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    done = 0
    stop = False

    async def client() -> None:
        nonlocal done
        stream = await trio.open_tcp_stream(*address)
        try:
            while not stop:
                await stream.send_all(request)
                data = b""
                while not data.endswith(b"ok"):
                    chunk = await stream.receive_some()
                    if not chunk:
                        raise RuntimeError("connection closed")
                    data += chunk
                done += 1
        finally:
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(client)
        await trio.sleep(0.5)  # warm-up
        before, start_done = resource.getrusage(resource.RUSAGE_SELF), done
        threads_before = _thread_switches()
        await trio.sleep(seconds)
        after, count = resource.getrusage(resource.RUSAGE_SELF), done - start_done
        threads_after = _thread_switches()
        if verbose:
            for tid, (name, vol, invol) in sorted(threads_after.items()):
                _, vol0, invol0 = threads_before.get(tid, (name, 0, 0))
                if vol - vol0 + invol - invol0 > count // 100:
                    print(
                        f"    {target} thread {name!r}: {(vol - vol0) / count:.2f} voluntary,"
                        f" {(invol - invol0) / count:.2f} involuntary switches/request"
                    )
        stop = True
    count = max(count, 1)
    return Usage(
        user=(after.ru_utime - before.ru_utime) / count,
        system=(after.ru_stime - before.ru_stime) / count,
        switches=(after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw) / count,
    )


@dataclasses.dataclass(frozen=True)
class Usage:
    """Per request: CPU seconds in user space and in the kernel, context switches."""

    user: float
    system: float
    switches: float

    @property
    def cpu(self) -> float:
        return self.user + self.system


async def measure(
    seconds: float, connections: int, rounds: int, only_js: bool, verbose: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            gw = await start_plain_and_js(nursery, Path(tmp), SCRIPT)
            results: dict[str, list[Usage]] = {"/plain/": [], "/js/": []}
            if only_js:
                del results["/plain/"]
            for _ in range(rounds):
                for target in results:
                    results[target].append(
                        await drive(gw.address, target, connections, seconds, verbose)
                    )
            medians = {}
            for target, usages in results.items():
                median = Usage(
                    user=statistics.median(u.user for u in usages),
                    system=statistics.median(u.system for u in usages),
                    switches=statistics.median(u.switches for u in usages),
                )
                medians[target] = median
                print(
                    f"{target:8s} CPU {median.cpu * 1e6:6.1f} us/request (user"
                    f" {median.user * 1e6:6.1f}, kernel {median.system * 1e6:6.1f}),"
                    f" {median.switches:5.2f} context switches/request"
                )
            if not only_js:
                plain_us, js_us = medians["/plain/"].cpu * 1e6, medians["/js/"].cpu * 1e6
                print(f"the hook adds {js_us - plain_us:6.1f} us; plain/js {plain_us / js_us:.3f}")
            gw.shutdown()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only-js", action="store_true", help="drive /js/ only (for a profiler)")
    parser.add_argument("--threads", action="store_true", help="context switches per thread")
    args = parser.parse_args()
    trio.run(measure, args.seconds, args.connections, args.rounds, args.only_js, args.threads)


if __name__ == "__main__":
    main()
