"""H1ClientParser (upstream responses) and the serialisation helpers."""

from __future__ import annotations

import pytest

from trio_gateway._proto.events import Data, EndOfMessage, Event, ResponseHead, Upgraded
from trio_gateway._proto.http1 import H1ClientParser, H1ServerParser
from trio_gateway._proto.writer import LAST_CHUNK, encode_chunk, request_head, status_line
from trio_gateway.errors import UpstreamProtocolError


def events_of(*pieces: bytes, eof: bool = False) -> list[Event]:
    parser = H1ClientParser()
    for piece in pieces:
        parser.feed(piece)
    if eof:
        parser.feed_eof()
    out: list[Event] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


def test_content_length_response() -> None:
    head, data, end = events_of(b"HTTP/1.1 201 Made It\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok")
    assert isinstance(head, ResponseHead)
    assert head.status == 201
    assert head.reason == b"Made It"
    assert head.content_length == 2
    assert not head.chunked
    assert head.keep_alive
    assert (b"X-A", b"b") in head.headers
    assert isinstance(data, Data)
    assert data.data == b"ok"
    assert isinstance(end, EndOfMessage)
    assert end.keep_alive


def test_chunked_response_split_anywhere() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
    events = events_of(*(raw[i : i + 1] for i in range(len(raw))))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.chunked
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"hello!"
    assert isinstance(events[-1], EndOfMessage)


def test_read_until_close_body_ends_at_eof() -> None:
    events = events_of(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", eof=True)
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"all of it"
    end = events[-1]
    assert isinstance(end, EndOfMessage)
    assert not end.keep_alive


def test_eof_mid_content_length_body_is_an_upstream_error() -> None:
    parser = H1ClientParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(UpstreamProtocolError):
        parser.feed_eof()


def test_malformed_response_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        events_of(b"HTTP/1.1 abc Nope\r\n\r\n")


def test_switching_protocols_keeps_the_tail() -> None:
    events = events_of(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x02hi"
    )
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 101
    upgraded = events[-1]
    assert isinstance(upgraded, Upgraded)
    assert upgraded.trailing == b"\x81\x02hi"


def test_two_responses_in_a_row() -> None:
    events = events_of(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 204 No Content\r\n\r\n"
    )
    statuses = [e.status for e in events if isinstance(e, ResponseHead)]
    assert statuses == [200, 204]


# -- serialisation --------------------------------------------------------------------------------


def test_status_line_uses_known_reasons_and_custom_ones() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(431) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    assert status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert status_line(599) == b"HTTP/1.1 599 Unknown\r\n"


def test_serialised_head_parses_back() -> None:
    raw, _ = request_head(
        b"POST", b"/x?q=1", b"h", [], skip=frozenset(), extra=[], body_length=None, chunked=True
    )
    raw += encode_chunk(b"abc") + encode_chunk(b"x" * 300) + LAST_CHUNK
    parser = H1ServerParser()
    parser.feed(raw)
    events: list[Event] = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"abc" + b"x" * 300
    assert isinstance(events[-1], EndOfMessage)


def test_encode_chunk_is_hex_sized() -> None:
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_eof_mid_chunked_body_is_an_upstream_error() -> None:
    parser = H1ClientParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    with pytest.raises(UpstreamProtocolError):
        parser.feed_eof()


def test_eof_between_responses_adds_nothing() -> None:
    """The caller tells a stale keep-alive connection by the missing event."""
    parser = H1ClientParser()
    parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert [type(e) for e in events_drain(parser)] == [ResponseHead, EndOfMessage]
    parser.feed_eof()
    assert parser.next_event() is None


def test_eof_after_a_close_delimited_body_ends_it_once() -> None:
    parser = H1ClientParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    parser.feed_eof()
    parser.feed_eof()
    ends = [e for e in events_drain(parser) if isinstance(e, EndOfMessage)]
    assert len(ends) == 1


def events_drain(parser: H1ClientParser) -> list[Event]:
    out: list[Event] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


# -- RFC 9112 §6.3 ---------------------------------------------------------------------------------


def test_transfer_coding_without_chunked_runs_to_the_close() -> None:
    events = events_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", b"def", eof=True)
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert not head.chunked
    assert head.transfer_coding == b"gzip"
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"abcdef"
    assert isinstance(events[-1], EndOfMessage)
    assert not events[-1].keep_alive


def test_chunked_only_when_it_is_the_final_coding() -> None:
    events = events_of(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.chunked
    assert head.transfer_coding == b"gzip"
    assert isinstance(events[-1], EndOfMessage)
    assert events[-1].keep_alive


def test_trailing_whitespace_is_not_part_of_a_value() -> None:
    head = events_of(b"HTTP/1.1 204 No Content\r\nX-A: b \t\r\n\r\n")[0]
    assert isinstance(head, ResponseHead)
    assert (b"X-A", b"b") in head.headers
