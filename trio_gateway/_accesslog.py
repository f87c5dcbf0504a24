"""One JSON line per request: method, path, API, status, bytes, duration.

Writing it through :mod:`logging` with a flush per line cost about half the keyless proxy's
throughput in one probe (docs/performance.md), so the command line uses
:class:`BufferedAccessLog`: lines are formatted with the C JSON string encoder and handed in
batches, at most ``interval`` seconds late, to a :class:`~._logwriter.LogWriter`, whose own
thread writes them to stdout. The event loop never writes to stdout itself: a reader that
stalls costs dropped (and counted) lines, never a blocked request (docs/reliability.md).
Embedders and tests get :class:`LoggingAccessLog` (logger ``trio_gateway.access``), which is
simple to capture.
"""

from __future__ import annotations

import logging
import math
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from ._exchange import Request
from ._logwriter import LogWriter

if TYPE_CHECKING:
    from ._apidef.model import Stage

_log = logging.getLogger("trio_gateway.access")
#: Where drops are reported (stderr): the access log's own stream is the one not keeping up.
log = logging.getLogger("trio_gateway")


class AccessLog(Protocol):
    def record(self, request: Request, status: int, sent: int, duration: float) -> None: ...


class NoAccessLog:
    """The access log switched off (below INFO): records nothing, and the gateway leaves it
    out of the request path altogether (``_observe``)."""

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        pass


def format_line(request: Request, status: int, sent: int, duration: float) -> str:
    """The access-log line (JSON); ``sent`` is -1 when the response could not be completed.

    ``upstream_ms`` (the upstream's part of ``duration_ms``) and ``trace_id`` (W3C) appear once
    the request was routed and sent upstream; ``stages_ms`` (milliseconds per hook stage) once a
    plugin hook ran."""
    trace = request.trace
    upstream = request.upstream_latency
    return (
        f'{{"method":{_quote(request.method)},"path":{_quote(request.path)},'
        f'"api":{_quote(request.api_id)},"status":{status},"bytes":{sent},'
        f'"duration_ms":{duration * 1000:.3f},'
        + (f'"upstream_ms":{upstream * 1000:.3f},' if upstream >= 0 else "")
        + f'"request_id":{_quote(request.request_id)},'
        + (f'"trace_id":"{trace.trace_id}",' if trace is not None else "")
        + (_stages(request.stage_times) if request.stage_times else "")
        + f'"client":{_quote(request.client_addr)}}}'
    )


def _stages(times: dict[Stage, float]) -> str:
    """``"stages_ms":{"pre":0.120,"post":0.031},``: the time each hook stage took."""
    inner = ",".join(f'"{stage.value}":{seconds * 1000:.3f}' for stage, seconds in times.items())
    return f'"stages_ms":{{{inner}}},'


@attrs.define(eq=False)
class LoggingAccessLog:
    """Lines go to the ``trio_gateway.access`` logger at INFO (skipped when it is disabled)."""

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        if _log.isEnabledFor(logging.INFO):
            _log.info("%s", format_line(request, status, sent, duration))


@attrs.define(eq=False)
class BufferedAccessLog:
    """Lines batched in memory and handed to ``writer`` (which never blocks)."""

    writer: LogWriter
    max_lines: int = 512
    #: Seconds between two reports of dropped lines while drops go on.
    drop_report_interval: float = 60.0
    _lines: list[str] = attrs.field(factory=list)
    _reported_drops: int = attrs.field(init=False, default=0)
    _next_report: float = attrs.field(init=False, default=-math.inf)

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        self._lines.append(format_line(request, status, sent, duration))
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        lines = self._lines
        if lines:
            count = len(lines)
            lines.append("")
            data = "\n".join(lines).encode("utf-8")
            lines.clear()
            self.writer.write_nowait(data, lines=count)

    def report_drops(self, now: float) -> None:
        """Say that lines are being dropped: at once the first time, then at most once per
        ``drop_report_interval`` with the count (gateway log, i.e. stderr)."""
        dropped = self.writer.statistics().dropped_lines
        new = dropped - self._reported_drops
        if not new or now < self._next_report:
            return
        if not self._reported_drops:
            log.warning(
                "access log: stdout is not read fast enough; %d line(s) dropped "
                "(requests are not held up; a count follows every %.0f s while this lasts)",
                new,
                self.drop_report_interval,
            )
        else:
            log.warning(
                "access log: %d more line(s) dropped, stdout not read fast enough (%d in total)",
                new,
                dropped,
            )
        self._reported_drops = dropped
        self._next_report = now + self.drop_report_interval

    async def run_flusher(self, interval: float = 0.5) -> None:
        """Flush every ``interval`` seconds until cancelled, then once more (the writer's
        owner writes out what is buffered, bounded in time, when it closes it)."""
        try:
            while True:
                await trio.sleep(interval)
                self.flush()
                self.report_drops(trio.current_time())
        finally:
            self.flush()
