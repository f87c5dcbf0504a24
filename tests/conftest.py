"""Fixtures shared by the whole suite."""

from __future__ import annotations

import math

import pytest

pytest_plugins = ["tests.conftest_redis"]


@pytest.fixture(autouse=True)
def _plugin_loads_unbounded_under_autojump(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under an autojump clock, a plugin import running in a worker thread lets the clock jump
    straight to the next deadline -- the bound on loading plugins -- so it would always fire.
    Tests that jump the clock mean their own deadlines; one that tests the load bound sets it."""
    if "autojump_clock" in request.fixturenames:
        monkeypatch.setattr("trio_gateway._pipeline.build.PLUGIN_LOAD_TIMEOUT", math.inf)
