"""Checks in a child process under a watchdog: a hook that never yields cannot hang the run.

A hook that loops in Python, or runs a regular expression that holds the interpreter lock, can
be stopped by nothing inside its process: no deadline fires, no thread gets to run. So
:func:`~trio_gateway.testing.check_plugin` runs the checks in a child (``python -m
trio_gateway.testing.battery``), which prints one JSON line per event: the check it starts, the
example it is about to try, the check's result. When no result comes for ``watchdog`` seconds,
the parent kills the child, reports the running check as a deadline overrun with the example
that was running, and starts a new child for the checks that are left.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from hypothesis import settings

from ._model import ClientRequest
from ._runner import PluginTarget


def describe_value(value: Any) -> str:
    from ._runner import _describe

    if isinstance(value, ClientRequest):
        return _describe(value)
    if isinstance(value, tuple | list):
        return "; ".join(describe_value(v) for v in value)
    return repr(value)[:200]


def emit(out: IO[str], **event: Any) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_isolated(
    target: PluginTarget,
    checks: Sequence[str],
    *,
    kinds: Mapping[str, int],
    result_type: Callable[..., Any],
    max_examples: int | None,
    watchdog: float,
) -> list[Any]:
    """Run ``checks`` in child processes (``python -m trio_gateway.testing.battery``); returns
    their results (``result_type(**fields)``) in order."""

    if max_examples is None:
        max_examples = settings().max_examples
    left = list(checks)
    results: list[Any] = []
    while left:
        spec = {"target": target.to_dict(), "checks": left, "max_examples": max_examples}
        child = subprocess.Popen(
            [sys.executable, "-m", "trio_gateway.testing.battery"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        lines: queue.Queue[str | None] = queue.Queue()
        errors: collections.deque[str] = collections.deque(maxlen=50)
        readers = [
            threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True),
            threading.Thread(target=errors.extend, args=(child.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        current, example, started = left[0], "", time.perf_counter()
        last_event = started
        try:
            while left:
                try:
                    # The watchdog bounds one example (from the last sign of life), not a check.
                    line = lines.get(timeout=max(0.0, last_event + watchdog - time.perf_counter()))
                except queue.Empty:
                    child.kill()
                    line = None
                    details = (
                        f"deadline overrun: an example did not finish within {watchdog:g} s; "
                        "a hook never gave control back (the check ran in a child process, "
                        "which the watchdog stopped; nothing inside one process can interrupt "
                        "a hook that holds the interpreter)\n"
                        f"example that was running:\n  {example or '(none yet)'}"
                    )
                else:
                    details = ""
                if line is None:
                    child.wait()
                    if not details:
                        readers[1].join(timeout=5)  # all of its stderr, then the message
                        tail = "".join(list(errors)[-20:])
                        details = f"the check's process died (exit {child.returncode}):\n{tail}"
                    results.append(
                        result_type(
                            name=current,
                            kind=kinds[current],
                            status="failed",
                            seconds=time.perf_counter() - started,
                            details=details,
                        )
                    )
                    left.remove(current)
                    break
                event = json.loads(line)
                last_event = time.perf_counter()
                if event["event"] == "start":
                    current, example, started = event["check"], "", time.perf_counter()
                elif event["event"] == "example":
                    example = event["text"]
                else:
                    results.append(result_type(**event["result"]))
                    left.remove(event["result"]["name"])
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            # The pipes end with the child: the readers finish, then the pipes are closed.
            for reader in readers:
                reader.join(timeout=5)
            child.stdout.close()
            child.stderr.close()
    return results
