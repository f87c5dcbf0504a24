"""The pytest plugin (entry point ``pytest11``: ``trio_gateway``): the kit's fixtures with no
``conftest.py``. Cheap to import: the harness and Hypothesis load when a fixture is used.

The fixture names are the project's (STYLE.md §8): ``gateway``, ``fake_upstream``,
``session_store``. ``gateway_harness`` (plain :func:`open_harness`) is the kit's first name for
``gateway``, kept as an alias; ``plugin_battery`` runs the battery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trio_gateway.hooks import Session

    from ._fake_upstream import FakeUpstream


@pytest.fixture
def fake_upstream() -> FakeUpstream:
    """The upstream ``gateway`` serves against: queue replies, read ``seen`` afterwards."""
    from ._fake_upstream import FakeUpstream

    return FakeUpstream()


@pytest.fixture
def session_store() -> dict[str, Session]:
    """Sessions by key that ``gateway`` stores before the first request (fill it first)."""
    return {}


@pytest.fixture
def gateway(fake_upstream: FakeUpstream, session_store: dict[str, Session]) -> Callable[..., Any]:
    """:func:`trio_gateway.testing.open_harness` against ``fake_upstream`` with the sessions in
    ``session_store`` (either may be overridden per call): ``async with gateway(api) as h:``."""
    from .harness import open_harness

    def open_gateway(source: Any, **options: Any) -> Any:
        options.setdefault("upstream", fake_upstream)
        options.setdefault("sessions", session_store)
        return open_harness(source, **options)

    return open_gateway


@pytest.fixture
def gateway_harness() -> Callable[..., Any]:
    """:func:`trio_gateway.testing.open_harness` (an alias kept for ``gateway``'s first name)."""
    from .harness import open_harness

    return open_harness


@pytest.fixture
def plugin_battery() -> Callable[..., Any]:
    """:func:`trio_gateway.testing.battery.check_plugin`, to run the whole battery in a test."""
    from .battery import check_plugin

    return check_plugin
