"""Shared parts of the reliability measurements (bench/reliability_*.py; docs/reliability.md).

Everything runs on 127.0.0.1: a JSON upstream in this process (Trio), the gateway as a real
`python -m trio_gateway run` subprocess (from ``--src``, so an older checkout can be measured
the same way: ``git archive <commit> | tar -x -C /tmp/old``), and HTTP/1.1 clients on raw
sockets. Figures are counts, times and byte sizes, not throughput ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


# -- the upstream ---------------------------------------------------------------------------


async def serve_json_upstream(
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A keep-alive HTTP/1.1 upstream answering every request with a small JSON document."""
    body = json.dumps({"items": [{"id": n, "name": f"item-{n}"} for n in range(20)]}).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(
        body
    )

    async def handle(stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some()
                    if not chunk:
                        return
                    buffer += chunk
                _, _, buffer = buffer.partition(b"\r\n\r\n")  # GETs only: no bodies
                await stream.send_all(head + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


# -- the gateway ----------------------------------------------------------------------------


def write_api(apps: Path, api_id: str, target: str, middleware: dict[str, object] | None) -> None:
    doc: dict[str, object] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": "bench",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": f"/{api_id}/", "target_url": target, "strip_listen_path": True},
    }
    if middleware is not None:
        doc["custom_middleware"] = middleware
    apps.mkdir(parents=True, exist_ok=True)
    (apps / f"{api_id}.json").write_text(json.dumps(doc))


@attrs.define(eq=False)
class GatewayProcess:
    process: trio.Process
    address: tuple[str, int]
    #: stderr read up to the "listening" line.
    startup: bytes


async def start_gateway(
    src: Path,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int = subprocess.PIPE,
) -> GatewayProcess:
    """`python -m trio_gateway run --listen 127.0.0.1:0 ARGS` from ``src``; its stderr is read
    only up to the "listening" line (the caller decides what happens to it next)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
    environment["PYTHONPATH"] = str(src)
    environment.update(env or {})
    command = [sys.executable, "-m", "trio_gateway", "run", "--listen", f"{LOOPBACK}:0", *args]
    process = await trio.lowlevel.open_process(
        command,
        cwd=str(src),
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
    assert process.stderr is not None
    seen = b""
    with trio.fail_after(30):
        while b"listening on http://" not in seen:
            chunk = await process.stderr.receive_some()
            if not chunk:
                raise RuntimeError(f"gateway exited early:\n{seen.decode(errors='replace')}")
            seen += chunk
    line = next(x for x in seen.decode().splitlines() if "listening on http://" in x)
    host, _, port = line.rpartition("http://")[2].rpartition(":")
    return GatewayProcess(process, (host, int(port)), seen)


async def drain(stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
    """Read ``stream`` to its end into ``into`` (run it in a nursery)."""
    if stream is None:
        return
    while chunk := await stream.receive_some():
        into += chunk


async def stop(process: trio.Process, bound: float = 30.0) -> float:
    """SIGTERM, then wait (bounded; killed after); returns the seconds it took to exit."""
    start = time.monotonic()
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(bound):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    return time.monotonic() - start


# -- clients --------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 client connection (responses with content-length only)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, address: tuple[str, int]) -> Connection:
        return cls(await trio.open_tcp_stream(*address))

    async def get(self, path: str) -> int:
        await self.stream.send_all(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise ConnectionError("closed by the gateway")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(self.buffer) < length:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise ConnectionError("closed by the gateway")
            self.buffer += chunk
        self.buffer = self.buffer[length:]
        return status

    async def aclose(self) -> None:
        await self.stream.aclose()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
