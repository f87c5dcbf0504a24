"""A gRPC plugin server the kit starts from the author's command, waits for, and stops.

The wait is for the server's port to accept a connection, polled on the real clock in a worker
thread: the kit's Trio clock may be a mock one that stands still while plugins load. A server
that exits before it listens, or does not listen within the bound, is an error naming the
command.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit

import trio

from ..errors import PluginDriverError

#: Seconds a plugin server may take to start listening.
START_TIMEOUT = 15.0
#: Seconds it may take to exit once asked to (then it is killed).
STOP_TIMEOUT = 5.0


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"a plugin server address is tcp://HOST:PORT, not {address!r}")
    return parts.hostname, parts.port


def _start(command: Sequence[str], address: str, timeout: float) -> subprocess.Popen[bytes]:
    host, port = _host_port(address)
    proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise PluginDriverError(
                f"plugin server {list(command)} exited ({code}) before it listened on {address}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                _stop(proc)
                raise PluginDriverError(
                    f"plugin server {list(command)} did not listen on {address} "
                    f"within {timeout:g} s"
                ) from None
            time.sleep(0.05)  # polling a real condition (the port), bounded by the deadline


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_plugin_server(
    command: Sequence[str], address: str, *, timeout: float = START_TIMEOUT
) -> Iterator[None]:
    """Start ``command``, wait until ``address`` accepts connections; stop it at the end."""
    proc = _start(command, address, timeout)
    try:
        yield
    finally:
        _stop(proc)


@asynccontextmanager
async def open_plugin_server(
    command: Sequence[str], address: str, *, start_within: float = START_TIMEOUT
) -> AsyncIterator[None]:
    """:func:`running_plugin_server` for Trio code (the waits run in worker threads, on the
    real clock: ``start_within`` is real seconds)."""
    proc = await trio.to_thread.run_sync(_start, command, address, start_within)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_stop, proc)
