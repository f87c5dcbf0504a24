"""One JSON line per request: method, path, API, status, bytes, duration.

Writing it through :mod:`logging` with a flush per line cost about half the keyless proxy's
throughput in one probe (docs/performance.md), so the command line uses
:class:`BufferedAccessLog`: lines are formatted with the C JSON string encoder and written in
batches, at most ``flush_interval`` seconds late. Embedders and tests get
:class:`LoggingAccessLog` (logger ``trio_gateway.access``), which is simple to capture.
"""

from __future__ import annotations

import logging
from json.encoder import encode_basestring_ascii as _quote
from typing import BinaryIO, Protocol

import attrs
import trio

from ._exchange import Request

_log = logging.getLogger("trio_gateway.access")


class AccessLog(Protocol):
    def record(self, request: Request, status: int, sent: int, duration: float) -> None: ...


def format_line(request: Request, status: int, sent: int, duration: float) -> str:
    """The access-log line (JSON); ``sent`` is -1 when the response could not be completed."""
    return (
        f'{{"method":{_quote(request.method)},"path":{_quote(request.path)},'
        f'"api":{_quote(request.api_id)},"status":{status},"bytes":{sent},'
        f'"duration_ms":{duration * 1000:.3f},"request_id":{_quote(request.request_id)},'
        f'"client":{_quote(request.client_addr)}}}'
    )


@attrs.define(eq=False)
class LoggingAccessLog:
    """Lines go to the ``trio_gateway.access`` logger at INFO (skipped when it is disabled)."""

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        if _log.isEnabledFor(logging.INFO):
            _log.info("%s", format_line(request, status, sent, duration))


@attrs.define(eq=False)
class BufferedAccessLog:
    """Lines buffered in memory and written to ``stream`` in batches."""

    stream: BinaryIO
    max_lines: int = 512
    _lines: list[str] = attrs.field(factory=list)

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        self._lines.append(format_line(request, status, sent, duration))
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._lines.append("")
            data = "\n".join(self._lines).encode("utf-8")
            self._lines.clear()
            try:
                self.stream.write(data)
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # stdout closed (e.g. `| head`): the gateway keeps serving

    async def run_flusher(self, interval: float = 0.5) -> None:
        """Flush every ``interval`` seconds until cancelled, then once more."""
        try:
            while True:
                await trio.sleep(interval)
                self.flush()
        finally:
            self.flush()
