"""The example gRPC plugin server (examples/grpc/server.py) as its own process, for the suite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Starting Python, grpcio and protobuf on a loaded two-core machine.
START_BOUND = 30.0


async def _read_line(stream: trio.abc.ReceiveStream) -> bytes:
    line = bytearray()
    while not line.endswith(b"\n"):
        data = await stream.receive_some(1)
        if not data:
            break
        line += data
    return bytes(line)


@asynccontextmanager
async def grpc_example_server() -> AsyncIterator[str]:
    """``examples/grpc/server.py`` on a free port; yields its target (``tcp://127.0.0.1:PORT``)
    once it listens, and stops it on exit."""
    command = [sys.executable, str(EXAMPLES / "grpc" / "server.py"), "--port", "0"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        with trio.fail_after(START_BOUND):
            line = await _read_line(process.stdout)
        word, _, port = line.decode().partition(" ")
        assert word == "ready", f"the gRPC example server did not start: {line!r}"
        yield f"tcp://127.0.0.1:{port.strip()}"
    finally:
        process.terminate()
        with trio.CancelScope(shield=True), trio.move_on_after(START_BOUND):
            await process.wait()
        if process.returncode is None:
            process.kill()
        if process.stdout is not None:
            await process.stdout.aclose()
