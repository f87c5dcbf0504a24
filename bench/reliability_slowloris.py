"""Normal clients' latency while slowloris connections are cut in waves (issue 10, item 8).

One gateway (keyless API to an nginx upstream, ``header_read_timeout`` = ``--header-timeout``).
Rounds alternate: wrk alone (baseline), then wrk while ``--slow`` connections each send half a
request head and stall; the gateway cuts them all at about the same moment (408), they reconnect
at once, and so on, a wave every ``--header-timeout`` seconds. Reported: wrk's p50/p99 in both
conditions (medians over rounds) and the p99 ratio (target < 3).

    .venv/bin/python bench/reliability_slowloris.py --rounds 3
    .venv/bin/python bench/reliability_slowloris.py --rounds 3 --src /tmp/old   # another checkout
"""

from __future__ import annotations

import argparse
import json
import selectors
import shutil
import socket
import statistics
import tempfile
import threading
from pathlib import Path

import _wrk
from _procs import Processes, terminate_on_sigterm
from _under_load import LOOPBACK, argument_parser, start_gateway, start_upstream, write_api

PARTIAL_HEAD = b"GET /api/ HTTP/1.1\r\nHost: slow\r\nX-Slow: "


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", type=int, default=1000, help="slowloris connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--header-timeout", type=float, default=2.0)
    return parser.parse_args()


class Slowloris:
    """Keeps ``count`` connections stalled mid-head, reconnecting each as soon as it is cut."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.cuts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.create_connection((LOOPBACK, self.port), timeout=5)
        sock.sendall(PARTIAL_HEAD)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for _ in range(self.count):
                self._open(selector)
            while not self._stop.is_set():
                for key, _ in selector.select(0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        continue  # the 408; the close follows
                    selector.unregister(sock)
                    sock.close()
                    self.cuts += 1
                    self._open(selector)
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-slowloris-"))
    procs = Processes(log_dir=workdir)
    wrk = shutil.which("wrk") or "wrk"
    script = _wrk.write_script(workdir)
    config = workdir / "gateway.toml"
    config.write_text(f"[limits]\nheader_read_timeout = {args.header_timeout}\n")
    base: list[_wrk.WrkResult] = []
    slow: list[_wrk.WrkResult] = []
    cuts: list[int] = []
    with terminate_on_sigterm():
        try:
            upstream = start_upstream(procs, workdir)
            write_api(workdir / "apps", upstream)
            gateway, port = start_gateway(
                procs, "gateway", workdir / "apps", source=args.src, config=config
            )

            def run_wrk() -> _wrk.WrkResult:
                return _wrk.run_wrk(
                    wrk,
                    port,
                    script=script,
                    duration=args.duration,
                    connections=args.connections,
                    threads=2,
                    path="/api/",
                    raw_log=workdir / "wrk.log",
                )

            for n in range(1, args.rounds + 1):
                base.append(run_wrk())
                with Slowloris(port, args.slow) as loris:
                    slow.append(run_wrk())
                cuts.append(loris.cuts)
                print(
                    json.dumps(
                        {
                            "round": n,
                            "baseline_p99_ms": base[-1].p99_us / 1000,
                            "slowloris_p99_ms": slow[-1].p99_us / 1000,
                            "baseline_rps": round(base[-1].rps),
                            "slowloris_rps": round(slow[-1].rps),
                            "slow_connections_cut": loris.cuts,
                            "wrk_errors": [base[-1].errors, slow[-1].errors],
                        }
                    ),
                    flush=True,
                )
            log = gateway.log_path.read_text(errors="replace")
        finally:
            procs.stop_all()
    b99 = statistics.median(r.p99_us for r in base) / 1000
    s99 = statistics.median(r.p99_us for r in slow) / 1000
    b50 = statistics.median(r.p50_us for r in base) / 1000
    s50 = statistics.median(r.p50_us for r in slow) / 1000
    print(
        f"median p50 {b50:.2f} ms -> {s50:.2f} ms; p99 {b99:.2f} ms -> {s99:.2f} ms "
        f"({s99 / b99:.2f}x baseline); slow connections cut per run {cuts}; "
        f"ERROR lines in the gateway log: {sum(' ERROR ' in line for line in log.splitlines())}"
        f" (logs in {workdir})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
