"""Log output written by a dedicated thread through a bounded buffer.

A write to stdout or stderr is a blocking system call once the reader stalls (a log shipper,
``docker logs``, a paused terminal): made from the event loop, it froze every connection after
~370 requests (docs/reliability.md, "Slow log reader"). So the loop only hands finished bytes to
a :class:`LogWriter`, which never blocks: the bytes wait in a bounded buffer, and a thread of
the writer's own writes them out. When the buffer is full, the new bytes are dropped and their
lines counted — a stalled reader costs log lines, never requests.

The thread writes whole lines, at most ``PIPE_BUF`` bytes at a time, and only after ``poll``
says the descriptor is writable (for a pipe: a page is free). So:

* a write cannot block on a stalled pipe or socket (the thread waits in ``poll``, where it sees
  :meth:`LogWriter.close`'s deadline), and shutdown stays bounded;
* writes of several processes (``--workers``) or of stdout and stderr sharing one pipe stay
  whole lines: the kernel keeps a pipe write of at most ``PIPE_BUF`` bytes in one piece.

Regular files never block that way and get whole buffers in one write.

The thread is owned by whoever opens the writer (:func:`open_log_writer`, a context manager);
the command line opens one for stdout (access log) and one for stderr (gateway messages) around
``trio.run``, and closing flushes what is buffered within a time bound.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import attrs

__all__ = [
    "DEFAULT_MAX_BUFFERED_BYTES",
    "FLUSH_TIMEOUT",
    "LogWriter",
    "LogWriterStatistics",
    "QueueingStreamHandler",
    "open_log_writer",
    "piece_end",
    "whole_line_pieces",
]

#: Bytes a writer holds for a slow reader before it drops (~4 s of access log at 10k req/s);
#: at most as much again is in the thread's hands, being written.
DEFAULT_MAX_BUFFERED_BYTES: Final = 8 * 1024 * 1024
#: Seconds closing a writer may spend writing out what is buffered (graceful shutdown).
FLUSH_TIMEOUT: Final = 2.0
#: How long the thread waits in one ``poll`` before it looks at its close deadline again.
_POLL_MS: Final = 100


def piece_end(data: bytes, start: int, limit: int = select.PIPE_BUF) -> int:
    """Where the write starting at ``start`` ends: after the last line end within ``limit``
    bytes (a line longer than ``limit`` goes alone: it cannot stay whole anyway)."""
    end = min(start + limit, len(data))
    if end < len(data):
        cut = data.rfind(b"\n", start, end)
        end = cut + 1 if cut >= 0 else (data.find(b"\n", end) + 1 or len(data))
    return end


def whole_line_pieces(data: bytes, limit: int = select.PIPE_BUF) -> Iterator[bytes]:
    """``data`` cut at line ends into pieces of at most ``limit`` bytes (a longer line alone)."""
    start = 0
    while start < len(data):
        end = piece_end(data, start, limit)
        yield data[start:end]
        start = end


@attrs.frozen(kw_only=True)
class LogWriterStatistics:
    #: Bytes waiting in the buffer.
    buffered_bytes: int
    #: Lines dropped because the buffer was full (or the descriptor broken/closed).
    dropped_lines: int


@attrs.define(eq=False)
class LogWriter:
    """Writes bytes to ``fd`` from its own thread; :meth:`write_nowait` never blocks."""

    fd: int
    name: str = "log"
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    #: Bytes written after a stretch of dropped lines, once the reader caught up (given the
    #: count); None writes nothing (the access log reports drops through the gateway's log).
    drop_notice: Callable[[int], bytes] | None = None

    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _wakeup: threading.Condition = attrs.field(init=False)
    _queue: collections.deque[bytes] = attrs.field(init=False, factory=collections.deque)
    _buffered: int = attrs.field(init=False, default=0)
    _dropped_lines: int = attrs.field(init=False, default=0)
    _unnoticed_drops: int = attrs.field(init=False, default=0)
    _closing: bool = attrs.field(init=False, default=False)
    #: Set when the close deadline passed: the thread gives up on what is left.
    _give_up: threading.Event = attrs.field(init=False, factory=threading.Event)
    _broken: bool = attrs.field(init=False, default=False)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._wakeup = threading.Condition(self._lock)

    # -- any thread (the event loop) ------------------------------------------------------

    def write_nowait(self, data: bytes, lines: int = 1) -> bool:
        """Queue ``data`` (``lines`` lines) for writing; False if it was dropped (counted)."""
        with self._lock:
            if (
                self._closing
                or self._broken
                or self._buffered + len(data) > self.max_buffered_bytes
            ):
                self._dropped_lines += lines
                self._unnoticed_drops += lines
                return False
            self._queue.append(data)
            self._buffered += len(data)
            self._wakeup.notify()
        return True

    def statistics(self) -> LogWriterStatistics:
        with self._lock:
            return LogWriterStatistics(
                buffered_bytes=self._buffered, dropped_lines=self._dropped_lines
            )

    # -- lifetime -------------------------------------------------------------------------

    def start(self) -> None:
        # A daemon thread: if the reader never comes back, the process can still exit.
        self._thread = threading.Thread(
            target=self._run, name=f"trio-gateway {self.name} writer", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Write out what is buffered within ``timeout`` seconds, then stop the thread.

        Returns whether everything was written. Idempotent.
        """
        with self._lock:
            self._closing = True
            self._wakeup.notify()
        thread = self._thread
        if thread is None:
            return not self._queue
        thread.join(timeout)
        if thread.is_alive():
            self._give_up.set()  # seen by the thread within one poll interval
            thread.join(1.0)
        with self._lock:
            return not self._queue and not self._give_up.is_set()

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        regular = _is_regular_file(self.fd)
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wakeup.wait()
                if not self._queue:
                    return
                # Take the batches and join them outside the lock: the loop never waits on a copy.
                batches, self._queue = self._queue, collections.deque()
                self._buffered = 0
            data = b"".join(batches)
            if not self._write(data, regular, poller):
                return
            notice = b""
            with self._lock:
                if self._unnoticed_drops and not self._queue and self.drop_notice is not None:
                    notice = self.drop_notice(self._unnoticed_drops)
                    self._unnoticed_drops = 0
            if notice and not self._write(notice, regular, poller):
                return

    def _write(self, data: bytes, regular: bool, poller: select.poll) -> bool:
        """Write ``data`` whole; False when the descriptor broke or the close deadline passed
        (what is left is counted as dropped)."""
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            if self._give_up.is_set():
                self._drop_from(data, pos)
                return False
            if regular:
                end = len(data)
            elif not poller.poll(_POLL_MS):
                continue
            else:
                end = piece_end(data, pos)
            try:
                pos += os.write(self.fd, view[pos:end])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # EPIPE (the reader is gone), EBADF: nothing more can be written
                with self._lock:
                    self._broken = True
                self._drop_from(data, pos)
                return False
        return True

    def _drop_from(self, data: bytes, pos: int) -> None:
        with self._lock:
            lost = data.count(b"\n", pos) + sum(chunk.count(b"\n") for chunk in self._queue)
            self._queue.clear()
            self._buffered = 0
            self._dropped_lines += lost


def _is_regular_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


@contextmanager
def open_log_writer(
    fd: int,
    *,
    name: str,
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    drop_notice: Callable[[int], bytes] | None = None,
    flush_timeout: float = FLUSH_TIMEOUT,
) -> Iterator[LogWriter]:
    """A started :class:`LogWriter` on ``fd``, flushed (bounded) and stopped on exit."""
    writer = LogWriter(
        fd, name=name, max_buffered_bytes=max_buffered_bytes, drop_notice=drop_notice
    )
    writer.start()
    try:
        yield writer
    finally:
        writer.close(flush_timeout)


class QueueingStreamHandler(logging.Handler):
    """A logging handler that formats on the caller's thread and hands the line to a
    :class:`LogWriter` (never blocks; a full buffer drops the line and counts it)."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        data = (text + "\n").encode("utf-8", "backslashreplace")
        self.writer.write_nowait(data, lines=text.count("\n") + 1)
