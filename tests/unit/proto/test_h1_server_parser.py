"""H1ServerParser: request bytes in, events out; the limits and refusals it adds to llhttp."""

from __future__ import annotations

import pytest

from trio_gateway._proto.events import Data, EndOfMessage, Event, RequestHead, Upgraded
from trio_gateway._proto.http1 import H1ServerParser
from trio_gateway.errors import ClientProtocolError


def events_of(data: bytes, **limits: int) -> list[Event]:
    parser = H1ServerParser(**limits)
    parser.feed(data)
    out: list[Event] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


def refusal(data: bytes, **limits: int) -> int:
    """The status the parser refuses ``data`` with (fails if it accepts it)."""
    with pytest.raises(ClientProtocolError) as info:
        events_of(data, **limits)
    return info.value.status


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


def test_simple_get() -> None:
    events = events_of(b"GET /a/b?x=1&y=%2F HTTP/1.1\r\nHost: h\r\nX-Thing:  v  \r\n\r\n")
    head, end = events
    assert isinstance(head, RequestHead)
    assert head.method == b"GET"
    assert head.target == b"/a/b?x=1&y=%2F"
    assert head.http_version == "1.1"
    assert head.headers == [(b"Host", b"h"), (b"X-Thing", b"v")]
    assert head.keep_alive
    assert head.content_length is None
    assert not head.chunked
    assert not head.expect_continue
    assert not head.upgrade
    assert isinstance(end, EndOfMessage)
    assert end.keep_alive


def test_content_length_body() -> None:
    events = events_of(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.content_length == 5
    assert body_of(events) == b"hello"
    assert isinstance(events[-1], EndOfMessage)


def test_chunked_body_is_decoded() -> None:
    events = events_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.chunked
    assert head.content_length is None
    assert body_of(events) == b"abcdefg"
    assert isinstance(events[-1], EndOfMessage)


def test_pipelined_requests_come_out_in_order() -> None:
    events = events_of(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    targets = [e.target for e in events if isinstance(e, RequestHead)]
    assert targets == [b"/1", b"/2", b"/3"]
    assert [type(e).__name__ for e in events] == [
        "RequestHead",
        "EndOfMessage",
        "RequestHead",
        "Data",
        "EndOfMessage",
        "RequestHead",
        "EndOfMessage",
    ]


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_version_and_connection_header(
    request_bytes: bytes, keep_alive: bool
) -> None:
    head, end = events_of(request_bytes)
    assert isinstance(head, RequestHead)
    assert isinstance(end, EndOfMessage)
    assert head.keep_alive is keep_alive
    assert end.keep_alive is keep_alive


def test_expect_continue_is_reported() -> None:
    parser = H1ServerParser()
    parser.feed(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head.expect_continue
    assert parser.next_event() is None  # the body has not been sent: nothing more yet
    parser.feed(b"abc")
    data = parser.next_event()
    assert isinstance(data, Data)
    assert data.data == b"abc"
    assert isinstance(parser.next_event(), EndOfMessage)


def test_websocket_upgrade_stops_parsing_and_keeps_the_tail() -> None:
    events = events_of(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x00raw"
    )
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.upgrade
    upgraded = events[-1]
    assert isinstance(upgraded, Upgraded)
    assert upgraded.trailing == b"\x81\x00raw"


def test_upgrade_header_without_connection_upgrade_is_not_a_switch() -> None:
    events = events_of(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert not head.upgrade
    assert not any(isinstance(e, Upgraded) for e in events)


def test_in_head_tracks_a_partial_head() -> None:
    parser = H1ServerParser()
    states = [parser.in_head]
    parser.feed(b"GET / HTTP/1.1\r\nHo")
    states.append(parser.in_head)
    assert parser.next_event() is None
    parser.feed(b"st: h\r\n\r\n")
    states.append(parser.in_head)
    assert states == [False, True, False]
    assert isinstance(parser.next_event(), RequestHead)


# -- refusals -------------------------------------------------------------------------------------

SMUGGLING_SHAPES = {
    "cl-and-te": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "te-and-cl": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "two-different-cl": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ),
    "bad-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    "chunk-size-overflow": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff1\r\nabc\r\n0\r\n\r\n"
    ),
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
    "te-not-ending-in-chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    ),
    "te-identity": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nabc",
    "negative-cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "cl-with-plus": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: h\r\nX-A : v\r\n\r\n",
    "bare-lf-in-header": b"GET / HTTP/1.1\r\nHost: h\nX-A: v\r\n\r\n",
}

MALFORMED = {
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "no-version": b"GET /\r\nHost: h\r\n\r\n",
    "bad-version": b"GET / HTTP/9.x\r\nHost: h\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    "lowercase-method": b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost h\r\n\r\n",
    "control-char-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "empty-header-name": b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
    # RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two.
    "no-host": b"GET / HTTP/1.1\r\nX-A: v\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "two-hosts-http10": b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
    "http-0.9-with-headers": b"GET /\r\nHost: h\r\n\r\n",
    "http-0.9-named": b"GET / HTTP/0.9\r\n\r\n",
    "http-2.0-in-http1-syntax": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


@pytest.mark.parametrize("data", SMUGGLING_SHAPES.values(), ids=SMUGGLING_SHAPES.keys())
def test_smuggling_shapes_are_refused_with_400(data: bytes) -> None:
    assert refusal(data) == 400


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_refused_with_400(data: bytes) -> None:
    assert refusal(data) == 400


def test_same_content_length_twice_is_refused_too() -> None:
    # RFC 9112 §6.3 would allow merging identical values; llhttp refuses, which is the safe side.
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    assert refusal(data) == 400


def test_header_section_over_the_limit_is_431() -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    assert refusal(big, max_header_bytes=1024) == 431
    assert isinstance(events_of(big, max_header_bytes=4096)[0], RequestHead)


def test_many_small_headers_over_the_limit_are_431() -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    assert refusal(b"GET / HTTP/1.1\r\n" + headers + b"\r\n", max_header_bytes=1024) == 431


def test_long_target_is_431() -> None:
    assert refusal(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", max_header_bytes=1024) == 431


def test_endless_header_line_fed_in_pieces_is_431() -> None:
    """A header line that never ends is bounded even though llhttp calls back only at its end."""
    parser = H1ServerParser(max_header_bytes=1024)
    parser.feed(b"GET / HTTP/1.1\r\nX-Endless: ")
    for _ in range(10):
        parser.feed(b"a" * 100)  # 1000 bytes of the line so far: still within the limit
    with pytest.raises(ClientProtocolError) as info:
        parser.feed(b"a" * 100)
    assert info.value.status == 431


def test_head_under_the_limit_is_accepted_however_it_is_split() -> None:
    """Bytes must not count twice when a head arrives in several reads (a false 431)."""
    head = (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + b"a" * 500 + b"\r\nX-B: " + b"b" * 200 + b"\r\n\r\n"
    )
    for cut in range(1, len(head)):
        parser = H1ServerParser(max_header_bytes=len(head) + 10)
        parser.feed(head[:cut])
        parser.feed(head[cut:])
        assert isinstance(parser.next_event(), RequestHead), cut


def test_trailing_whitespace_is_not_part_of_a_header_value() -> None:
    parser = H1ServerParser()
    parser.feed(
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue \t\r\nContent-Length: 1\r\n\r\n"
    )
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head.expect_continue
    assert (b"Expect", b"100-continue") in head.headers


def test_head_limit_is_per_request() -> None:
    """Two requests each under the limit, pipelined, are fine together."""
    one = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"a" * 600 + b"\r\n\r\n"
    heads = [e for e in events_of(one * 3, max_header_bytes=1024) if isinstance(e, RequestHead)]
    assert len(heads) == 3


def test_content_length_over_the_body_limit_is_413_before_any_body() -> None:
    assert (
        refusal(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", max_body_bytes=10)
        == 413
    )


def test_body_at_the_limit_is_accepted() -> None:
    events = events_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", max_body_bytes=10
    )
    assert body_of(events) == b"0123456789"


def test_chunked_body_over_the_limit_is_413() -> None:
    parser = H1ServerParser(max_body_bytes=10)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n")
    with pytest.raises(ClientProtocolError) as info:
        parser.feed(b"6\r\nghijkl\r\n0\r\n\r\n")
    assert info.value.status == 413


def test_body_limit_is_per_request() -> None:
    one = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n01234567\r\n0\r\n\r\n"
    )
    events = events_of(one * 3, max_body_bytes=10)
    assert sum(isinstance(e, EndOfMessage) for e in events) == 3


def test_no_body_limit_by_default() -> None:
    body = b"x" * 1_000_000
    events = events_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    assert body_of(events) == body


def test_feed_after_upgrade_is_a_programming_error() -> None:
    parser = H1ServerParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_http10_request_without_host_is_accepted() -> None:
    events = events_of(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(events[0], RequestHead)
