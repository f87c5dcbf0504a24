"""Content types sniffed as Go's http.DetectContentType does (virtual endpoints without one)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_drivers.javascript.sniff import SNIFF_LEN, detect_content_type, needs_sniffed_type

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Text and the fallbacks.
        (b"", TEXT),
        (b'{"status": "ok"}', TEXT),
        (b"[1, 2, 3]", TEXT),
        (b"hello\r\n\tworld \x1b escape", TEXT),  # ESC (0x1B) is not binary
        (b"caf\xc3\xa9", TEXT),  # bytes >= 0x80 are not binary
        (b"ab\x00cd", "application/octet-stream"),
        (b"\x0bvertical tab", "application/octet-stream"),
        (b"unit\x1fseparator", "application/octet-stream"),
        # HTML: any case, after whitespace, and the tag must end with a space or ">".
        (b"<!DOCTYPE html><html></html>", HTML),
        (b"  \n\t<HtMl>", HTML),
        (b"<p>hi</p>", HTML),
        (b"<b >x</b>", HTML),
        (b"<!-- comment -->", HTML),
        (b"<br/>", TEXT),
        (b"<html", TEXT),  # nothing after the tag
        (b"<bold>", TEXT),
        # XML after whitespace; exact case.
        (b"\n <?xml version='1.0'?><a/>", "text/xml; charset=utf-8"),
        (b"<?XML version='1.0'?>", TEXT),
        # Fixed signatures, at the very start only.
        (b"%PDF-1.7", "application/pdf"),
        (b" %PDF-1.7", TEXT),
        (b"%!PS-Adobe-3.0", "application/postscript"),
        (b"\xfe\xff\x00h", "text/plain; charset=utf-16be"),
        (b"\xff\xfeh\x00", "text/plain; charset=utf-16le"),
        (b"\xef\xbb\xbfhi", "text/plain; charset=utf-8"),
        (b"\xef\xbb\xbf", TEXT),  # a BOM alone is too short for its pattern: plain text rules
        (b"\x00\x00\x01\x00rest", "image/x-icon"),
        (b"\x00\x00\x02\x00rest", "image/x-icon"),
        (b"BMxxxx", "image/bmp"),
        (b"GIF89a....", "image/gif"),
        (b"GIF87a....", "image/gif"),
        (b"RIFF\x01\x02\x03\x04WEBPVP8 ", "image/webp"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"FORM\x00\x00\x00\x00AIFF", "audio/aiff"),
        (b"ID3\x03", "audio/mpeg"),
        (b"OggS\x00\x02", "application/ogg"),
        (b"MThd\x00\x00\x00\x06\x00", "audio/midi"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/avi"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wave"),
        (b"\x1a\x45\xdf\xa3\x01", "video/webm"),
        (b"\x07" * 34 + b"LP", "application/vnd.ms-fontobject"),
        (b"\x00\x01\x00\x00\x00", "font/ttf"),
        (b"OTTO\x00", "font/otf"),
        (b"ttcf\x00", "font/collection"),
        (b"wOFF\x00", "font/woff"),
        (b"wOF2\x00", "font/woff2"),
        (b"\x1f\x8b\x08\x00", "application/x-gzip"),
        (b"PK\x03\x04\x14", "application/zip"),
        (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
        (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
        (b"\x00asm\x01\x00\x00\x00", "application/wasm"),
        # MP4: an ftyp box of a size that is a multiple of 4, with an "mp4" brand (not at 12).
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00mp41iso2", "video/mp4"),
        (b"\x00\x00\x00\x10ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x10ftypisommp41", "application/octet-stream"),  # at 12: a version
        (b"\x00\x00\x00\x11ftypmp42\x00\x00\x00\x00\x00", "application/octet-stream"),
        (b"\x00\x00\x00\x40ftypmp42\x00\x00\x00\x00", "application/octet-stream"),  # too short
    ],
)
def test_detect_content_type(body: bytes, expected: str) -> None:
    assert detect_content_type(body) == expected


def test_only_the_first_512_bytes_count() -> None:
    assert detect_content_type(b"a" * SNIFF_LEN + b"\x00") == TEXT
    assert detect_content_type(b"a" * (SNIFF_LEN - 1) + b"\x00") == "application/octet-stream"
    # Whitespace counts against the 512 too: a tag that starts past them is not seen.
    assert detect_content_type(b" " * (SNIFF_LEN - 3) + b"<p>") == HTML
    assert detect_content_type(b" " * (SNIFF_LEN - 2) + b"<p>") == TEXT


@given(st.binary(max_size=600))
def test_always_a_type(body: bytes) -> None:
    assert "/" in detect_content_type(body)


_PRINTABLE = st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="<")


@given(st.text(_PRINTABLE, max_size=200))
def test_printable_text_is_plain_text(text: str) -> None:
    body = text.encode()
    if not body.startswith((b"%PDF-", b"%!PS-Adobe-", b"BM", b"ID3", b"GIF8", b"OTTO", b"wOF")):
        assert detect_content_type(body) in (TEXT, "font/collection")


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, [], b"x", True),
        (500, [("X-A", "1")], b"x", True),
        (200, [], b"", False),  # nothing written: Go sets no type
        (204, [], b"x", False),
        (304, [], b"x", False),
        (101, [], b"x", False),
        (200, [("content-type", "application/json")], b"x", False),
        (200, [("Content-Type", "")], b"x", False),  # present, even empty
        (200, [("Content-Encoding", "gzip")], b"x", False),
        (200, [("Content-Encoding", "")], b"x", True),
        (200, [("Transfer-Encoding", "chunked")], b"x", False),
    ],
)
def test_needs_sniffed_type(
    status: int, headers: list[tuple[str, str]], body: bytes, expected: bool
) -> None:
    assert needs_sniffed_type(status, headers, body) is expected
