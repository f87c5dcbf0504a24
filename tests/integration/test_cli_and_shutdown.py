"""The `trio-gateway` command: `check` exit codes, and `run` as a real subprocess — the bundled
demo, graceful SIGTERM drain, and bodies far larger than the process's memory streamed through it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from tests.helpers import write_keyless_api
from tests.helpers.client import fetch, open_client
from tests.helpers.upstream import ReceivedRequest, Reply, start_upstream
from trio_gateway._cli import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APPS = ROOT / "examples" / "apps"
#: Generous bound for a subprocess to start or stop on a loaded two-core machine.
PROCESS_BOUND = 30.0


# -- trio-gateway check --------------------------------------------------------------------------


def test_check_clean_folder_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--apps", str(EXAMPLE_APPS)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "orders-classic" in out
    assert "orders-oas" in out
    assert "2 API(s) ok, 0 file(s) refused" in out


def test_check_folder_with_errors_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_keyless_api(tmp_path, api_id="good", listen_path="/good/", target_url="http://up/")
    write_keyless_api(
        tmp_path, api_id="ip", listen_path="/ip/", target_url="http://up/", enable_jwt=True
    )
    assert main(["check", "--apps", str(tmp_path)]) == EXIT_ERRORS
    out = capsys.readouterr().out
    assert "ip.json" in out
    assert "enable_jwt" in out
    assert "1 API(s) ok, 1 file(s) refused" in out


def test_check_names_the_coprocess_switch_for_grpc_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("TRIO_GATEWAY_", "TYK_GW_")):
            monkeypatch.delenv(name)
    write_keyless_api(
        tmp_path,
        api_id="g",
        listen_path="/g/",
        target_url="http://up/",
        custom_middleware={"driver": "grpc", "pre": [{"name": "p"}]},
    )
    assert main(["check", "--apps", str(tmp_path)]) == EXIT_ERRORS
    out = capsys.readouterr().out
    assert "coprocess_options.enable_coprocess" in out
    assert "0 API(s) ok, 1 file(s) refused" in out
    monkeypatch.setenv("TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS", "true")
    assert main(["check", "--apps", str(tmp_path)]) == EXIT_OK


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],  # no folder at all
        ["check", "--apps", "/no/such/folder"],
        ["check", "--apps", ".", "--config", "/no/such/file.toml"],
        ["check", "--bogus"],
        ["frobnicate"],
        [],
    ],
)
def test_check_usage_errors_exit_2(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("TRIO_GATEWAY_"):
            monkeypatch.delenv(name)
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err  # says what was wrong


# -- trio-gateway run, as a subprocess ------------------------------------------------------------


@attrs.define(eq=False)
class GatewayProcess:
    """A `trio-gateway run` subprocess and what it wrote to stderr so far."""

    process: trio.Process
    stderr: bytearray = attrs.field(factory=bytearray)
    address: tuple[str, int] = ("", 0)
    _grew: trio.Event = attrs.field(factory=trio.Event)

    async def wait_for_log(self, text: str) -> str:
        """Wait until ``text`` appears in stderr; returns the line holding it."""
        with trio.fail_after(PROCESS_BOUND):
            while True:
                for line in self.stderr.decode(errors="replace").splitlines():
                    if text in line:
                        return line
                if self.process.returncode is not None:
                    raise AssertionError(f"gateway exited early:\n{self.stderr.decode()}")
                await self._grew.wait()

    async def _drain_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while chunk := await stream.receive_some():
            self.stderr += chunk
            self._grew.set()
            self._grew = trio.Event()
        self._grew.set()

    def peak_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


#: Runs `trio-gateway` under a lower limit of open files (argv[1]) than the test's.
_UNDER_FILE_LIMIT = (
    "import resource, sys; from trio_gateway._cli import main; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); sys.exit(main(sys.argv[2:]))"
)


@asynccontextmanager
async def gateway_process(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    free_port: bool = True,
    file_limit: int | None = None,
) -> AsyncIterator[GatewayProcess]:
    """Run `trio-gateway run --listen 127.0.0.1:0 ARGS...`; killed on exit if still running.

    ``env`` is added to this process's environment without its TRIO_GATEWAY_* and TYK_GW_*
    variables; ``free_port=False`` leaves the address to the configuration; ``file_limit`` is
    the process's RLIMIT_NOFILE (set in the child only).
    """
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRIO_GATEWAY_", "TYK_GW_"))
    }
    child_env.update(env or {})
    listen = ["--listen", "127.0.0.1:0"] if free_port else []
    launcher = (
        ["-m", "trio_gateway"] if file_limit is None else ["-c", _UNDER_FILE_LIMIT, str(file_limit)]
    )
    command = [sys.executable, *launcher, "run", *listen, *args]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                check=False,
                cwd=str(cwd),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # access-log lines
                stderr=subprocess.PIPE,
            )
        )
        gateway = GatewayProcess(process)
        nursery.start_soon(gateway._drain_stderr)
        line = await gateway.wait_for_log("trio-gateway listening on http://")
        host, _, port = line.rpartition("http://")[2].rpartition(":")
        gateway.address = (host, int(port))
        try:
            yield gateway
        finally:
            nursery.cancel_scope.cancel()  # run_process kills the process if it still runs


async def test_run_without_apps_serves_bundled_demo() -> None:
    # Port 0: the demo upstream takes a free port and the bundled APIs are pointed at it.
    async with gateway_process("--demo-listen", "127.0.0.1:0") as gateway:
        line = await gateway.wait_for_log("demo upstream on http://127.0.0.1:")
        demo_port = int(line.rpartition(":")[2])
        classic = await fetch(gateway.address, "GET", "/demo/hello?x=1")
        oas = await fetch(gateway.address, "GET", "/demo-oas/hello")

    assert demo_port not in (0, 8091)  # --demo-listen port 0: a free port, not the default
    for response in (classic, oas):
        assert response.status == 200
        document = response.json()
        assert document["message"] == "Hello from the trio-gateway demo upstream"
        assert document["path"] == "/hello"
        assert document["headers"]["Host"] == f"127.0.0.1:{demo_port}"
    assert classic.json()["query"] == "x=1"


@pytest.mark.parametrize(
    ("flag", "purpose"),
    [
        ("--listen", "for the gateway (listen_address/listen_port; --listen)"),
        ("--demo-listen", "for the demo upstream (demo_listen; --demo-listen)"),
        ("control_api_port", "for the control API (control_api_port)"),
    ],
)
async def test_an_address_in_use_is_named_with_what_it_was_for(flag: str, purpose: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
        args = ["--listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"]
        if flag.startswith("--"):
            args += [flag, f"127.0.0.1:{port}"]
        else:
            env.update(TRIO_GATEWAY_SECRET="s", TRIO_GATEWAY_CONTROL_API_PORT=str(port))
        result = await trio.run_process(
            [sys.executable, "-m", "trio_gateway", "run", *args],
            check=False,
            capture_stdout=True,
            capture_stderr=True,
            env=env,
            cwd=str(ROOT),
        )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert f"cannot listen on 127.0.0.1:{port} {purpose}: Address already in use" in stderr


async def test_sigterm_drains_in_flight_request_then_exits_0(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    release = trio.Event()

    async def slow(request: ReceivedRequest, reply: Reply) -> None:
        await release.wait()
        await reply.respond(200, body=b"finished")

    upstream = await start_upstream(nursery, slow)
    write_keyless_api(tmp_path, api_id="slow", listen_path="/slow/", target_url=upstream.url)

    async with gateway_process("--apps", str(tmp_path)) as gateway:
        async with open_client(gateway.address) as busy, open_client(gateway.address) as idle:
            assert (await idle.request("GET", "/nothing")).status == 404  # now idle, kept alive
            await busy.send(b"GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")
            await upstream.wait_until(lambda: len(upstream.requests) == 1)

            gateway.process.send_signal(signal.SIGTERM)
            await gateway.wait_for_log("SIGTERM: draining")
            # Draining: idle keep-alive connections are closed, new ones refused...
            assert await idle.is_closed_by_server()
            with pytest.raises(OSError, match="connect"):
                async with open_client(gateway.address):
                    pass
            assert gateway.process.returncode is None  # ...but the in-flight request goes on.

            release.set()
            response = await busy.read_response()
            assert (response.status, response.body) == (200, b"finished")
            assert response.closes

        with trio.fail_after(PROCESS_BOUND):
            returncode = await gateway.process.wait()
    assert returncode == 0, gateway.stderr.decode()


BIG = 256 * 1024 * 1024
_BLOCK = bytes(range(256)) * 4096  # 1 MiB


async def send_big_response(request: ReceivedRequest, reply: Reply) -> None:
    assert request.body_size == BIG
    await reply.start(200, [(b"Content-Type", b"application/octet-stream")], content_length=BIG)
    for _ in range(BIG // len(_BLOCK)):
        await reply.send(_BLOCK)


async def test_huge_bodies_stream_through_in_bounded_memory(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """256 MiB up (chunked) and 256 MiB down (Content-Length) through a real `trio-gateway run`
    process, generated and consumed on the fly: its peak RSS stays far below the body size."""
    upstream = await start_upstream(nursery, send_big_response, keep_bodies=False)
    write_keyless_api(tmp_path, api_id="big", listen_path="/big/", target_url=upstream.url)

    async with gateway_process("--apps", str(tmp_path)) as gateway:
        received = 0
        with trio.fail_after(120):
            async with open_client(gateway.address, read_timeout=60) as client:

                async def upload() -> None:
                    await client.send(
                        b"POST /big/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    )
                    chunk = b"%x\r\n" % len(_BLOCK) + _BLOCK + b"\r\n"
                    for _ in range(BIG // len(_BLOCK)):
                        await client.stream.send_all(chunk)
                    await client.stream.send_all(b"0\r\n\r\n")

                async with trio.open_nursery() as both:
                    both.start_soon(upload)
                    # Read the head, then count the body without keeping it.
                    head = b""
                    while b"\r\n\r\n" not in head:
                        data = await client.stream.receive_some(65536)
                        assert data, "gateway closed before the response head"
                        head += data
                    head, _, first = head.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head
                    assert b"content-length: %d" % BIG in head.lower()
                    received = len(first)
                    while received < BIG:
                        data = await client.stream.receive_some(1 << 20)
                        assert data, f"gateway closed after {received} bytes"
                        received += len(data)
        peak = gateway.peak_rss_bytes()

    assert received == BIG
    assert upstream.requests[0].body_size == BIG
    # Far below one body (256 MiB); a gateway that buffered either body would exceed it.
    assert peak < 80 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
