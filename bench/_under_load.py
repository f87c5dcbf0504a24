"""What bench/reliability_{shutdown,slowloris,reload,redis}.py share: an nginx upstream, a
`trio-gateway run` process built from any source tree, and the instrumented keep-alive load from
``tests/helpers/keepalive_load.py`` (it tells a clean close from a reset and a truncated
response, which wrk cannot).

``--src DIR`` runs the gateway from another checkout (for old-vs-new comparisons:
``git archive <commit> | tar -x -C DIR``); the interpreter stays this one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import _nginx
from _procs import LOOPBACK, Child, Processes, free_port, wait_until_serving

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.keepalive_load import KeepAliveLoad  # noqa: E402

__all__ = [
    "LOOPBACK",
    "REPO_ROOT",
    "KeepAliveLoad",
    "argument_parser",
    "count_in_log",
    "free_port",
    "open_descriptors",
    "start_gateway",
    "start_upstream",
    "wait_for_log",
    "write_api",
]


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with the shared ``--src`` option."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--src", type=Path, help="run the gateway from this source tree")
    return parser


def start_upstream(procs: Processes, workdir: Path) -> int:
    """nginx answering every request with a 100-byte body; returns its port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    argv = _nginx.write_conf(
        nginx, workdir / "nginx", _nginx.upstream_conf(workdir / "nginx", port)
    )
    child = procs.start("nginx", argv)
    wait_until_serving(child, port)
    return port


def write_api(apps: Path, upstream_port: int, *, keyed: bool = False) -> None:
    apps.mkdir(parents=True, exist_ok=True)
    auth = '"use_keyless": false, "auth": {"auth_header_name": "Authorization"}'
    (apps / "api.json").write_text(
        '{"name": "api", "api_id": "api", "org_id": "bench", "active": true, '
        + (auth if keyed else '"use_keyless": true')
        + ', "version_data": {"not_versioned": true, "versions": {"Default": {"name": "Default"}}},'
        f' "proxy": {{"listen_path": "/api/", "target_url": "http://{LOOPBACK}:{upstream_port}/",'
        ' "strip_listen_path": true}}'
    )


def start_gateway(
    procs: Processes,
    name: str,
    apps: Path,
    *,
    source: Path | None,
    config: Path | None = None,
    extra: Sequence[str] = (),
    probe: str = "/api/",
    probe_headers: dict[str, str] | None = None,
) -> tuple[Child, int]:
    """`python -m trio_gateway run` from ``source`` (default: this checkout); returns it and its
    port once it answers ``probe``."""
    port = free_port()
    argv = [sys.executable, "-m", "trio_gateway", "run", "--apps", str(apps)]
    argv += ["--listen", f"{LOOPBACK}:{port}"]
    if config is not None:
        argv += ["--config", str(config)]
    argv += list(extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
    tree = source or REPO_ROOT
    env["PYTHONPATH"] = str(tree)
    # stderr (gateway messages) to the log; stdout (one access-log line per request) dropped.
    log_path = procs.log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=env,
            cwd=tree,
        )
    child = Child(name=name, popen=popen, log_path=log_path)
    procs.children.append(child)
    wait_until_serving(child, port, path=probe, headers=probe_headers, timeout=30.0)
    return child, port


def count_in_log(child: Child, text: str) -> int:
    return child.log_path.read_text(errors="replace").count(text)


def wait_for_log(child: Child, text: str, count: int = 1, timeout: float = 30.0) -> None:
    """Poll the child's log until ``text`` appears ``count`` times (a child we do not control)."""
    deadline = time.monotonic() + timeout
    while count_in_log(child, text) < count:
        if time.monotonic() > deadline or not child.alive():
            raise RuntimeError(f"{child.name}: no {text!r} x{count}:\n{child.log_tail()}")
        time.sleep(0.005)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
