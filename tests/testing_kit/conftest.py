"""The kit's own tests: a small Hypothesis profile and short shrinking, so the directory stays
fast (the planted bugs are found within it; see docs/testing.md)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

#: Enough examples to find every planted bug, few enough to stay fast; the same examples on
#: every run, so the suite stays deterministic.
CI = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _short_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bugs whose examples take real time (a blocking call, a slow server) shrink for
    at most 3 s here."""
    monkeypatch.setattr("trio_gateway.testing._runner.SHRINK_BUDGET", 3.0)
