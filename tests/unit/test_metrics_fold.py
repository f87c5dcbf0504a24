"""Per-API request metrics, hook calls and session store timings are counted in batches
(``ApiSeries.fold``, ``HookSeries.fold``, ``StoreTimings.fold``): whatever the batch, the counts
and sums are those of counting each one on its own, and a scrape sees everything that finished
before it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from trio_gateway._exchange import Request
from trio_gateway._metrics import BUCKETS, FOLD_EVERY, ApiSeries, GatewayMetrics, Histogram
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session
from trio_gateway._session.timed import StoreTimings, timed_store

seconds = st.one_of(
    st.sampled_from([0.0, *BUCKETS]),  # on a bound: counted in that bucket (le)
    st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
)
finished = st.tuples(
    st.integers(min_value=100, max_value=999),  # status (a hook may answer 600-999)
    seconds,  # duration
    st.one_of(st.just(-1.0), seconds),  # upstream latency, -1: never reached the upstream
)


def one_by_one(requests: list[tuple[int, float, float]]) -> ApiSeries:
    """The reference: every request counted as it finishes."""
    series = ApiSeries()
    for status, duration, upstream in requests:
        if 100 <= status < 600:
            series.by_class[status // 100 - 1] += 1
        series.total.observe(duration)
        if upstream >= 0:
            series.upstream.observe(upstream)
            series.gateway.observe(duration - upstream if duration > upstream else 0.0)
        else:
            series.gateway.observe(duration)
    return series


def same(a: Histogram, b: Histogram) -> bool:
    return a.counts == b.counts and math.isclose(a.total, b.total, rel_tol=1e-9, abs_tol=1e-9)


@given(st.lists(finished, max_size=3 * FOLD_EVERY // 2), st.integers(min_value=1, max_value=40))
def test_batched_counts_equal_counting_each_request(
    requests: list[tuple[int, float, float]], batch: int
) -> None:
    series = ApiSeries()
    for start in range(0, len(requests), batch):
        series.pending.extend(requests[start : start + batch])
        series.fold()
    expected = one_by_one(requests)
    assert series.pending == []
    assert series.by_class == expected.by_class
    assert same(series.total, expected.total)
    assert same(series.upstream, expected.upstream)
    assert same(series.gateway, expected.gateway)


def _request(api_id: str, upstream: float) -> Request:
    request = Request(method="GET", path="/", query="", headers=[])
    request.api_id = api_id
    request.upstream_latency = upstream
    return request


def test_a_scrape_counts_requests_still_pending_and_the_batch_stays_bounded() -> None:
    metrics = GatewayMetrics()
    for _ in range(FOLD_EVERY + 3):
        metrics.record(_request("a", 0.002), 200, 10, 0.003)
    metrics.record(_request("a", -1.0), 404, 10, 0.0001)
    assert len(metrics.apis["a"].pending) < FOLD_EVERY  # a full batch is counted at once
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    requests = {
        s.labels["status_class"]: s.value
        for s in families["trio_gateway_requests"].samples
        if s.name == "trio_gateway_requests_total"
    }
    assert requests == {"2xx": FOLD_EVERY + 3, "4xx": 1}
    counts = {
        s.labels["part"]: s.value
        for s in families["trio_gateway_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    total = FOLD_EVERY + 4
    assert counts == {"total": total, "upstream": total - 1, "gateway": total}
    assert metrics.apis["a"].pending == []


async def test_store_timings_are_counted_in_batches_and_all_by_a_scrape() -> None:
    # The timed store only appends each operation's duration; a full batch is counted at once,
    # and a scrape counts the rest, errors apart.
    metrics = GatewayMetrics()
    metrics.store = StoreTimings()
    store = timed_store(MemorySessionStore(), metrics.store)
    await store.put_session("k", Session())
    for _ in range(FOLD_EVERY + 5):
        assert await store.get_session("k") is not None
    assert await store.get_session("missing") is None
    assert len(metrics.store.pending["get_session"]) < FOLD_EVERY
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    counts = {
        s.labels["operation"]: s.value
        for s in families["trio_gateway_session_store_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts == {"put_session": 1, "get_session": FOLD_EVERY + 6}
    sums = [
        s.value
        for s in families["trio_gateway_session_store_duration_seconds"].samples
        if s.name.endswith("_sum") and s.labels["operation"] == "get_session"
    ]
    assert sums[0] > 0
    assert metrics.store.pending["get_session"] == []


def test_hook_calls_that_went_well_are_counted_in_batches_and_all_by_a_scrape() -> None:
    metrics = GatewayMetrics()
    series = metrics.hook_series("a", "pre", "pre[0] check", "python")
    for _ in range(FOLD_EVERY + 3):
        series.ok(0.0002)
    series.failed("error", 0.03, failed_open=False)
    assert len(series.pending_ok) < FOLD_EVERY
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    outcomes = {
        s.labels["outcome"]: s.value
        for s in families["trio_gateway_hook_outcomes"].samples
        if s.name == "trio_gateway_hook_outcomes_total"
    }
    assert outcomes["ok"] == FOLD_EVERY + 3
    assert outcomes["error"] == 1
    latency = {
        (s.name, s.labels.get("le")): s.value
        for s in families["trio_gateway_hook_duration_seconds"].samples
    }
    assert latency["trio_gateway_hook_duration_seconds_count", None] == FOLD_EVERY + 4
    assert latency["trio_gateway_hook_duration_seconds_bucket", "0.0005"] == FOLD_EVERY + 3
    assert math.isclose(
        latency["trio_gateway_hook_duration_seconds_sum", None], (FOLD_EVERY + 3) * 0.0002 + 0.03
    )
    assert series.pending_ok == []
