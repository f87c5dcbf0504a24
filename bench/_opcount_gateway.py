"""Runs ``trio-gateway`` with a count of the Python bytecode it executes, per function, between
two signals (bench/opcount_keyless.sh drives it): SIGUSR1 starts counting, SIGUSR2 stops and
writes ``opcodes<TAB>calls<TAB>function (file:line)`` lines, most opcodes first, to
``$OPCOUNT_OUT``.

Counting uses ``sys.settrace`` with per-opcode events, so the gateway runs ~50x slower while
it counts; the counts themselves do not depend on the machine's load. Frames already running
when counting starts (a connection's request loop, Trio's run loop) are not counted: the figures
are for what each request calls.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import types
from typing import Any

_opcodes: collections.Counter[types.CodeType] = collections.Counter()
_calls: collections.Counter[types.CodeType] = collections.Counter()


def _local(frame: types.FrameType, event: str, arg: Any) -> Any:
    if event == "opcode":
        _opcodes[frame.f_code] += 1
    return _local


def _global(frame: types.FrameType, event: str, arg: Any) -> Any:
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    if event == "call":
        _calls[frame.f_code] += 1
    return _local


def _start(*_: object) -> None:
    _opcodes.clear()
    _calls.clear()
    sys.settrace(_global)


def _stop(*_: object) -> None:
    sys.settrace(None)
    with open(os.environ["OPCOUNT_OUT"], "w") as out:
        for code, count in _opcodes.most_common():
            where = code.co_filename.split("site-packages/")[-1]
            out.write(f"{count}\t{_calls[code]}\t{code.co_name} ({where}:{code.co_firstlineno})\n")


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    from trio_gateway._cli import main

    sys.argv[0] = "trio-gateway"
    sys.exit(main())
