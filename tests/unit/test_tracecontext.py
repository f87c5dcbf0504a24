"""W3C traceparent parsing and starting (https://www.w3.org/TR/trace-context/ §3.2)."""

from __future__ import annotations

import pytest

from trio_gateway._tracecontext import parse_traceparent, start_trace, trace_for

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_kept() -> None:
    context = parse_traceparent(VALID, b"k=v")
    assert context is not None
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert context.parent_id == "00f067aa0ba902b7"
    assert context.sampled
    assert context.header == VALID
    assert context.tracestate == b"k=v"


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        VALID + b"-extra",  # version 00 has exactly four fields
        b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparents_are_refused(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_with_more_fields_is_read() -> None:
    context = parse_traceparent(b"01" + VALID[2:] + b"-more")
    assert context is not None
    assert context.header == VALID


def test_started_traces_are_valid_and_distinct() -> None:
    first, second = start_trace(), start_trace()
    assert first.trace_id != second.trace_id
    parsed = parse_traceparent(first.header)
    assert parsed is not None
    assert parsed.trace_id == first.trace_id
    assert first.started
    assert not first.sampled


def test_trace_for_replaces_an_invalid_header_and_its_state() -> None:
    headers = [(b"Traceparent", b"garbage"), (b"TraceState", b"a=1"), (b"X", b"y")]
    context = trace_for(headers)
    assert context.started
    assert headers == [(b"X", b"y"), (b"traceparent", context.header)]
    kept = [(b"traceparent", VALID)]
    assert trace_for(kept).header == VALID
    assert kept == [(b"traceparent", VALID)]


def test_started_traces_stay_valid_and_distinct_across_refills_of_the_random_pool() -> None:
    # The ids come from a pool of random digits refilled every 512 traces: across refills each
    # trace is still a valid, parseable traceparent, and no id repeats.
    traces = [start_trace() for _ in range(3 * 512 + 7)]
    assert len({t.trace_id for t in traces}) == len(traces)
    assert len({t.parent_id for t in traces}) == len(traces)
    for trace in traces:
        parsed = parse_traceparent(trace.header)
        assert parsed is not None
        assert (parsed.trace_id, parsed.parent_id, parsed.flags) == (
            trace.trace_id,
            trace.parent_id,
            "00",
        )
        assert trace.started
        assert not trace.sampled


def test_a_random_pool_with_an_all_zero_id_in_it_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An all-zero id is invalid (§3.2.2.3). The first draw here is all zeros: the pool must be
    # drawn again rather than hand out "000…" ids to the next traces.
    import os

    from trio_gateway import _tracecontext

    draws = [bytes(24 * 512)]
    real_urandom = os.urandom

    def urandom(size: int) -> bytes:
        return draws.pop() if draws else real_urandom(size)

    monkeypatch.setattr(_tracecontext.os, "urandom", urandom)
    monkeypatch.setattr(_tracecontext, "_pool", _tracecontext._HexPool())
    headers: list[tuple[bytes, bytes]] = []
    trace = trace_for(headers)
    assert not draws  # the zeros were drawn, and refused
    assert parse_traceparent(trace.header) is not None
    assert trace.trace_id != "0" * 32
    assert trace.parent_id != "0" * 16
    assert headers == [(b"traceparent", trace.header)]
