from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from grpc_dispatcher_server import Handler, echo, start_server

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb

SERVER_SCRIPT = Path(__file__).with_name("grpc_dispatcher_server.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """The echo Dispatcher in its own process, so a test can kill it and start it again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server listens (or dies)
        assert line.startswith("ready"), line

    async def astart(self) -> None:
        await trio.to_thread.run_sync(self.start)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def server_process() -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port())
    try:
        yield proc
    finally:
        proc.kill()


class Server:
    def __init__(self) -> None:
        self.handler: Handler = echo
        self.server: Any = None
        self.target = ""

    def dispatch(self, obj: pb.Object, context: Any) -> pb.Object:
        return self.handler(obj, context)


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    """A grpcio Dispatcher on a free loopback port, stopped on exit."""
    srv = Server()
    srv.server, port = start_server("127.0.0.1:0", srv.dispatch)
    srv.target = f"127.0.0.1:{port}"
    try:
        yield srv
    finally:
        srv.server.stop(0)


@pytest.fixture
def server() -> Iterator[Server]:
    with running_server() as srv:
        yield srv
