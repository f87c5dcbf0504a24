"""Request bodies that plugin hooks read whole are bounded by ``hooks.max_body_bytes``: a body
announced larger is answered 413 before any of it is read, a chunked one at the limit; a body
within it reaches the hook and the upstream whole. (Hook-less APIs stream any size.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.upstream import RawUpstream, start_upstream
from trio_gateway._config.model import GatewayConfig, HooksConfig

LIMIT = 64 * 1024

HOOKS = """
async def reads(ctx):
    body = await ctx.request.read_body()
    ctx.request.set_header("x-hook-saw", str(len(body)))

async def reads_capped(ctx):
    await ctx.request.read_body(limit=1000)

async def response_reads(ctx):
    body = await ctx.request.read_body()
    ctx.response.set_header("x-request-body-seen", str(len(body)))
"""


async def gateway(
    nursery: trio.Nursery, tmp_path: Path, hook: dict[str, object], stage: str = "pre"
) -> tuple[tuple[str, int], RawUpstream]:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hooks.py").write_text(HOOKS)
    write_keyless_api(
        apps,
        api_id="hooked",
        listen_path="/hooked/",
        target_url=upstream.url,
        custom_middleware={"driver": "python", stage: [hook]},
    )
    config = GatewayConfig(hooks=HooksConfig(max_body_bytes=LIMIT))
    gw = await start_gateway(nursery, apps, config=config)
    return gw.address, upstream


async def read_head(stream: trio.SocketStream) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        data = await stream.receive_some()
        assert data, received
        received += data
    return received


async def post(address: tuple[str, int], framing: bytes, body: bytes = b"") -> bytes:
    """POST ``framing`` (the framing headers and the blank line) + ``body``; the answer's head."""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(b"POST /hooked/x HTTP/1.1\r\nHost: t\r\n" + framing + body)
        with trio.fail_after(5):
            return await read_head(stream)


def with_length(body: bytes) -> bytes:
    return b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)


READS = {"name": "reads", "path": "hooks.py"}


async def test_a_body_announced_over_the_limit_is_413_before_it_is_sent(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address, upstream = await gateway(nursery, tmp_path, READS)
    # Only the head: the answer must not wait for 10 MB that would be refused anyway.
    head = await post(address, b"Content-Length: 10000000\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()
    assert upstream.requests == []


async def test_a_chunked_body_is_cut_off_at_the_limit(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address, upstream = await gateway(nursery, tmp_path, READS)
    stream = await trio.open_tcp_stream(*address)
    sent = 0

    async def send_forever() -> None:
        nonlocal sent
        await stream.send_all(
            b"POST /hooked/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        try:
            while True:
                await stream.send_all(chunk)
                sent += 0x4000
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with stream, trio.open_nursery() as clients:
        clients.start_soon(send_forever)
        # The body never ends: the answer comes once the limit is passed.
        with trio.fail_after(5):
            head = await read_head(stream)
        clients.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.1 413")
    assert sent > LIMIT
    assert upstream.requests == []


async def test_a_body_within_the_limit_reaches_the_hook_and_the_upstream(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address, upstream = await gateway(nursery, tmp_path, READS)
    body = b"y" * LIMIT
    head = await post(address, with_length(body), body)
    assert head.startswith(b"HTTP/1.1 200")
    (received,) = upstream.requests
    assert received.body == body
    assert (b"x-hook-saw", str(LIMIT).encode()) in [(k.lower(), v) for k, v in received.headers]


@pytest.mark.parametrize("length", [5000])
async def test_a_fail_open_hook_over_its_own_limit_is_413_not_a_truncated_forward(
    nursery: trio.Nursery, tmp_path: Path, length: int
) -> None:
    """The client's oversized body is the client's error: a fail-open policy must not send the
    upstream a body the hook already half read."""
    hook = {"name": "reads_capped", "path": "hooks.py", "failure_mode": "open"}
    address, upstream = await gateway(nursery, tmp_path, hook)
    framing = b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    head = await post(address, framing, b"%x\r\n" % length + b"z" * length + b"\r\n0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert upstream.requests == []


async def test_a_response_hook_after_a_large_streamed_upload_does_not_turn_it_into_413(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With only a Response hook the upload streams to the upstream; the hook that reads the
    request body afterwards finds it spent, not over the limit."""
    hook = {"name": "response_reads", "path": "hooks.py"}
    address, upstream = await gateway(nursery, tmp_path, hook, stage="response")
    body = b"u" * (LIMIT * 4)
    head = await post(address, with_length(body), body)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"x-request-body-seen: 0" in head.lower()
    assert upstream.requests[0].body == body


async def test_a_client_that_sends_its_whole_body_before_reading_still_gets_the_413(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The 413 goes out before the body is read; closing on unread bytes would make the kernel
    reset the connection, and a client that reads only after sending would lose the answer.
    The gateway half-closes and drains (bounded) instead."""
    address, upstream = await gateway(nursery, tmp_path, READS)
    body = b"w" * (4 * LIMIT)
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        with trio.fail_after(5):
            try:
                await stream.send_all(
                    b"POST /hooked/x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                    % len(body)
                    + body
                )
                received = b""
                while data := await stream.receive_some():
                    received += data
            except trio.BrokenResourceError:
                pytest.fail("connection reset by the gateway")
    assert received.startswith(b"HTTP/1.1 413")
    assert upstream.requests == []
