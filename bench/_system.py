"""The machine side of the benchmark: tools, CPU placement, and what to record about the run."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_APT_PACKAGES = {"nginx": "nginx", "wrk": "wrk", "taskset": "util-linux"}


def find_tool(name: str) -> str | None:
    # nginx lives in /usr/sbin, which is not on a normal user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def ensure_tools(*, install: bool) -> dict[str, str]:
    """Paths of nginx, wrk and taskset; installs the missing ones with apt-get when root."""
    missing = [name for name in _APT_PACKAGES if find_tool(name) is None]
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({_APT_PACKAGES[name] for name in missing})
        print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Wait for another apt run to finish rather than failing on its lock.
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q"]
        install_cmd = [*apt, "install", "-y", "--no-install-recommends", *packages]
        done = subprocess.run(install_cmd, env=env, check=False, capture_output=True)
        if done.returncode != 0:  # often only a stale package list
            subprocess.run([*apt, "update"], env=env, check=False, capture_output=True)
            done = subprocess.run(install_cmd, env=env, check=False, capture_output=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout.decode(errors="replace")[-2000:])
            sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
        missing = [name for name in _APT_PACKAGES if find_tool(name) is None]
    if missing:
        needed = " ".join(sorted({_APT_PACKAGES[name] for name in missing}))
        raise SystemExit(
            f"missing tools: {', '.join(missing)}. Install them with:\n"
            f"    sudo apt-get install -y {needed}\n"
            "(run as root, this script installs them itself unless --no-install is given)"
        )
    return {name: find_tool(name) or name for name in _APT_PACKAGES}


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs each side gets (taskset -c lists); None means "not pinned"."""

    load: str | None  # wrk and the static upstream
    upstream: str | None
    sut: str | None  # the proxy being measured: nginx, then each gateway in turn
    note: str

    def as_json(self) -> dict[str, object]:
        return {"load": self.load, "upstream": self.upstream, "sut": self.sut, "note": self.note}


PLACEMENTS = ("auto", "upstream-with-wrk", "upstream-with-proxy", "none")


def plan_cpus(placement: str = "auto") -> CpuPlan:
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "none" or len(cpus) < 2 or find_tool("taskset") is None:
        return CpuPlan(None, None, None, f"not pinned ({len(cpus)} CPU(s) available)")
    if placement == "upstream-with-proxy":
        load, sut = str(cpus[0]), str(cpus[1])
        return CpuPlan(
            load, sut, sut, f"wrk alone on CPU {load}, upstream + proxy under test on CPU {sut}"
        )
    if len(cpus) == 2 or placement == "upstream-with-wrk":
        load, sut = str(cpus[0]), str(cpus[1])
        return CpuPlan(
            load,
            load,
            sut,
            f"2 CPUs: wrk + upstream on CPU {load}, the proxy under test alone on CPU {sut}",
        )
    # Three or more: each side its own CPU; the proxy under test gets exactly one, which is what
    # one gateway process (one Trio thread) and one nginx worker can use.
    load, upstream, sut = str(cpus[0]), str(cpus[1]), str(cpus[2])
    return CpuPlan(
        load,
        upstream,
        sut,
        f"wrk on CPU {load}, upstream on CPU {upstream}, proxy under test on CPU {sut}",
    )


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else f"unavailable (exit {done.returncode})"


def script_interpreter(script: str) -> str:
    """The interpreter a console script runs under (its shebang), else our own."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline().decode(errors="replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return sys.executable


_VERSIONS_PY = """\
import json, platform, sys
from importlib import metadata
out = {"python": sys.version.replace("\\n", " "), "executable": sys.executable,
       "implementation": platform.python_implementation()}
for dist in ("trio-gateway", "trio", "httptools", "h2", "attrs", "cattrs"):
    try:
        out[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
        out[dist] = None
print(json.dumps(out))
"""


def describe(tools: dict[str, str], gateway_python: str) -> dict[str, object]:
    """Everything needed to tell two results files apart: machine, tools, interpreter, versions."""
    import json

    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        gateway_env = json.loads(
            subprocess.run(
                [gateway_python, "-c", _VERSIONS_PY],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        gateway_env = {"error": f"could not ask {gateway_python}: {exc}"}
    return {
        "kernel": platform.platform(),
        "cpu_model": cpu_model,
        "cpus_available": len(os.sched_getaffinity(0)),
        "nginx": _first_line([tools["nginx"], "-v"]),
        "wrk": _first_line([tools["wrk"], "--version"]).split(" Copyright")[0],
        "harness_python": sys.version.replace("\n", " "),
        "gateway_env": gateway_env,
    }


def busy_cpu_seconds() -> float:
    """CPU seconds all CPUs have spent running tasks (or stolen by the hypervisor) since boot.

    Interrupt and softirq time is left out: loopback traffic of the benchmark itself is processed
    there, and the kernel does not charge it to our processes, so it would look like noise.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds used by our children that have been waited for (each finished wrk run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait: float, *, threshold: float = 0.10) -> float | None:
    """Wait until the whole machine used under ``threshold`` CPUs for a full second.

    Called between runs, when nothing of ours is busy, so any load is someone else's. Returns
    the busy CPUs of the last sample if it never got quiet within ``max_wait``, else None.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_cpu_seconds()
        time.sleep(1.0)  # a one-second load sample, not synchronisation
        busy = busy_cpu_seconds() - before
        if busy < threshold:
            return None
        if time.monotonic() >= deadline:
            return busy
