"""RESP2 request encoding (pure). Replies are parsed by ``hiredis.Reader``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Arg", "encode_command", "encode_commands"]

Arg = bytes | str | int | float


def _as_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    # repr() keeps every bit of a float, so a script sees exactly the caller's ``now``.
    return repr(arg).encode()


def encode_command(args: Iterable[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [_as_bytes(a) for a in args]
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n" % len(part))
        out.append(part)
        out.append(b"\r\n")
    return b"".join(out)


def encode_commands(commands: Iterable[Iterable[Arg]]) -> bytes:
    """Several commands sent in one write (a pipeline)."""
    return b"".join(encode_command(c) for c in commands)
