"""Path normalisation and listen-path keys (pure): shared by routing and the definition loader,
which refuses two APIs with the same key."""

from __future__ import annotations

__all__ = ["listen_path_key", "normalise_path"]

# Percent-encoded dots are unreserved characters (RFC 3986 §2.3, §6.2.2.2): "%2e%2e" *is* "..".
# Upstreams decode them, so a router that did not would let "/a/%2e%2e/b" slip past rules on "/b".
_DOT = frozenset({".", "%2e", "%2E"})
_DOT_DOT = frozenset(a + b for a in _DOT for b in _DOT)


def normalise_path(raw: str) -> str:
    """Remove dot segments (RFC 3986 §5.2.4) and duplicate slashes; keep percent-encodings as sent.

    ``%2F`` stays encoded (it is data, not a separator). A path that climbs above the root stays at
    ``/``. The result always starts with ``/`` and is a fixed point of this function.
    """
    if not raw.startswith("/"):
        raw = "/" + raw
    if "//" not in raw and "/." not in raw and "/%2" not in raw:
        return raw  # the common case: nothing to do
    segments = raw.split("/")
    last = len(segments) - 1
    out: list[str] = []
    for i in range(1, last + 1):
        segment = segments[i]
        if segment in _DOT:
            if i == last:
                out.append("")  # "/a/." -> "/a/": the trailing slash survives
            continue
        if segment in _DOT_DOT:
            if out:
                out.pop()
            if i == last:
                out.append("")
            continue
        if segment == "" and i != last:
            continue  # "//" -> "/"
        out.append(segment)
    return "/" + "/".join(out)


def listen_path_key(listen_path: str) -> str:
    """The routing key of a listen path: normalised, without the trailing slash (``/`` -> ``""``).

    Two APIs with the same key (and domain) route identically, so the loader refuses the second.
    """
    return normalise_path(listen_path).rstrip("/")
