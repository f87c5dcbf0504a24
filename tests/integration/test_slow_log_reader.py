"""A `trio-gateway run` process whose stdout and stderr are pipes nobody reads keeps answering.

Before the log writers, the access log was written to stdout from the event loop: once the pipe
(64 KiB) was full, every connection stopped, after ~370 requests (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from tests.helpers import write_keyless_api
from tests.helpers.client import open_client
from tests.helpers.upstream import start_upstream

ROOT = Path(__file__).resolve().parents[2]
#: Generous bound for a subprocess to start, serve the load, or stop on a loaded machine.
PROCESS_BOUND = 60.0
REQUESTS = 3000
#: Every BAD_EVERY-th request is malformed: a 400 and an INFO line on stderr.
BAD_EVERY = 3
MALFORMED = b"GET /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n"


@attrs.define(eq=False)
class UnreadGateway:
    process: trio.Process
    address: tuple[str, int]


@asynccontextmanager
async def gateway_with_unread_output(apps: Path) -> AsyncIterator[UnreadGateway]:
    """`trio-gateway run` with stdout and stderr on pipes: stderr is read up to the
    "listening" line, then neither is read until the test says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
    command = [
        sys.executable,
        "-m",
        "trio_gateway",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--apps",
        str(apps),
    ]
    process = await trio.lowlevel.open_process(
        command,
        cwd=str(ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        seen = b""
        with trio.fail_after(PROCESS_BOUND):
            while b"listening on http://" not in seen:
                chunk = await process.stderr.receive_some()
                assert chunk, f"gateway exited early:\n{seen.decode()}"
                seen += chunk
        line = next(x for x in seen.decode().splitlines() if "listening on http://" in x)
        host, _, port = line.rpartition("http://")[2].rpartition(":")
        yield UnreadGateway(process, (host, int(port)))
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(PROCESS_BOUND):
            await process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()


async def send_load(address: tuple[str, int]) -> list[int]:
    """REQUESTS requests from 10 keep-alive clients; malformed ones on their own connections."""
    statuses: list[int] = []

    async def client(offset: int) -> None:
        async with open_client(address) as conn:
            for n in range(offset, REQUESTS, 10):
                if n % BAD_EVERY == 0:
                    async with open_client(address) as bad:
                        await bad.send(
                            b"GET /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n"
                        )
                        statuses.append((await bad.read_response()).status)
                    continue
                statuses.append((await conn.request("GET", f"/api/{n}")).status)

    with trio.fail_after(PROCESS_BOUND):
        async with trio.open_nursery() as nursery:
            for offset in range(10):
                nursery.start_soon(client, offset)
    return statuses


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    with trio.fail_after(PROCESS_BOUND):
        while chunk := await stream.receive_some():
            data += chunk
    return bytes(data)


def expected_statuses() -> list[int]:
    return sorted(400 if n % BAD_EVERY == 0 else 200 for n in range(REQUESTS))


@asynccontextmanager
async def served_load_then_sigterm(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[trio.Process]:
    """A gateway with unread output has answered REQUESTS requests and got SIGTERM."""
    upstream = await start_upstream(nursery)
    write_keyless_api(tmp_path, api_id="api", listen_path="/api/", target_url=upstream.url)
    async with gateway_with_unread_output(tmp_path) as gateway:
        statuses = await send_load(gateway.address)
        assert sorted(statuses) == expected_statuses()
        gateway.process.send_signal(signal.SIGTERM)
        yield gateway.process


async def test_3000_requests_answered_while_nobody_reads_stdout_or_stderr(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with served_load_then_sigterm(nursery, tmp_path) as process:
        # Graceful shutdown writes out what is buffered once the reader is back.
        assert process.stdout is not None
        assert process.stderr is not None
        out: list[bytes] = []
        err: list[bytes] = []

        async def collect(stream: trio.abc.ReceiveStream, into: list[bytes]) -> None:
            into.append(await read_all(stream))

        async with trio.open_nursery() as readers:
            readers.start_soon(collect, process.stdout, out)
            readers.start_soon(collect, process.stderr, err)
        with trio.fail_after(PROCESS_BOUND):
            assert await process.wait() == 0
    access = [json.loads(line) for line in out[0].decode().splitlines()]
    assert sorted(entry["status"] for entry in access) == [200] * len(access)
    assert len(access) == REQUESTS - len([n for n in range(REQUESTS) if n % BAD_EVERY == 0])
    bad_lines = [line for line in err[0].decode().splitlines() if "bad request from" in line]
    assert len(bad_lines) == REQUESTS // BAD_EVERY
    assert "dropped" not in err[0].decode()  # 8 MiB of buffer: nothing lost in this run


async def test_shutdown_is_bounded_when_the_reader_never_comes_back(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with served_load_then_sigterm(nursery, tmp_path) as process:
        # Nothing is read: the buffered lines cannot be written, and the process still exits
        # (each writer gives up after its flush bound, 2 s).
        with trio.fail_after(PROCESS_BOUND):
            assert await process.wait() == 0
