"""The send side against the project's own parsers (issue 9).

Property: any head a hook can produce (names, values, method, target, status: any bytes, leaning
towards the dangerous ones) is either refused by the writer (``InvalidHead``) or, sent with its
body, parses back with ``_proto/http1.py`` to exactly the message meant: the same method, target
or status, the same fields (values without the surrounding whitespace RFC 9110 §5.5 says is not
part of them), the framing the writer chose, the same body, and one message, never two.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from trio_gateway._proto.events import (
    Data,
    EndOfMessage,
    Event,
    RequestHead,
    ResponseHead,
    Upgraded,
)
from trio_gateway._proto.http1 import H1ClientParser, H1ServerParser
from trio_gateway._proto.writer import (
    LAST_CHUNK,
    RESPONSE_OWNED,
    Framing,
    InvalidHead,
    frame,
    request_head,
    response_head,
)
from trio_gateway._upstream.proxy import _SKIP as PROXY_SKIP

Headers = list[tuple[bytes, bytes]]

#: Bytes that end lines, fields or messages, and their neighbours.
_NASTY = b"\r\n\x00\t :;,\x7f\x80\xff/?#%"
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _bytes_from(alphabet: bytes, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(alphabet), min_size=min_size, max_size=max_size).map(bytes)


def _mostly(alphabet: bytes, min_size: int = 0) -> st.SearchStrategy[bytes]:
    """Bytes from ``alphabet``, sometimes with anything at all mixed in."""
    return st.one_of(
        _bytes_from(alphabet, min_size),
        _bytes_from(alphabet + _NASTY, min_size),
        st.binary(min_size=min_size, max_size=12),
    )


names = st.one_of(
    st.sampled_from(
        [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Host", b"Upgrade", b"X-A"]
    ),
    _mostly(_TOKEN, min_size=0),
)
values = st.one_of(
    st.sampled_from([b"chunked", b"0", b"close", b"upgrade", b" padded\t", b""]),
    _mostly(_TOKEN + b' \t"()/<=>?@[\\]{}', min_size=0),
)
headers_lists = st.lists(st.tuples(names, values), max_size=6)
bodies = st.one_of(st.just(b""), st.binary(min_size=1, max_size=40))


def _events(parser: H1ServerParser | H1ClientParser) -> list[Event]:
    out: list[Event] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


def _message(head: bytes, framing: Framing, body: bytes) -> bytes:
    """``head`` and ``body`` as the shells send them under ``framing``."""
    if framing is Framing.NONE:
        return head
    end = LAST_CHUNK if framing is Framing.CHUNKED else b""
    return head + frame(framing, body) + end


def _meant(headers: Headers, skip: frozenset[bytes]) -> Headers:
    return [(n, v.strip(b" \t")) for n, v in headers if n.lower() not in skip]


@given(
    method=st.one_of(st.sampled_from([b"GET", b"POST", b"PUT"]), _mostly(_TOKEN.upper())),
    target=st.builds(lambda tail: b"/" + tail, _mostly(_TOKEN + b"/?=&#%")),
    host=_mostly(_TOKEN + b".:[]"),
    headers=headers_lists,
    body=bodies,
    chunked=st.booleans(),
)
@example(
    method=b"GET",
    target=b"/",
    host=b"h",
    headers=[(b"X-User", b"a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x")],
    body=b"",
    chunked=False,
)
def test_request_heads_are_refused_or_parse_back_as_one_request(
    method: bytes, target: bytes, host: bytes, headers: Headers, body: bytes, chunked: bool
) -> None:
    extra = [(b"X-Forwarded-For", b"127.0.0.1")]
    try:
        head, framing = request_head(
            method,
            target,
            host,
            headers,
            skip=PROXY_SKIP,
            extra=extra,
            body_length=None if chunked or not body else len(body),
            chunked=chunked,
        )
    except InvalidHead:
        return
    parser = H1ServerParser()
    parser.feed(_message(head, framing, body))
    events = _events(parser)
    first = events[0]
    assert isinstance(first, RequestHead)
    assert first.method == method
    assert first.target == target
    framing_field = (
        [(b"Transfer-Encoding", b"chunked")]
        if framing is Framing.CHUNKED
        else [(b"Content-Length", b"%d" % len(body))]
        if framing is Framing.LENGTH
        else []
    )
    owned = PROXY_SKIP | {b"host", b"content-length", b"transfer-encoding"}
    meant = [(b"Host", host.strip(b" \t")), *_meant(headers, owned), *extra, *framing_field]
    assert first.headers == meant
    received = b"".join(e.data for e in events if isinstance(e, Data))
    assert received == (body if framing is not Framing.NONE else b"")
    # One message: it ends, and nothing follows it.
    assert isinstance(events[-1], EndOfMessage)
    assert sum(isinstance(e, RequestHead) for e in events) == 1


@given(
    status=st.one_of(st.sampled_from([200, 204, 304, 404, 100, 101, 103]), st.integers(0, 1200)),
    reason=st.one_of(st.just(b""), _mostly(_TOKEN + b" ")),
    headers=headers_lists,
    body=bodies,
    streamed=st.booleans(),
    http10=st.booleans(),
    keep_alive=st.booleans(),
)
@example(
    status=101,
    reason=b"",
    headers=[(b"Upgrade", b"websocket")],
    body=b"",
    streamed=True,
    http10=False,
    keep_alive=True,
)
@example(
    status=200,
    reason=b"",
    headers=[(b"X-A", b"a\r\n\r\nHTTP/1.1 200 OK"), (b"Content-Length", b"0")],
    body=b"x",
    streamed=False,
    http10=False,
    keep_alive=True,
)
def test_response_heads_are_refused_or_parse_back_as_one_response(
    status: int,
    reason: bytes,
    headers: Headers,
    body: bytes,
    streamed: bool,
    http10: bool,
    keep_alive: bool,
) -> None:
    try:
        head, framing, _ = response_head(
            status,
            reason,
            headers,
            body_length=None if streamed else len(body),
            keep_alive=keep_alive,
            http10=http10,
        )
    except InvalidHead:
        return
    parser = H1ClientParser()
    parser.feed(_message(head, framing, body))
    if framing is Framing.CLOSE:
        parser.feed_eof()
    events = _events(parser)
    first = events[0]
    assert isinstance(first, ResponseHead)
    assert first.status == status
    meant = _meant(headers, RESPONSE_OWNED)
    got = [(n, v) for n, v in first.headers if n.lower() not in RESPONSE_OWNED]
    assert got == meant
    received = b"".join(e.data for e in events if isinstance(e, Data))
    expected_body = body if framing is not Framing.NONE else b""
    assert received == expected_body
    assert sum(isinstance(e, ResponseHead) for e in events) == 1
    if status == 101:
        # What follows a 101 is the new protocol: the parser stops, with nothing left over.
        assert isinstance(events[-1], Upgraded)
        assert events[-1].trailing == b""
    else:
        assert isinstance(events[-1], EndOfMessage)
