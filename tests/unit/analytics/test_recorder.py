"""The recorder's bounds: a full buffer drops (and counts) instead of growing, a failing sink
drops the batch, and stopping flushes what is buffered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import msgpack
import trio
import trio.testing

from trio_gateway._analytics.record import AnalyticsRecord, to_msgpack
from trio_gateway._analytics.recorder import AnalyticsRecorder, raw_exchange
from trio_gateway._analytics.sinks import SinkError
from trio_gateway._apidef.model import ApiDefinition
from trio_gateway._exchange import Request, Response

API = ApiDefinition(api_id="a", listen_path="/a/", target_url="http://u/")


@attrs.define
class ListSink:
    """Keeps what it is given, decoded (the recorder's fast msgpack encoder is used)."""

    stored: list[dict[str, Any]] = attrs.field(factory=list)
    failing: bool = False
    closed: bool = False
    msgpack: bool = True

    def encode(self, record: AnalyticsRecord) -> bytes:
        return to_msgpack(record)

    async def write(self, items: Sequence[bytes]) -> None:
        await trio.lowlevel.checkpoint()
        if self.failing:
            raise SinkError("down")
        self.stored.extend(msgpack.unpackb(item, raw=False) for item in items)

    async def aclose(self) -> None:
        self.closed = True


def request(path: str = "/a/x") -> Request:
    return Request(method="GET", path=path, query="", headers=[], client_addr="10.0.0.1")


async def test_a_full_buffer_drops_and_counts() -> None:
    sink = ListSink()
    recorder = AnalyticsRecorder(sink=sink, max_buffered=3, batch_size=100)
    for _ in range(5):
        recorder.record(API, request(), 200, 0.01)
    stats = recorder.statistics()
    assert (stats.buffered, stats.dropped_full) == (3, 2)
    await recorder.flush()
    assert len(sink.stored) == 3
    assert recorder.statistics().written == 3


async def test_a_failing_sink_drops_the_batch_and_the_next_goes_through() -> None:
    sink = ListSink(failing=True)
    recorder = AnalyticsRecorder(sink=sink)
    recorder.record(API, request(), 200, 0.01)
    await recorder.flush()
    assert recorder.statistics().dropped_sink == 1
    sink.failing = False
    recorder.record(API, request("/a/y"), 200, 0.01)
    await recorder.flush()
    assert [r["OriginalPath"] for r in sink.stored] == ["/a/y"]


async def test_the_writer_flushes_on_its_interval_and_on_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = ListSink()
    recorder = AnalyticsRecorder(sink=sink, flush_interval=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        recorder.record(API, request(), 200, 0.01)
        await recorder.wait_until(lambda s: s.written == 1)
        recorder.record(API, request("/a/last"), 200, 0.01)
        nursery.cancel_scope.cancel()
    assert [r["OriginalPath"] for r in sink.stored] == ["/a/x", "/a/last"]
    assert sink.closed


def test_raw_exchange_is_bounded() -> None:
    req = request()
    req.set_body(b"x" * 100)
    req.response = Response(status=201, headers=[(b"A", b"b")], body_bytes=b"y" * 100)
    raw_request, raw_response = raw_exchange(req, 201, 40)
    assert raw_request == (b"GET /a/x HTTP/1.1\r\n\r\n" + b"x" * 100)[:40]
    assert raw_response == (b"HTTP/1.1 201\r\nA: b\r\n\r\n" + b"y" * 100)[:40]
