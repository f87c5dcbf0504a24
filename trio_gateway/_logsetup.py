"""Where the gateway's logs go: gateway messages to stderr, access-log lines to stdout, each
through a :class:`~trio_gateway._logwriter.LogWriter` thread (so a slow reader never blocks the
event loop). Used by the command line and by each worker process (``_workers``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._accesslog import AccessLog, BufferedAccessLog, NoAccessLog
from ._logwriter import LogWriter, QueueingStreamHandler, open_log_writer

__all__ = ["TEXT_FORMAT", "configure_logging", "stderr_logging", "stdout_access_log"]


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str, writer: LogWriter | None = None, *, text_format: str = TEXT_FORMAT
) -> None:
    """Gateway messages to stderr as text (access-log lines go to stdout, see ``_run``).

    With ``writer`` (see :func:`stderr_logging`) the lines go through its bounded buffer and
    thread, so a stalled stderr reader never blocks the event loop; without one, straight to
    ``sys.stderr`` (before and after the gateway runs).
    """
    root = logging.getLogger("trio_gateway")
    root.setLevel(level.upper())
    root.propagate = False
    root.handlers.clear()
    text: logging.Handler = (
        QueueingStreamHandler(writer) if writer is not None else logging.StreamHandler(sys.stderr)
    )
    text.setFormatter(logging.Formatter(text_format))
    root.addHandler(text)


def _stderr_drop_notice(count: int) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{stamp} WARNING trio_gateway: {count} log line(s) dropped: stderr was not read fast "
        "enough (requests were not held up)\n"
    ).encode()


@contextmanager
def stderr_logging(level: str, *, text_format: str = TEXT_FORMAT) -> Iterator[None]:
    """Gateway messages through a stderr :class:`LogWriter` for the duration; on exit what is
    buffered is written out (bounded in time) and logging goes straight to stderr again."""
    fd = _fileno(sys.stderr)
    if fd is None:  # started with stderr closed: logging.StreamHandler copes on its own
        configure_logging(level, text_format=text_format)
        yield
        return
    with open_log_writer(fd, name="stderr", drop_notice=_stderr_drop_notice) as writer:
        configure_logging(level, writer, text_format=text_format)
        try:
            yield
        finally:
            configure_logging(level, text_format=text_format)


@contextmanager
def stdout_access_log(enabled: bool) -> Iterator[AccessLog]:
    """The access log: batches of JSON lines to stdout through a :class:`LogWriter` (owned
    here: flushed, bounded in time, when the block ends)."""
    fd = _fileno(sys.stdout) if enabled else None
    if fd is None:
        yield NoAccessLog()
        return
    with open_log_writer(fd, name="stdout") as writer:
        yield BufferedAccessLog(writer)


def _fileno(stream: Any) -> int | None:
    """The descriptor under ``stream`` (flushed first: the writer thread bypasses it), or None
    when there is none (the process was started with it closed)."""
    try:
        stream.flush()
        fd: int = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd
