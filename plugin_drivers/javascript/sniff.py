"""The Content-Type Go's ``http.DetectContentType`` gives a body, and when Go's server asks it.

A Tyk virtual endpoint that returns no ``Content-Type`` header gets one from Go's HTTP server,
which sniffs the first bytes of the body with the WHATWG MIME Sniffing rules
(https://mimesniff.spec.whatwg.org/, as Go's ``net/http`` implements them: the same table, the
same order, the same fallbacks). Clients of such an endpoint see, say,
``text/plain; charset=utf-8`` for a JSON body; we give them the same header.

The rules, in order (the first that matches wins; at most the first 512 bytes are looked at;
"whitespace" is tab, LF, FF, CR and space):

1. HTML: after leading whitespace, one of the tags below, ASCII letters compared without case,
   followed by a space or ``>``.
2. ``<?xml`` after leading whitespace: XML.
3. Fixed signatures at the very start (masked byte patterns: a 0 mask byte matches anything).
4. MP4: an ``ftyp`` box whose brands include ``mp4``.
5. Text: no byte after the leading whitespace is a control byte the spec calls binary.
6. Otherwise ``application/octet-stream``.

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["SNIFF_LEN", "detect_content_type", "needs_sniffed_type"]

#: At most this many bytes decide.
SNIFF_LEN: Final = 512

_WHITESPACE: Final = frozenset(b"\t\n\x0c\r ")
_TAG_END: Final = frozenset(b" >")

_HTML: Final = "text/html; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
_OCTETS: Final = "application/octet-stream"

#: Rule 1: tags that mark HTML (upper case here; the body may use any case).
_HTML_TAGS: Final[tuple[bytes, ...]] = tuple(
    tag.encode("ascii")
    for tag in (
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    )
)


def _any(n: int) -> bytes:
    return b"\x00" * n


def _all(n: int) -> bytes:
    return b"\xff" * n


#: Rule 3: (pattern, mask, type). Where the mask is None every byte must equal the pattern
#: (a prefix match). Order matters: it is the spec's (and Go's) order.
_SIGNATURES: Final[tuple[tuple[bytes, bytes | None, str], ...]] = (
    (b"%PDF-", None, "application/pdf"),
    (b"%!PS-Adobe-", None, "application/postscript"),
    # Byte order marks. As in Go, each needs a fourth byte after the mark, whatever it is.
    (b"\xfe\xff\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf\x00", b"\xff\xff\xff\x00", "text/plain; charset=utf-8"),
    # Images.
    (b"\x00\x00\x01\x00", None, "image/x-icon"),
    (b"\x00\x00\x02\x00", None, "image/x-icon"),
    (b"BM", None, "image/bmp"),
    (b"GIF87a", None, "image/gif"),
    (b"GIF89a", None, "image/gif"),
    (b"RIFF" + _any(4) + b"WEBPVP", _all(4) + _any(4) + _all(6), "image/webp"),
    (b"\x89PNG\r\n\x1a\n", None, "image/png"),
    (b"\xff\xd8\xff", None, "image/jpeg"),
    # Audio and video (MP4 is rule 4, checked in this position).
    (b"FORM" + _any(4) + b"AIFF", _all(4) + _any(4) + _all(4), "audio/aiff"),
    (b"ID3", None, "audio/mpeg"),
    (b"OggS\x00", None, "application/ogg"),
    (b"MThd\x00\x00\x00\x06", None, "audio/midi"),
    (b"RIFF" + _any(4) + b"AVI ", _all(4) + _any(4) + _all(4), "video/avi"),
    (b"RIFF" + _any(4) + b"WAVE", _all(4) + _any(4) + _all(4), "audio/wave"),
)
_AFTER_MP4: Final[tuple[tuple[bytes, bytes | None, str], ...]] = (
    (b"\x1a\x45\xdf\xa3", None, "video/webm"),
    # Fonts: the embedded-OpenType mark sits after 34 bytes of anything.
    (_any(34) + b"LP", _any(34) + _all(2), "application/vnd.ms-fontobject"),
    (b"\x00\x01\x00\x00", None, "font/ttf"),
    (b"OTTO", None, "font/otf"),
    (b"ttcf", None, "font/collection"),
    (b"wOFF", None, "font/woff"),
    (b"wOF2", None, "font/woff2"),
    # Archives (RAR as RAR Labs defines it, as Go does).
    (b"\x1f\x8b\x08", None, "application/x-gzip"),
    (b"PK\x03\x04", None, "application/zip"),
    (b"Rar!\x1a\x07\x00", None, "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", None, "application/x-rar-compressed"),
    (b"\x00asm", None, "application/wasm"),
)

#: Rule 5: bytes that make data binary.
_BINARY: Final = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def _matches(data: bytes, pattern: bytes, mask: bytes | None) -> bool:
    if mask is None:
        return data.startswith(pattern)
    if len(data) < len(pattern):
        return False
    return all(data[i] & m == p for i, (p, m) in enumerate(zip(pattern, mask, strict=True)))


def _first(data: bytes, table: Iterable[tuple[bytes, bytes | None, str]]) -> str | None:
    for pattern, mask, content_type in table:
        if _matches(data, pattern, mask):
            return content_type
    return None


def _is_html(text: bytes) -> bool:
    for tag in _HTML_TAGS:
        if len(text) <= len(tag):
            continue
        # Letters compare without case (clearing bit 0x20 of the body's byte), others exactly.
        if all(
            (b & 0xDF if 0x41 <= t <= 0x5A else b) == t for b, t in zip(text, tag, strict=False)
        ) and (text[len(tag)] in _TAG_END):
            return True
    return False


def _is_mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box_size = int.from_bytes(data[:4], "big")
    if len(data) < box_size or box_size % 4 != 0 or data[4:8] != b"ftyp":
        return False
    # Brands are 4-byte entries from offset 8; offset 12 is the major brand's version.
    return any(data[at : at + 3] == b"mp4" for at in range(8, box_size, 4) if at != 12)


def detect_content_type(body: bytes) -> str:
    """The Content-Type Go's ``http.DetectContentType`` returns for ``body``."""
    data = body[:SNIFF_LEN]
    start = 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    text = data[start:]
    if _is_html(text):
        return _HTML
    if text.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    found = _first(data, _SIGNATURES)
    if found is not None:
        return found
    if _is_mp4(data):
        return "video/mp4"
    found = _first(data, _AFTER_MP4)
    if found is not None:
        return found
    if not any(b in _BINARY for b in text):
        return _TEXT
    return _OCTETS


def needs_sniffed_type(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bool:
    """Whether Go's HTTP server would add a sniffed Content-Type to this response.

    Only when the status allows a body (not 1xx, 204, 304), the body is not empty, and the
    handler set no ``Content-Type`` (not even an empty one) and no non-empty
    ``Content-Encoding`` or ``Transfer-Encoding``.
    """
    if not body or 100 <= status < 200 or status in (204, 304):
        return False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-type" or (
            value and lower in ("content-encoding", "transfer-encoding")
        ):
            return False
    return True
