"""Requests dropped per SIGTERM at full load (issue 10, item 7).

Each round starts a gateway (keyless API to an nginx upstream), saturates it with wrk
(``--wrk-connections``) plus ``--probes`` instrumented keep-alive connections whose every request
is classified, sends SIGTERM after ``--warmup`` seconds, and waits for the gateway to exit. A
*drop* is a probe request that got a reset, a truncated response, or a close without an answer
although it was sent before the signal. Closes without an answer for requests sent after the
signal are clean (a client retries them) and counted apart. wrk's own read errors are shown for
reference only: wrk cannot tell a clean close from a reset.

    .venv/bin/python bench/reliability_shutdown.py --rounds 5
    .venv/bin/python bench/reliability_shutdown.py --rounds 5 --src /tmp/old   # another checkout
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
from _under_load import KeepAliveLoad, argument_parser, start_gateway, start_upstream, write_api


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before SIGTERM")
    parser.add_argument("--probes", type=int, default=32, help="instrumented connections")
    parser.add_argument("--wrk-connections", type=int, default=64)
    return parser.parse_args()


def one_round(
    procs: Processes, workdir: Path, args: argparse.Namespace, n: int
) -> dict[str, object]:
    apps = workdir / "apps"
    gateway, port = start_gateway(procs, f"gateway-{n}", apps, source=args.src)
    wrk = shutil.which("wrk") or "wrk"
    script = _wrk.write_script(workdir)
    wrk_proc = subprocess.Popen(
        [
            wrk,
            "-t2",
            f"-c{args.wrk_connections}",
            "-d60s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/api/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    load = KeepAliveLoad(("127.0.0.1", port), "/api/", connections=args.probes)

    async def drive() -> float:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run)
            await trio.sleep(args.warmup)
            answered_before = load.answered
            load.mark_signal()
            os.kill(gateway.popen.pid, signal.SIGTERM)
        return answered_before / args.warmup

    try:
        probe_rate = trio.run(drive)
        exit_code = gateway.popen.wait(timeout=60)
    finally:
        wrk_proc.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
        out, err = wrk_proc.communicate(timeout=30)
    try:
        wrk_result = _wrk.parse_output(out, err, wrk_proc.returncode, ["wrk"]).as_json()
    except RuntimeError:
        wrk_result = {}
    log = gateway.log_path.read_text(errors="replace")
    return {
        "round": n,
        "probe_requests_per_s": round(probe_rate),
        "wrk_requests_per_s": wrk_result.get("rps"),
        "probe_answered": load.answered,
        "statuses": dict(load.statuses),
        "drops": len(load.drops),
        "drop_kinds": sorted({d.kind for d in load.drops}),
        "clean_closes_after_signal": load.closed_unanswered,
        "wrk_read_errors": wrk_result.get("read_errors"),
        "gateway_exit": exit_code,
        "error_lines": sum(" ERROR " in line for line in log.splitlines()),
    }


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-shutdown-"))
    procs = Processes(log_dir=workdir)
    results = []
    with terminate_on_sigterm():
        try:
            upstream = start_upstream(procs, workdir)
            write_api(workdir / "apps", upstream)
            for n in range(1, args.rounds + 1):
                result = one_round(procs, workdir, args, n)
                results.append(result)
                print(json.dumps(result), flush=True)
                time.sleep(0.5)  # let the port's TIME_WAIT noise settle between rounds
        finally:
            procs.stop_all()
    drops = [r["drops"] for r in results]
    print(f"drops per SIGTERM: {drops} (logs in {workdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
