"""`trio-gateway run --workers N`: N gateway processes on one port, under a supervisor.

The supervisor (this module, run by ``_cli``) starts N workers, each ``python -m
trio_gateway._workers``: its own interpreter and its own ``trio.run`` of ``serve_gateway``. Every
worker opens its own listener with SO_REUSEPORT, so the kernel spreads new connections among
them; nothing is proxied through the supervisor.

Rules:

- N > 1 needs the Redis store: in-memory keys, rate windows and quotas would be split between the
  workers (each would let through the full limit).
- The supervisor binds the port itself first, without listening. That reserves the port (a
  process without SO_REUSEPORT cannot take it), turns port 0 into one real port for every worker,
  and reports a busy port before any worker starts. A socket that does not listen gets no
  connections.
- Workers get their settings as one JSON line on stdin, never in argv or the environment (the
  admin secret and the Redis password would show in ``ps``). The supervisor then keeps stdin open:
  end of file means the supervisor is gone, and the worker drains and exits rather than live on
  as an orphan.
- Each worker runs in its own process group, so a terminal's Ctrl-C reaches the supervisor only,
  which forwards it once. SIGTERM/SIGINT are forwarded and start the shutdown: the workers drain
  (bounded by ``limits.shutdown_timeout``) and a worker still running after that plus a margin is
  killed. SIGHUP is forwarded as is (reload); a worker ignores it until a reload handler is in.
- A worker that exits while we are not shutting down is restarted after a short, growing delay.
  A worker that dies more than ``RestartBudget.max_restarts`` times within ``window`` seconds
  means something is wrong with the setup, not with luck: the supervisor stops all and exits 1.
- The demo upstream (no APIs folder given) runs in worker 0 only: it has a fixed port and needs
  no sharing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ._config.convert import structure_config, unstructure_config
from ._config.model import GatewayConfig
from ._listen import GATEWAY_LISTENER, ListenError
from ._memory import return_large_blocks_to_os

if TYPE_CHECKING:
    from ._accesslog import AccessLog
    from ._app import RunningGateway

__all__ = [
    "RestartBudget",
    "Supervisor",
    "run_workers",
    "worker_main",
    "workers_problem",
]

log = logging.getLogger("trio_gateway.workers")

EXIT_OK: Final = 0
EXIT_ERRORS: Final = 1
EXIT_USAGE: Final = 2

#: How a worker is started; the supervisor appends ``--index I --ready-fd FD``.
WORKER_COMMAND: Final = (sys.executable, "-m", "trio_gateway._workers")
#: Extra time, after ``limits.shutdown_timeout``, before a worker that does not stop is killed.
KILL_MARGIN: Final = 5.0
_SHUTDOWN_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


def workers_problem(config: GatewayConfig) -> str | None:
    """Why ``config`` cannot run with its ``workers`` count, or None when it can (pure)."""
    if config.workers > 1 and config.storage.type != "redis":
        return (
            f'--workers {config.workers} needs the Redis store (storage.type = "redis"): with '
            f"the in-memory store every worker would keep its own keys, rate limits and quotas, "
            f"so each would let the full limit through"
        )
    return None


@attrs.define(eq=False)
class RestartBudget:
    """How soon a dead worker may be restarted, and when to give up (pure: takes ``now``).

    The delay doubles with each death in the window (``first_delay`` up to ``max_delay``), so a
    worker that crashes at start does not spin; more than ``max_restarts`` deaths within
    ``window`` seconds exhaust the budget.
    """

    max_restarts: int = 5
    window: float = 60.0
    first_delay: float = 0.1
    max_delay: float = 5.0
    _deaths: list[float] = attrs.field(factory=list)

    def next_delay(self, now: float) -> float | None:
        """Record a death at ``now``: the delay before the restart, or None to give up."""
        self._deaths = [t for t in self._deaths if now - t < self.window]
        self._deaths.append(now)
        if len(self._deaths) > self.max_restarts:
            return None
        return min(self.first_delay * 2.0 ** (len(self._deaths) - 1), self.max_delay)


# --------------------------------------------------------------------------------------------------
# The supervisor


def run_workers(config: GatewayConfig, *, watch_interval: float | None = None) -> int:
    """Serve with ``config.workers`` processes until SIGTERM/SIGINT; the process exit code.

    ``watch_interval``: each worker polls the APIs folder that often (``--watch``). Logging must
    be configured already (``_cli`` does it).
    """
    problem = workers_problem(config)
    if problem is not None:
        print(f"trio-gateway: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        reservation = reserve_port(config.listen.host, config.listen.port)
    except OSError as exc:
        log.error("%s", ListenError(GATEWAY_LISTENER, config.listen.host, config.listen.port, exc))
        return EXIT_ERRORS
    with reservation:
        port: int = reservation.getsockname()[1]
        config = attrs.evolve(config, listen=attrs.evolve(config.listen, port=port))
        supervisor = Supervisor(config=config, watch_interval=watch_interval)
        return trio.run(supervisor.run)


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` with SO_REUSEPORT and do not listen (see the module's rules)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@attrs.define(eq=False)
class Supervisor:
    """Keeps ``config.workers`` worker processes running; see the module docstring."""

    config: GatewayConfig
    command: Sequence[str] = WORKER_COMMAND
    #: Passed on to every worker (``--watch``).
    watch_interval: float | None = None
    #: Budget settings for each worker slot (tests shorten the delays).
    restart_budget: RestartBudget = attrs.field(factory=RestartBudget)
    #: Live worker processes by slot index.
    processes: dict[int, trio.Process] = attrs.field(factory=dict)
    stopping: trio.Event = attrs.field(factory=trio.Event)
    #: Set when every worker has reported ready at least once.
    all_ready: trio.Event = attrs.field(factory=trio.Event)
    _ever_ready: set[int] = attrs.field(factory=set)
    _failed: bool = False

    @property
    def count(self) -> int:
        return self.config.workers

    async def run(self) -> int:
        """Start the workers, keep them running until stopped; the exit code."""
        log.info(
            "supervisor (pid %d) starting %d workers on %s:%d",
            os.getpid(),
            self.count,
            self.config.listen.host,
            self.config.listen.port,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(self._watch_signals)
            async with trio.open_nursery() as slots:
                for index in range(self.count):
                    slots.start_soon(self._keep_running, index)
            nursery.cancel_scope.cancel()  # the signal watcher
        log.info("supervisor stopped")
        return EXIT_ERRORS if self._failed else EXIT_OK

    def stop(self, signum: int = signal.SIGTERM, *, failed: bool = False) -> None:
        """Begin the shutdown: forward ``signum`` to every worker; none is restarted any more."""
        self._failed = self._failed or failed
        self.stopping.set()
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for process in list(self.processes.values()):
            if process.returncode is None:
                process.send_signal(signum)

    async def _watch_signals(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(*_SHUTDOWN_SIGNALS, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: forwarded to %d worker(s)", len(self.processes))
                    self._forward(signum)
                else:
                    log.info("%s: stopping %d worker(s)", name, len(self.processes))
                    self.stop(signum)

    async def _keep_running(self, index: int) -> None:
        budget = attrs.evolve(self.restart_budget)  # one budget per slot
        while not self.stopping.is_set():
            code = await self._run_once(index)
            if self.stopping.is_set():
                log.info("worker %d exited (%s)", index, describe_exit(code))
                return
            delay = budget.next_delay(trio.current_time())
            if delay is None:
                log.error(
                    "worker %d exited (%s) more than %d times in %gs; stopping all workers",
                    index,
                    describe_exit(code),
                    budget.max_restarts,
                    budget.window,
                )
                self.stop(failed=True)
                return
            log.error(
                "worker %d exited unexpectedly (%s); restarting in %gs",
                index,
                describe_exit(code),
                delay,
            )
            with trio.move_on_after(delay):
                await self.stopping.wait()

    async def _run_once(self, index: int) -> int:
        """Start worker ``index``, wait for it to exit; its return code."""
        read_fd, write_fd = os.pipe()
        try:
            process = await trio.lowlevel.open_process(
                [*self.command, "--index", str(index), "--ready-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                process_group=0,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        ready = trio.lowlevel.FdStream(read_fd)
        self.processes[index] = process
        try:
            if self.stopping.is_set():  # stopped while it was starting
                process.send_signal(signal.SIGTERM)
            assert process.stdin is not None
            settings = {
                "config": unstructure_config(self.config),
                "watch_interval": self.watch_interval,
            }
            line = json.dumps(settings).encode() + b"\n"
            try:
                await process.stdin.send_all(line)
            except trio.BrokenResourceError:
                pass  # it died at once; wait() below reports how
            async with trio.open_nursery() as life:
                life.start_soon(self._watch_ready, index, process, ready)
                life.start_soon(self._kill_when_late, index, process)
                code = await process.wait()
                life.cancel_scope.cancel()
            return code
        finally:
            del self.processes[index]
            with trio.CancelScope(shield=True):
                await ready.aclose()
                if process.returncode is None:  # we are being cancelled: take it with us
                    process.kill()
                    with trio.move_on_after(KILL_MARGIN):
                        await process.wait()
                if process.stdin is not None:
                    await process.stdin.aclose()

    async def _watch_ready(
        self, index: int, process: trio.Process, ready: trio.lowlevel.FdStream
    ) -> None:
        """Log the worker's readiness line (it closes the pipe after writing it)."""
        data = b""
        while not data.endswith(b"\n"):
            chunk = await ready.receive_some(256)
            if not chunk:
                return  # it exited before it was ready
            data += chunk
        log.info("worker %d (pid %d) ready: %s", index, process.pid, data.decode().strip())
        self._ever_ready.add(index)
        if len(self._ever_ready) == self.count and not self.all_ready.is_set():
            self.all_ready.set()
            log.info(
                "trio-gateway listening on http://%s:%d with %d workers",
                self.config.listen.host,
                self.config.listen.port,
                self.count,
            )

    async def _kill_when_late(self, index: int, process: trio.Process) -> None:
        await self.stopping.wait()
        grace = self.config.limits.shutdown_timeout + KILL_MARGIN
        await trio.sleep(grace)
        log.error(
            "worker %d (pid %d) still running %gs after stop; killing it", index, process.pid, grace
        )
        self._failed = True
        process.kill()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --------------------------------------------------------------------------------------------------
# The worker


def worker_main(argv: Sequence[str] | None = None) -> int:
    """A worker process: read the settings from stdin, serve, drain on SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="trio_gateway._workers")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    line = sys.stdin.buffer.readline()
    if not line:
        print("trio-gateway worker: no settings on stdin", file=sys.stderr)
        return EXIT_USAGE
    settings = json.loads(line)
    config = structure_config(settings["config"])
    watch_interval: float | None = settings["watch_interval"]

    from ._logsetup import stderr_logging, stdout_access_log
    from ._server import SHARE_LISTENING_PORT

    text_format = (
        f"%(asctime)s %(levelname)s worker {args.index} (pid %(process)d) %(name)s: %(message)s"
    )
    # Until the gateway installs a reload handler, a forwarded SIGHUP must not kill the worker
    # (SIGHUP's default action); trio's signal receiver replaces this while it is open.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    SHARE_LISTENING_PORT.set(True)
    return_large_blocks_to_os()
    # As in the single-process mode: logs through writer threads (see _logwriter.py). All
    # workers share stdout and stderr; the writers keep each line whole (PIPE_BUF writes).
    with stderr_logging(config.log_level, text_format=text_format):
        enabled = logging.getLogger("trio_gateway").isEnabledFor(logging.INFO)
        with stdout_access_log(enabled) as access_log:
            try:
                trio.run(
                    _serve_worker, config, args.index, args.ready_fd, watch_interval, access_log
                )
            except OSError as exc:
                logging.getLogger("trio_gateway").error("cannot serve: %s", exc)
                return EXIT_ERRORS
    return EXIT_OK


async def _serve_worker(
    config: GatewayConfig,
    index: int,
    ready_fd: int,
    watch_interval: float | None,
    access_log: AccessLog,
) -> None:
    from ._app import serve_gateway

    async with trio.open_nursery() as nursery:

        async def serve_then_stop(task_status: trio.TaskStatus[RunningGateway]) -> None:
            await serve_gateway(
                config,
                demo_upstream=index == 0 and config.wants_demo_upstream,
                handle_signals=True,
                watch_interval=watch_interval,
                access_log=access_log,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()  # drained: stop watching the supervisor

        running: RunningGateway = await nursery.start(serve_then_stop)
        try:
            os.write(ready_fd, f"http://{running.address[0]}:{running.address[1]}\n".encode())
        finally:
            os.close(ready_fd)
        nursery.start_soon(partial(_drain_when_orphaned, running))


async def _drain_when_orphaned(running: RunningGateway) -> None:
    """Drain when stdin reaches end of file: the supervisor is gone."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        try:
            while await stdin.receive_some():
                pass
        except trio.BrokenResourceError:
            pass
    logging.getLogger("trio_gateway").warning("supervisor gone: draining")
    running.shutdown()


if __name__ == "__main__":
    sys.exit(worker_main())
