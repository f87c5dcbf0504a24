"""W3C Trace Context (``traceparent`` / ``tracestate``): kept when a client sends a valid one,
started when it sends none (or an invalid one).

Pure functions, no I/O. The gateway records no spans of its own, so it forwards a valid
``traceparent`` unchanged (the trace stays joined end to end) and starts one, not sampled, for
requests without: the upstream, plugins and the access log then share one trace id.
See https://www.w3.org/TR/trace-context/ (§3.2 traceparent, §3.3 tracestate).
"""

from __future__ import annotations

import random
from typing import NamedTuple

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceContext", "parse_traceparent", "start_trace"]

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"

_HEX = frozenset(b"0123456789abcdef")
#: ``random`` is enough: trace ids must be unique, not secret, and os.urandom per request costs
#: a system call on the hot path.
_random = random.Random()


class TraceContext(NamedTuple):
    """Immutable (a named tuple: the cheapest immutable object to make, once per request)."""

    trace_id: str
    parent_id: str
    flags: str
    #: The ``traceparent`` value as sent upstream.
    header: bytes
    #: The client's ``tracestate``, if any (forwarded unchanged).
    tracestate: bytes | None = None
    #: True when the gateway started the trace (the client sent none, or an invalid one).
    started: bool = False

    @property
    def sampled(self) -> bool:
        return int(self.flags, 16) & 1 == 1


def _is_hex(value: bytes) -> bool:
    return bool(value) and all(c in _HEX for c in value)


def parse_traceparent(value: bytes, tracestate: bytes | None = None) -> TraceContext | None:
    """The context in a ``traceparent`` value, or None when it is not valid (§3.2.2)."""
    if len(value) < 55:
        return None
    version = value[:2]
    if not _is_hex(version) or version == b"ff":
        return None
    if version == b"00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55:56] != b"-":
        return None  # a later version may add fields, always after a dash
    if value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not (_is_hex(trace_id) and _is_hex(parent_id) and _is_hex(flags)):
        return None
    if trace_id == b"0" * 32 or parent_id == b"0" * 16:
        return None
    return TraceContext(
        trace_id=trace_id.decode("ascii"),
        parent_id=parent_id.decode("ascii"),
        flags=flags.decode("ascii"),
        header=b"00-" + trace_id + b"-" + parent_id + b"-" + flags,
        tracestate=tracestate,
    )


def start_trace() -> TraceContext:
    """A new trace (random ids, not sampled)."""
    # One draw for both ids; the low bit set keeps either from being all zeros (invalid).
    ids = f"{_random.getrandbits(192) | (1 << 64) | 1:048x}"
    trace_id, parent_id = ids[:32], ids[32:]
    return TraceContext(
        trace_id,
        parent_id,
        "00",
        f"00-{trace_id}-{parent_id}-00".encode("ascii"),
        None,
        True,
    )


def trace_for(headers: list[tuple[bytes, bytes]]) -> TraceContext:
    """The request's trace: its own when valid, else a new one written into ``headers`` (so the
    upstream and every plugin see it); an invalid ``traceparent`` and its ``tracestate`` are
    removed first (§3.2.2.1: a vendor replaces what it cannot parse)."""
    parent: bytes | None = None
    state: bytes | None = None
    for name, value in headers:
        if len(name) == 11 and name.lower() == TRACEPARENT:
            parent = value
        elif len(name) == 10 and name.lower() == TRACESTATE:
            state = value
    if parent is not None:
        context = parse_traceparent(parent, state)
        if context is not None:
            return context
        headers[:] = [(n, v) for n, v in headers if n.lower() not in (TRACEPARENT, TRACESTATE)]
    context = start_trace()
    headers.append((TRACEPARENT, context.header))
    return context
