"""FailureLog: repeated failures summarised per key and interval (MockClock, no sockets)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trio_gateway._logsummary import FailureLog, describe_exception, run_failure_log_sweeper

LOGGER = logging.getLogger("trio_gateway.test_logsummary")


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER.name and r.levelno == level]


def refused() -> OSError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError("plugin server unreachable") from exc
    except RuntimeError as outer:
        return outer


def test_describe_exception_names_type_message_and_causes() -> None:
    assert describe_exception(ValueError("bad")) == "ValueError: bad"
    assert describe_exception(ValueError()) == "ValueError"
    assert describe_exception(refused()) == (
        "RuntimeError: plugin server unreachable <- ConnectionRefusedError: [Errno 111] "
        "Connection refused"
    )
    # A wrapper that already quotes its cause's text does not repeat it.
    outer = RuntimeError("store: down")
    outer.__cause__ = OSError("down")
    assert describe_exception(outer) == "RuntimeError: store: down"


async def test_one_line_per_key_per_interval_then_a_count(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.WARNING, LOGGER.name)
    failures = FailureLog(LOGGER, interval=10.0)
    for _ in range(500):
        failures.warning(("api-a", "unavailable"), "hook failed: api=api-a", refused())
        failures.warning(("api-b", "unavailable"), "hook failed: api=api-b", refused())
        await trio.sleep(0.01)
    first = lines(caplog)
    assert len(first) == 2  # one per API, each naming the cause
    assert all("ConnectionRefusedError: [Errno 111] Connection refused" in line for line in first)
    await trio.sleep(6)
    failures.warning(("api-a", "unavailable"), "hook failed: api=api-a", refused())
    summary = lines(caplog)[2:]
    assert len(summary) == 1
    assert summary[0].startswith("hook failed: api=api-a: RuntimeError")
    assert summary[0].endswith("(500 times in the last 11 s)")


async def test_the_sweeper_reports_the_count_after_the_failures_stop(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.WARNING, LOGGER.name)
    failures = FailureLog(LOGGER, interval=10.0)
    for _ in range(30):
        failures.warning("redis", "session store unavailable", OSError("refused"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_failure_log_sweeper)
        await trio.sleep(9)
        assert len(lines(caplog)) == 1  # still inside the interval: counting
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert lines(caplog) == [
        "session store unavailable: OSError: refused",
        "session store unavailable: OSError: refused (29 times in the last 10 s)",
    ]
    # The window is forgotten: the next failure is reported at once, as a new outage.
    failures.warning("redis", "session store unavailable", OSError("refused"))
    assert len(lines(caplog)) == 3


async def test_shutdown_reports_the_counts_not_reported_yet(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.WARNING, LOGGER.name)
    failures = FailureLog(LOGGER, interval=10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_failure_log_sweeper)
        for _ in range(5):
            failures.warning("grpc", "hook failed", OSError("refused"))
            await trio.sleep(1)
        nursery.cancel_scope.cancel()  # the gateway stops inside the interval
    assert lines(caplog) == [
        "hook failed: OSError: refused",
        "hook failed: OSError: refused (4 times in the last 5 s)",
    ]


async def test_tracebacks_go_to_debug_every_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER.name)
    failures = FailureLog(LOGGER)
    for _ in range(3):
        failures.warning("k", "plugin failed", refused())
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 3
    assert all(r.exc_info is not None for r in debug)
    assert len(lines(caplog)) == 1
    assert all(r.exc_info is None for r in caplog.records if r.levelno == logging.WARNING)


def test_state_is_per_trio_run(caplog: pytest.LogCaptureFixture) -> None:
    """Two gateways in one process (two trio.run calls) never hide each other's lines."""
    caplog.set_level(logging.WARNING, LOGGER.name)
    failures = FailureLog(LOGGER)

    async def fail() -> None:
        failures.warning("k", "plugin failed", ValueError("x"))

    trio.run(fail)
    trio.run(fail)
    assert len(lines(caplog)) == 2
