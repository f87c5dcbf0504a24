"""Starting and reliably stopping the processes a benchmark needs.

Every child gets its own session (and so its own process group): a Ctrl-C in the terminal then
reaches only the harness, which stops each group itself in ``finally`` -- nginx masters, their
workers and anything a gateway forks go with their group, and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"  # the only address this harness ever starts or drives anything on


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` prefixed with ``taskset -c CPUS`` when a CPU list is given."""
    if not cpus:
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


@dataclass
class Child:
    """One started process (the leader of its own process group) and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """Owns every child the harness starts; ``stop_all`` is idempotent and runs from ``finally``."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        full_argv = pinned(argv, cpus)
        with log_path.open("wb") as log:
            log.write(("$ " + " ".join(full_argv) + "\n").encode())
            log.flush()
            popen = subprocess.Popen(
                full_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole, deaf to our Ctrl-C
                env=env,
                cwd=cwd,
            )
        child = Child(name=name, popen=popen, log_path=log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, *, grace: float = 5.0) -> None:
        """SIGTERM the child's group, wait up to ``grace`` seconds, then SIGKILL the group."""
        pgid = child.popen.pid  # leader of its own session, so pid == pgid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=grace)
            if not _group_exists(pgid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=1.0)

    def stop_all(self) -> None:
        # Reverse start order: proxies go before the upstream they talk to.
        while self.children:
            child = self.children.pop()
            self.stop(child)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks stop the children."""

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Probe:
    status: int
    body: bytes


def http_get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> Probe:
    """One GET to 127.0.0.1:port (a fresh connection, no proxies from the environment)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5.0)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Probe(status=resp.status, body=resp.read())
    finally:
        conn.close()


def wait_until_serving(
    child: Child,
    port: int,
    *,
    path: str = "/",
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> Probe:
    """Poll until ``port`` answers an HTTP GET; raise RuntimeError with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with code {child.popen.returncode} before serving; "
                f"log {child.log_path}:\n{child.log_tail()}"
            )
        try:
            return http_get(port, path, headers)
        except (OSError, http.client.HTTPException) as exc:
            last_error = repr(exc)
        time.sleep(0.1)  # polling a child process we do not control; not test synchronisation
    raise RuntimeError(
        f"{child.name} did not serve on {LOOPBACK}:{port} within {timeout:.0f}s "
        f"(last error: {last_error}); log {child.log_path}:\n{child.log_tail()}"
    )


_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds used so far by the live processes of process group ``pgid``.

    Read around a wrk run, the difference says how busy the proxy under test really was: a
    proxy below ~95% of its one CPU was held back by the load side, not by itself.
    """
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # Fields after the parenthesised command (which may contain spaces): state is field 3.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5: pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / _TICKS
