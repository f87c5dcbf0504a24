"""LogWriter: never blocks the caller, drops and counts when full, bounded close (real pipes)."""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing

from trio_gateway._accesslog import BufferedAccessLog
from trio_gateway._logwriter import LogWriter, QueueingStreamHandler, open_log_writer

LINE = b"x" * 99 + b"\n"  # 100 bytes


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    try:
        yield read_fd, write_fd
    finally:
        for fd in (read_fd, write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def read_until(fd: int, done: Callable[[bytes], bool], bound: float = 10.0) -> bytes:
    """Read from the pipe until ``done(data)`` (the writer thread fills it), within ``bound``."""
    data = b""
    deadline = time.monotonic() + bound
    while not done(data):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {len(data)} bytes"
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            data += os.read(fd, 1 << 20)
    return data


def test_a_stalled_reader_never_blocks_the_caller_and_drops_are_counted(
    pipe: tuple[int, int],
) -> None:
    read_fd, write_fd = pipe
    # 64 KiB of pipe + 64 KiB of buffer; 400 KiB offered: the rest is dropped, counted.
    with open_log_writer(write_fd, name="test", max_buffered_bytes=64 * 1024) as writer:
        start = time.monotonic()
        accepted = sum(writer.write_nowait(LINE * 10, lines=10) for _ in range(400))
        assert time.monotonic() - start < 1.0  # never waited for the reader
        dropped = writer.statistics().dropped_lines
        assert dropped > 0
        assert accepted * 10 + dropped == 4000
        # The reader comes back: everything accepted arrives, whole lines only.
        data = read_until(read_fd, lambda d: len(d) >= len(LINE) * accepted * 10)
        assert data == LINE * (accepted * 10)


def test_drop_notice_follows_once_the_reader_catches_up(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    writer = LogWriter(
        write_fd,
        name="test",
        max_buffered_bytes=4096,
        drop_notice=lambda n: b"NOTICE %d dropped\n" % n,
    )
    writer.start()
    try:
        for _ in range(2000):  # 200 KB into 64 KiB of pipe and 4 KiB of buffer
            writer.write_nowait(LINE)
        dropped = writer.statistics().dropped_lines
        assert dropped > 0
        data = read_until(read_fd, lambda d: d.endswith(b" dropped\n"))
        notices = [line for line in data.splitlines() if line.startswith(b"NOTICE")]
        assert len(notices) == 1  # said once for the whole stretch
        assert notices[0] == b"NOTICE %d dropped" % dropped
    finally:
        assert writer.close(5.0)


def test_close_is_bounded_when_the_reader_never_returns(pipe: tuple[int, int]) -> None:
    _, write_fd = pipe
    writer = LogWriter(write_fd, name="test", max_buffered_bytes=1 << 20)
    writer.start()
    for _ in range(2000):
        writer.write_nowait(LINE)
    start = time.monotonic()
    assert writer.close(0.3) is False  # not everything could be written ...
    assert time.monotonic() - start < 3.0  # ... and closing did not hang
    assert writer.statistics().dropped_lines > 0
    assert not writer.write_nowait(LINE)  # closed: counted as dropped


def test_logging_handler_goes_through_the_writer(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    logger = logging.getLogger("trio_gateway.test_logwriter")
    with open_log_writer(write_fd, name="test") as writer:
        handler = QueueingStreamHandler(writer)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        try:
            logger.warning("first")
            logger.warning("second\nline")
        finally:
            logger.removeHandler(handler)
    expected = b"WARNING first\nWARNING second\nline\n"
    assert read_until(read_fd, lambda d: len(d) >= len(expected)) == expected


async def test_access_log_reports_drops_once_then_periodically(
    pipe: tuple[int, int],
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, write_fd = pipe
    writer = LogWriter(write_fd, name="test", max_buffered_bytes=0)  # drops everything
    access_log = BufferedAccessLog(writer, drop_report_interval=60.0)
    caplog.set_level(logging.WARNING, "trio_gateway")

    def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if "access log" in r.getMessage()]

    writer.write_nowait(LINE * 3, lines=3)
    access_log.report_drops(trio.current_time())
    assert len(reports()) == 1
    assert "3 line(s) dropped" in reports()[0]
    for _ in range(30):  # drops go on; nothing more said within the interval
        await trio.sleep(1)
        writer.write_nowait(LINE)
        access_log.report_drops(trio.current_time())
    assert len(reports()) == 1
    await trio.sleep(30)
    access_log.report_drops(trio.current_time())
    assert len(reports()) == 2
    assert "30 more line(s) dropped" in reports()[1]
    assert "(33 in total)" in reports()[1]
    await trio.sleep(120)
    access_log.report_drops(trio.current_time())  # no new drops: nothing to say
    assert len(reports()) == 2
