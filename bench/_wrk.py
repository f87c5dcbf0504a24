"""Driving one target with wrk and reading its numbers.

wrk's human output rounds latencies to two digits; a small Lua ``done`` callback prints the exact
counters and percentiles (in microseconds) as one JSON line, which is what we parse. ``--latency``
is passed as well so the saved raw output keeps wrk's own distribution table.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from _procs import LOOPBACK, pinned

_MARKER = "WRKJSON "

_DONE_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
    .. '"status_errors":%d,"timeouts":%d,'
    .. '"mean_us":%.1f,"stdev_us":%.1f,"max_us":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\\n',
    "MARKER", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
""".replace("MARKER", _MARKER)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int  # responses that were not 2xx/3xx
    timeouts: int
    mean_us: float
    stdev_us: float
    max_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        return (
            self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.status_errors
            + self.timeouts
        )

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "rps": round(self.rps, 1), "errors": self.errors}


def write_script(directory: Path) -> Path:
    path = directory / "report.lua"
    path.write_text(_DONE_SCRIPT)
    return path


def run_wrk(
    wrk: str,
    port: int,
    *,
    script: Path,
    duration: float,
    connections: int,
    threads: int,
    path: str = "/",
    headers: dict[str, str] | None = None,
    cpus: str | None = None,
    raw_log: Path | None = None,
) -> WrkResult:
    """Run wrk against http://127.0.0.1:port/path and return its exact numbers."""
    argv: list[str] = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    full = pinned(argv, cpus)
    proc = subprocess.run(
        full,
        capture_output=True,
        text=True,
        timeout=duration + 60,  # wrk stops itself; this only bounds a wedged wrk
        check=False,
    )
    if raw_log is not None:
        with raw_log.open("a") as log:
            log.write("$ " + " ".join(full) + "\n" + proc.stdout + proc.stderr + "\n")
    return parse_output(proc.stdout, proc.stderr, proc.returncode, full)


def parse_output(stdout: str, stderr: str, returncode: int, argv: Sequence[str]) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            return WrkResult(**json.loads(line[len(_MARKER) :]))
    raise RuntimeError(
        f"wrk gave no result (exit {returncode}) for {' '.join(argv)}:\n{stdout}{stderr}"
    )
