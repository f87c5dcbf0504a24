"""Hot reloads under load: every request answered (issue 10, "held already" figure).

One gateway (keyless API to an nginx upstream) under wrk (``--wrk-connections``) plus
``--probes`` instrumented keep-alive connections; ``--reloads`` SIGHUPs, each sent once the
previous reload is logged as done. A failure is any probe request that was not answered 200
(a reset, a truncated response, a close without an answer, another status) and any wrk error
(connect, read, write, timeout, non-2xx/3xx status).

    .venv/bin/python bench/reliability_reload.py --reloads 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import _wrk
import trio
from _procs import Processes, terminate_on_sigterm
from _under_load import (
    KeepAliveLoad,
    argument_parser,
    count_in_log,
    start_gateway,
    start_upstream,
    write_api,
)

#: The gateway's log line for a finished reload.
RELOADED = "reload: serving"


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--probes", type=int, default=32, help="instrumented connections")
    parser.add_argument("--wrk-connections", type=int, default=32)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    procs = Processes(log_dir=workdir)
    with terminate_on_sigterm():
        try:
            upstream = start_upstream(procs, workdir)
            write_api(workdir / "apps", upstream)
            gateway, port = start_gateway(procs, "gateway", workdir / "apps", source=args.src)
            wrk = shutil.which("wrk") or "wrk"
            wrk_proc = subprocess.Popen(
                [
                    wrk,
                    "-t1",
                    f"-c{args.wrk_connections}",
                    "-d600s",
                    "-s",
                    str(_wrk.write_script(workdir)),
                    f"http://127.0.0.1:{port}/api/",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            load = KeepAliveLoad(("127.0.0.1", port), "/api/", connections=args.probes)

            def reload_many() -> float:
                started = time.perf_counter()
                for n in range(1, args.reloads + 1):
                    os.kill(gateway.popen.pid, signal.SIGHUP)
                    deadline = time.monotonic() + 30
                    while count_in_log(gateway, RELOADED) < n:  # polling a child's log
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"reload {n} not logged:\n{gateway.log_tail()}")
                        time.sleep(0.002)
                return time.perf_counter() - started

            async def drive() -> float:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(load.run)
                    await load.wait_for_answers(1000)
                    took = await trio.to_thread.run_sync(reload_many)
                    nursery.cancel_scope.cancel()
                return took

            try:
                took = trio.run(drive)
            finally:
                wrk_proc.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
                out, err = wrk_proc.communicate(timeout=30)
            wrk_result = _wrk.parse_output(out, err, wrk_proc.returncode, ["wrk"])
            log = gateway.log_path.read_text(errors="replace")
        finally:
            procs.stop_all()
    not_ok = sum(n for status, n in load.statuses.items() if status != 200)
    result = {
        "reloads": count_in_log(gateway, RELOADED),
        "seconds": round(took, 1),
        "probe_answered": load.answered,
        "probe_not_200": not_ok,
        "probe_drops": len(load.drops),
        "probe_closed_unanswered": load.closed_unanswered,
        "wrk_requests": wrk_result.requests,
        "wrk_errors": wrk_result.errors,
        "failed_reloads": log.count("reload failed"),
        "error_lines": sum(" ERROR " in line for line in log.splitlines()),
    }
    print(json.dumps(result))
    failures = not_ok + len(load.drops) + load.closed_unanswered + wrk_result.errors
    print(
        f"{result['reloads']} reloads in {took:.1f} s under load: {failures} failed requests "
        f"of {load.answered + wrk_result.requests} (logs in {workdir})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
