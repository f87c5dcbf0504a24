"""Header rules for a proxy (pure): hop-by-hop removal and the X-Forwarded-* family.

RFC 9110 §7.6.1: a proxy removes the Connection header, every header it names, and the classic
hop-by-hop fields, in both directions.
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

#: Headers whose framing the proxy redoes itself.
FRAMING: frozenset[bytes] = frozenset({b"content-length"})


def connection_tokens(headers: Headers) -> set[bytes]:
    """The lower-cased tokens of every Connection header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return tokens


#: What :func:`strip_hop_by_hop` always drops (made once, not per call).
_DROP: frozenset[bytes] = HOP_BY_HOP | FRAMING


def strip_hop_by_hop(headers: Headers, *, keep_upgrade: bool = False) -> Headers:
    """Headers without hop-by-hop fields and without Content-Length (the caller re-frames).

    ``keep_upgrade`` keeps ``Upgrade`` and sets ``Connection: upgrade`` for a protocol switch.
    """
    # One pass for the usual case, where the Connection header names hop-by-hop fields only
    # (``keep-alive``, ``upgrade``) or ``close``; fields it names beyond those (rare) go in a
    # second pass, as they may come before it.
    out: Headers = []
    named: set[bytes] | None = None
    upgrade_value: bytes | None = None
    for field in headers:
        lname = field[0].lower()
        if lname in _DROP:
            if lname == b"connection":
                if named is None:
                    named = set()
                for token in field[1].split(b","):
                    token = token.strip().lower()
                    if token:
                        named.add(token)
            elif keep_upgrade and lname == b"upgrade":
                upgrade_value = field[1]
            continue
        out.append(field)
    if named and not named <= _DROP:
        out = [field for field in out if field[0].lower() not in named]
    if keep_upgrade and upgrade_value is not None:
        out.append((b"Connection", b"upgrade"))
        out.append((b"Upgrade", upgrade_value))
    return out
