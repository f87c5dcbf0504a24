"""`trio-gateway run --workers N`: real supervisor and worker processes, a real redis-server.

Which worker served a connection is read from the kernel (/proc: the accepted socket's inode, and
which worker holds it), so the gateway needs no debug header for these tests.
"""

from __future__ import annotations

import logging
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from tests.helpers import write_keyless_api
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import RawUpstream, ReceivedRequest, Reply, start_upstream
from tests.redis_server import RedisServer
from trio_gateway._cli import EXIT_USAGE, main
from trio_gateway._config.model import GatewayConfig, StorageConfig
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.model import Session
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._workers import RestartBudget, Supervisor, workers_problem

ROOT = Path(__file__).resolve().parents[2]
#: Generous bound for processes to start or stop on a loaded two-core machine.
PROCESS_BOUND = 30.0
_READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready")


@attrs.define(eq=False)
class Supervised:
    """A `trio-gateway run --workers N` process and what it (and its workers) wrote to stderr."""

    process: trio.Process
    stderr: bytearray = attrs.field(factory=bytearray)
    address: tuple[str, int] = ("", 0)
    eof: trio.Event = attrs.field(factory=trio.Event)
    _grew: trio.Event = attrs.field(factory=trio.Event)

    def lines(self) -> list[str]:
        return self.stderr.decode(errors="replace").splitlines()

    async def wait_for_log(self, pattern: str, *, after: int = 0) -> re.Match[str]:
        """Wait for a stderr line (from line number ``after`` on) matching ``pattern``."""
        with trio.fail_after(PROCESS_BOUND):
            while True:
                for line in self.lines()[after:]:
                    if found := re.search(pattern, line):
                        return found
                if self.eof.is_set():
                    raise AssertionError(f"no {pattern!r} in:\n{self.stderr.decode()}")
                await self._grew.wait()

    def ready_pids(self) -> dict[int, int]:
        """Worker index -> pid of its latest start that reported ready."""
        pids = {}
        for line in self.lines():
            if found := _READY.search(line):
                pids[int(found[1])] = int(found[2])
        return pids

    async def _drain_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        # Ends when the supervisor AND every worker have closed it (they share the pipe).
        while chunk := await stream.receive_some():
            self.stderr += chunk
            self._grew.set()
            self._grew = trio.Event()
        self.eof.set()
        self._grew.set()

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(PROCESS_BOUND):
            code = await self.process.wait()
            await self.eof.wait()  # the workers are gone too
        return code


@asynccontextmanager
async def supervised(
    redis: RedisServer, apps: Path, *args: str, workers: int = 2
) -> AsyncIterator[Supervised]:
    """Run `trio-gateway run --workers N` on the Redis store; all workers ready on entry."""
    config = apps.parent / f"{apps.name}-gateway.toml"
    config.write_text(
        f'[storage]\ntype = "redis"\nhost = "{redis.host}"\nport = {redis.port}\n'
        "[limits]\nshutdown_timeout = 5.0\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
    command = [sys.executable, "-m", "trio_gateway", "run", "--listen", "127.0.0.1:0"]
    command += ["--config", str(config), "--apps", str(apps), "--workers", str(workers), *args]
    process = await trio.lowlevel.open_process(
        command,
        cwd=str(ROOT),
        env=clean,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # access-log lines
        stderr=subprocess.PIPE,
    )
    try:
        async with trio.open_nursery() as nursery:
            gateway = Supervised(process)
            nursery.start_soon(gateway._drain_stderr)
            found = await gateway.wait_for_log(r"listening on http://([\d.]+):(\d+) with")
            gateway.address = (found[1], int(found[2]))
            yield gateway
            if process.returncode is None:
                await gateway.stop()
    finally:
        if process.returncode is None:
            process.kill()  # its workers see their stdin close and drain by themselves
            with trio.move_on_after(PROCESS_BOUND):
                await process.wait()


def _hex_endpoint(port: int) -> str:
    return f"0100007F:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it


def serving_pid(gateway_port: int, client_port: int, candidates: list[int]) -> int:
    """Which of ``candidates`` holds the accepted socket of the client connection on
    ``client_port`` (read from /proc/net/tcp and the workers' open files)."""
    local, remote = _hex_endpoint(gateway_port), _hex_endpoint(client_port)
    inode = None
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if fields[1] == local and fields[2] == remote:
            inode = fields[9]
    assert inode is not None, f"no accepted socket for client port {client_port}"
    for pid in candidates:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue  # closed while we looked
    raise AssertionError(f"no worker holds socket {inode}")


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> RawUpstream:
    return await start_upstream(nursery)


@pytest.fixture
def apps(tmp_path: Path, upstream: RawUpstream) -> Path:
    folder = tmp_path / "apps"
    write_keyless_api(folder, api_id="open", listen_path="/open/", target_url=upstream.url)
    return folder


# -- serving --------------------------------------------------------------------------------------


async def test_two_workers_both_serve_on_one_port(redis_db: RedisServer, apps: Path) -> None:
    async with supervised(redis_db, apps) as gateway:
        pids = gateway.ready_pids()
        assert sorted(pids) == [0, 1]
        served_by = set()
        async with trio.open_nursery() as nursery:
            # The kernel spreads connections by a hash of their addresses: with 24 connections
            # the chance that all land on one of two workers is 2**-23.
            done = trio.Event()
            served: list[int] = []

            async def one_connection() -> None:
                async with open_client(gateway.address) as client:
                    response = await client.request("GET", "/open/x")
                    assert response.status == 200
                    client_port = client.stream.socket.getsockname()[1]
                    served.append(serving_pid(gateway.address[1], client_port, [*pids.values()]))
                    if len(served) == 24:
                        done.set()
                    await done.wait()  # keep every connection open until all are mapped

            for _ in range(24):
                nursery.start_soon(one_connection)
        served_by = set(served)
        assert served_by == set(pids.values())
        assert await gateway.stop() == 0


async def test_sigterm_drains_in_flight_requests_and_exits_0(
    redis_db: RedisServer, tmp_path: Path, nursery: trio.Nursery
) -> None:
    release = trio.Event()

    async def slow(request: ReceivedRequest, reply: Reply) -> None:
        await release.wait()
        await reply.respond(200, body=b"finished")

    upstream = await start_upstream(nursery, slow)
    write_keyless_api(
        tmp_path / "apps", api_id="slow", listen_path="/slow/", target_url=upstream.url
    )
    async with supervised(redis_db, tmp_path / "apps") as gateway:
        async with open_client(gateway.address) as busy:
            await busy.send(b"GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")
            await upstream.wait_until(lambda: len(upstream.requests) == 1)
            gateway.process.send_signal(signal.SIGTERM)
            await gateway.wait_for_log("SIGTERM: stopping 2 worker")
            # Both workers drain: neither listens any more, but the request in flight goes on.
            await gateway.wait_for_log(r"worker 0 .*SIGTERM: draining")
            await gateway.wait_for_log(r"worker 1 .*SIGTERM: draining")
            assert gateway.process.returncode is None
            release.set()
            response = await busy.read_response()
            assert (response.status, response.body) == (200, b"finished")
        with trio.fail_after(PROCESS_BOUND):
            assert await gateway.process.wait() == 0
            await gateway.eof.wait()
    assert "exited unexpectedly" not in gateway.stderr.decode()
    assert "worker 0 exited (exit code 0)" in gateway.stderr.decode()
    assert "worker 1 exited (exit code 0)" in gateway.stderr.decode()


async def test_a_killed_worker_is_restarted(redis_db: RedisServer, apps: Path) -> None:
    async with supervised(redis_db, apps) as gateway:
        before = gateway.ready_pids()
        mark = len(gateway.lines())
        os.kill(before[1], signal.SIGKILL)
        await gateway.wait_for_log(
            r"worker 1 exited unexpectedly \(killed by SIGKILL\); restarting", after=mark
        )
        found = await gateway.wait_for_log(r"worker 1 \(pid (\d+)\) ready", after=mark)
        assert int(found[1]) != before[1]
        after = gateway.ready_pids()
        assert after[0] == before[0]  # its sibling kept running
        for _ in range(6):
            assert (await fetch(gateway.address, "GET", "/open/x")).status == 200
        assert await gateway.stop() == 0


async def test_sighup_reaches_every_worker(redis_db: RedisServer, apps: Path) -> None:
    async with supervised(redis_db, apps) as gateway:
        pids = gateway.ready_pids()
        mark = len(gateway.lines())
        gateway.process.send_signal(signal.SIGHUP)
        await gateway.wait_for_log("SIGHUP: forwarded to 2 worker", after=mark)
        await gateway.wait_for_log(r"worker 0 \(pid \d+\) .*SIGHUP", after=mark)
        await gateway.wait_for_log(r"worker 1 \(pid \d+\) .*SIGHUP", after=mark)
        assert (await fetch(gateway.address, "GET", "/open/x")).status == 200
        assert gateway.ready_pids() == pids  # reloaded in place, not restarted
        assert await gateway.stop() == 0


async def test_watch_reloads_every_worker(
    redis_db: RedisServer, apps: Path, upstream: RawUpstream
) -> None:
    async with supervised(redis_db, apps, "--watch", "0.1") as gateway:
        await gateway.wait_for_log(r"worker 0 .*watching")
        await gateway.wait_for_log(r"worker 1 .*watching")
        mark = len(gateway.lines())
        write_keyless_api(apps, api_id="later", listen_path="/later/", target_url=upstream.url)
        await gateway.wait_for_log(r"worker 0 .*changed: reloading", after=mark)
        await gateway.wait_for_log(r"worker 1 .*changed: reloading", after=mark)
        await gateway.wait_for_log(r"worker 0 .*: reload: ", after=mark)
        await gateway.wait_for_log(r"worker 1 .*: reload: ", after=mark)
        for _ in range(8):  # fresh connections: both workers answer
            assert (await fetch(gateway.address, "GET", "/later/x")).status == 200
        assert await gateway.stop() == 0


async def test_workers_drain_and_exit_when_the_supervisor_dies(
    redis_db: RedisServer, apps: Path
) -> None:
    async with supervised(redis_db, apps) as gateway:
        gateway.process.kill()
        # stderr reaches end of file only when every worker has exited as well.
        with trio.fail_after(PROCESS_BOUND):
            await gateway.eof.wait()
        assert gateway.stderr.decode().count("supervisor gone: draining") == 2


# -- limits hold across workers -------------------------------------------------------------------


async def test_rate_limit_holds_across_two_workers(
    redis_db: RedisServer, tmp_path: Path, upstream: RawUpstream
) -> None:
    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id="keyed",
        listen_path="/keyed/",
        target_url=upstream.url,
        use_keyless=False,
        auth={"auth_header_name": "Authorization"},
    )
    store = RedisSessionStore(RedisClient(host=redis_db.host, port=redis_db.port))
    try:
        await store.put_session("key-1", Session(rate=10, per=60, quota_max=-1, org_id="test"))
    finally:
        await store.aclose()
    async with supervised(redis_db, apps) as gateway:
        statuses: list[int] = []

        async def one_request() -> None:
            response = await fetch(gateway.address, "GET", "/keyed/x", [("Authorization", "key-1")])
            statuses.append(response.status)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one_request)
        assert sorted(set(statuses)) == [200, 429]
        assert statuses.count(200) == 10
        assert await gateway.stop() == 0


# -- refusals and the supervisor's own rules ------------------------------------------------------


def test_more_than_one_worker_needs_the_redis_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("TRIO_GATEWAY_")]:
        monkeypatch.delenv(name)
    assert main(["run", "--workers", "2", "--apps", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--workers 2 needs the Redis store" in err
    assert 'storage.type = "redis"' in err
    # The environment asks the same way.
    monkeypatch.setenv("TRIO_GATEWAY_WORKERS", "3")
    assert main(["run", "--apps", str(tmp_path)]) == EXIT_USAGE
    assert "--workers 3 needs the Redis store" in capsys.readouterr().err


def test_workers_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workers", "0", "--apps", str(tmp_path)]) == EXIT_USAGE
    assert "workers: must be a number > 0" in capsys.readouterr().err


def test_workers_problem() -> None:
    redis = StorageConfig(type="redis")
    assert workers_problem(GatewayConfig()) is None
    assert workers_problem(GatewayConfig(workers=2, storage=redis)) is None
    assert workers_problem(GatewayConfig(workers=2)) is not None


def test_restart_budget_backs_off_then_gives_up() -> None:
    budget = RestartBudget(max_restarts=4, window=60.0, first_delay=0.5, max_delay=3.0)
    assert [budget.next_delay(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.5, 1.0, 2.0, 3.0]
    assert budget.next_delay(4.0) is None  # a fifth death within the minute


def test_restart_budget_forgets_old_deaths() -> None:
    budget = RestartBudget(max_restarts=2, window=10.0, first_delay=1.0)
    assert budget.next_delay(0.0) == 1.0
    assert budget.next_delay(5.0) == 2.0
    # 0.0 has left the window: this is the second death in it, not the third.
    assert budget.next_delay(10.0) == 2.0
    assert budget.next_delay(12.0) is None


async def test_a_worker_that_keeps_dying_stops_the_supervisor(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `main(["run", ...])` in an earlier test may have cut our loggers off from caplog's.
    monkeypatch.setattr(logging.getLogger("trio_gateway"), "propagate", True)
    config = GatewayConfig(workers=2, storage=StorageConfig(type="redis"))
    supervisor = Supervisor(
        config=config,
        command=[sys.executable, "-c", "raise SystemExit(3)"],
        restart_budget=RestartBudget(max_restarts=2, first_delay=0.01, max_delay=0.01),
    )
    with trio.fail_after(PROCESS_BOUND):
        assert await supervisor.run() == 1
    text = caplog.text
    assert "worker 0 exited unexpectedly (exit code 3); restarting" in text
    assert "more than 2 times" in text
    assert not supervisor.processes
    assert not supervisor.all_ready.is_set()


def test_access_log_batches_reach_stdout_in_whole_lines_of_at_most_pipe_buf() -> None:
    from trio_gateway._logwriter import whole_line_pieces

    long_line = b"y" * (2 * select.PIPE_BUF) + b"\n"
    lines = [b"%d:%s\n" % (n, b"x" * (n * 37 % 300)) for n in range(100)]
    batch = b"".join(lines) + long_line + b"".join(lines)
    writes = list(whole_line_pieces(batch))
    assert b"".join(writes) == batch
    assert long_line in writes  # too long to stay whole: it goes alone
    for write in writes:
        assert write.endswith(b"\n")
        assert write == long_line or len(write) <= select.PIPE_BUF
    assert len(writes) < len(lines)  # batched, not one write per line
