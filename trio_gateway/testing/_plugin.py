"""The pytest plugin (entry point ``pytest11``: ``trio_gateway``): the kit's fixtures with no
``conftest.py``. Cheap to import: the harness and Hypothesis load when a fixture is used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def gateway_harness() -> Callable[..., Any]:
    """:func:`trio_gateway.testing.open_harness`: ``async with gateway_harness(api) as h:``."""
    from .harness import open_harness

    return open_harness


@pytest.fixture
def plugin_battery() -> Callable[..., Any]:
    """:func:`trio_gateway.testing.battery.check_plugin`, to run the whole battery in a test."""
    from .battery import check_plugin

    return check_plugin
