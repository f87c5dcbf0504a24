from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_gateway._ratelimit import (
    LimitOutcome,
    Limits,
    QuotaState,
    admit_rate,
    apply_limits,
    consume_quota,
    rate_window,
)


@settings(max_examples=300)
@given(
    rate=st.integers(1, 6),
    per=st.integers(1, 20),
    gaps=st.lists(st.integers(0, 40), min_size=1, max_size=80),
)
def test_no_window_of_per_seconds_admits_more_than_rate(
    rate: int, per: int, gaps: list[int]
) -> None:
    # Times on a 1/8 s grid keep the float arithmetic exact.
    log: deque[float] = deque()
    now = 1000.0
    admitted: list[float] = []
    for gap in gaps:
        now += gap / 8
        if admit_rate(log, rate, per, now).allowed:
            admitted.append(now)
    for i in range(len(admitted) - rate):
        assert admitted[i + rate] - admitted[i] >= per
    assert len(log) <= rate


@given(rate=st.integers(1, 6), per=st.integers(1, 20), burst=st.integers(0, 20))
def test_a_burst_gets_exactly_rate_through(rate: int, per: int, burst: int) -> None:
    log: deque[float] = deque()
    results = [admit_rate(log, rate, per, 5.0) for _ in range(burst)]
    assert sum(r.allowed for r in results) == min(rate, burst)


def test_rate_window_rounds_down_and_stretches_slow_rates() -> None:
    assert rate_window(2.9, 10) == (2, 10)
    assert rate_window(0.5, 10) == (1, 20.0)


@given(
    quota_max=st.integers(1, 5),
    renewal=st.integers(0, 30),
    gaps=st.lists(st.integers(0, 20), max_size=60),
)
def test_quota_remaining_never_negative_and_never_exceeded(
    quota_max: int, renewal: int, gaps: list[int]
) -> None:
    state = QuotaState()
    now = 50.0
    period_start = None
    counted = 0
    for gap in gaps:
        now += gap
        result = consume_quota(state, quota_max, renewal, now)
        assert 0 <= result.remaining <= quota_max
        if renewal and (period_start is None or now >= period_start + renewal):
            period_start, counted = now, 0
        assert result.allowed == (counted < quota_max)
        if result.allowed:
            counted += 1
        assert result.remaining == quota_max - counted


def test_apply_limits_checks_rate_before_quota() -> None:
    limits = Limits(rate=1, per=10, quota_max=1)
    log: deque[float] = deque()
    quota = QuotaState()
    assert apply_limits(log, quota, limits, 0).outcome is LimitOutcome.ALLOWED
    assert apply_limits(log, quota, limits, 1).outcome is LimitOutcome.RATE_LIMITED
    assert apply_limits(log, quota, limits, 11).outcome is LimitOutcome.QUOTA_EXCEEDED
    unlimited = apply_limits(None, None, Limits(), 0)
    assert unlimited.allowed
    assert unlimited.rate is None
    assert unlimited.quota is None
