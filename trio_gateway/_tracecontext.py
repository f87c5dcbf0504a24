"""W3C Trace Context (``traceparent`` / ``tracestate``): kept when a client sends a valid one,
started when it sends none (or an invalid one).

Pure functions (but one read of random bytes per 512 new traces). The gateway records no spans
of its own, so it forwards a valid ``traceparent`` unchanged (the trace stays joined end to end)
and starts one, not sampled, for requests without: the upstream, plugins and the access log then
share one trace id.
See https://www.w3.org/TR/trace-context/ (§3.2 traceparent, §3.3 tracestate).
"""

from __future__ import annotations

import binascii
import os
from typing import NamedTuple

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceContext", "parse_traceparent", "start_trace"]

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"

_HEX = frozenset(b"0123456789abcdef")
#: Random ids are cut from a pool of random hex digits drawn 512 traces at a time: one
#: ``os.urandom`` per 512 requests, and per request a few slices instead of drawing, formatting
#: and encoding a number (a third of the instructions; bench/callgrind_keyless.sh).
_POOL_TRACES = 512
_ZERO_PARENT_ID = b"0" * 16


class _HexPool:
    __slots__ = ("at", "digits")

    def __init__(self) -> None:
        self.digits = b""
        self.at = 0

    def refill(self) -> None:
        """Draw digits for the next ``_POOL_TRACES`` traces. No id may be all zeros
        (§3.2.2.3): a pool holding 16 zeros in a row anywhere (about once in 10**15 draws) is
        drawn again, which rules that out whatever the id boundaries, at no cost per trace."""
        digits = binascii.hexlify(os.urandom(24 * _POOL_TRACES))
        while _ZERO_PARENT_ID in digits:
            digits = binascii.hexlify(os.urandom(24 * _POOL_TRACES))
        self.digits = digits
        self.at = 0

    def take48(self) -> bytes:
        """48 random lower-case hex digits (a trace id and a parent id, neither all zeros)."""
        if self.at >= len(self.digits):
            self.refill()
        at = self.at
        self.at = at + 48
        return self.digits[at : at + 48]


_pool = _HexPool()
_new_tuple = tuple.__new__


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
    return _new_trace(_pool.take48())


def _new_trace(ids: bytes) -> TraceContext:
    """The context of a trace the gateway starts, from 48 hex digits (the trace id, then the
    parent id)."""
    trace_id, parent_id = ids[:32], ids[32:]
    # tuple.__new__ skips the named tuple's Python-level __new__ (half of this function's cost).
    context: TraceContext = _new_tuple(
        TraceContext,
        (
            trace_id.decode("ascii"),
            parent_id.decode("ascii"),
            "00",
            b"00-%s-%s-00" % (trace_id, parent_id),
            None,
            True,
        ),
    )
    return context


def trace_for(headers: list[tuple[bytes, bytes]]) -> TraceContext:
    """The request's trace: its own when valid, else a new one written into ``headers`` (so the
    upstream and every plugin see it); an invalid ``traceparent`` and its ``tracestate`` are
    removed first (§3.2.2.1: a vendor replaces what it cannot parse)."""
    parent: bytes | None = None
    state: bytes | None = None
    for name, value in headers:
        # Only names of these two lengths can match: most fields cost a len() and no lower().
        size = len(name)
        if size == 11:
            if name.lower() == TRACEPARENT:
                parent = value
        elif size == 10 and name.lower() == TRACESTATE:
            state = value
    if parent is not None:
        context = parse_traceparent(parent, state)
        if context is not None:
            return context
        headers[:] = [(n, v) for n, v in headers if n.lower() not in (TRACEPARENT, TRACESTATE)]
    # start_trace() written out: this runs for nearly every request (once per request).
    pool = _pool
    if pool.at >= len(pool.digits):
        pool.refill()
    at = pool.at
    pool.at = at + 48
    context = _new_trace(pool.digits[at : at + 48])
    headers.append((TRACEPARENT, context.header))
    return context
