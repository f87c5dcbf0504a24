"""The send side (``_proto/writer.py``): what it refuses, and the framing it decides."""

from __future__ import annotations

import pytest

from trio_gateway._proto.writer import (
    CONTINUE_HEAD,
    Framing,
    InvalidHead,
    check_headers,
    check_method,
    check_request,
    check_response,
    check_target,
    request_head,
    response_head,
    status_line,
)

Headers = list[tuple[bytes, bytes]]


def fields(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:-2]
    return [(n, v) for n, _, v in (line.partition(b": ") for line in lines)]


def first_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


# -- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-A", b"a\r\nX-B: b")],
        [(b"X-A", b"a\nb")],
        [(b"X-A", b"a\rb")],
        [(b"X-A", b"a\x00b")],
        [(b"X-A", b"a\x7fb")],
        [(b"X A", b"v")],
        [(b"X-A:", b"v")],
        [(b"", b"v")],
        [(b"Transfer-Encoding:chunked", b"v")],
        [(b"X-\xe9", b"v")],
    ],
)
def test_fields_that_would_split_or_corrupt_a_head_are_refused(headers: Headers) -> None:
    with pytest.raises(InvalidHead):
        check_headers(headers)
    with pytest.raises(InvalidHead):
        response_head(200, b"", headers, body_length=0)
    with pytest.raises(InvalidHead):
        request_head(b"GET", b"/", b"h", headers, skip=frozenset(), extra=[], body_length=None)


def test_tabs_spaces_and_obs_text_are_allowed_in_values() -> None:
    check_headers([(b"X-A", b"a\tb c \xe9")])


@pytest.mark.parametrize("method", [b"GET /admin", b"G\r\nET", b"", b"get", b"FOO"])
def test_bad_methods_are_refused(method: bytes) -> None:
    with pytest.raises(InvalidHead):
        check_method(method)


@pytest.mark.parametrize("target", [b"", b"/a b", b"/a\tb", b"/a\r\n", b"/\x7f", b"/\xe9"])
def test_bad_targets_are_refused(target: bytes) -> None:
    with pytest.raises(InvalidHead):
        check_target(target)


def test_check_request_takes_the_text_fields_hooks_set() -> None:
    check_request("GET", "/a/b", "x=1&y=%20", [(b"x-a", b"1")])
    with pytest.raises(InvalidHead):
        check_request("GET", "/caf\u00e9", "", [])
    with pytest.raises(InvalidHead):
        check_request("GET", "/", "a b", [])
    with pytest.raises(InvalidHead):
        check_request("P\u00d6ST", "/", "", [])


def test_check_response_refuses_statuses_that_are_not_three_digits() -> None:
    check_response(599, [])
    for status in (99, 100, 1000, -1):
        with pytest.raises(InvalidHead):
            check_response(status, [])
    with pytest.raises(InvalidHead):
        status_line(1000, b"Big")


# -- response framing -----------------------------------------------------------------------------


def test_a_hook_s_framing_fields_never_reach_the_head() -> None:
    hooked = [
        (b"content-length", b"3"),
        (b"Content-Length", b"99"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"keep-alive, x-a"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-A", b"1"),
    ]
    head, framing, keep_alive = response_head(200, b"", hooked, body_length=10)
    assert fields(head) == [(b"X-A", b"1"), (b"Content-Length", b"10")]
    assert (framing, keep_alive) == (Framing.LENGTH, True)


@pytest.mark.parametrize(
    ("status", "kwargs", "expected_fields", "framing"),
    [
        (204, {"body_length": 0}, [], Framing.NONE),
        (304, {"body_length": 42}, [(b"Content-Length", b"42")], Framing.NONE),
        (304, {"body_length": None}, [], Framing.NONE),
        (200, {"body_length": 5, "head_request": True}, [(b"Content-Length", b"5")], Framing.NONE),
        (200, {"body_length": 5, "bodiless": True}, [(b"Content-Length", b"5")], Framing.NONE),
        (200, {"body_length": None}, [(b"Transfer-Encoding", b"chunked")], Framing.CHUNKED),
        (
            200,
            {"body_length": None, "transfer_coding": b"gzip"},
            [(b"Transfer-Encoding", b"gzip, chunked")],
            Framing.CHUNKED,
        ),
        (200, {"body_length": 0}, [(b"Content-Length", b"0")], Framing.LENGTH),
    ],
)
def test_response_framing(
    status: int, kwargs: dict[str, object], expected_fields: Headers, framing: Framing
) -> None:
    head, got_framing, _ = response_head(status, b"", [], **kwargs)  # type: ignore[arg-type]
    assert fields(head) == expected_fields
    assert got_framing is framing


def test_interim_statuses_are_not_final_responses() -> None:
    for status in (100, 103, 199):
        with pytest.raises(InvalidHead):
            response_head(status, b"", [], body_length=None)
    with pytest.raises(InvalidHead):
        response_head(101, b"", [], body_length=None)  # a switch to no protocol
    head, framing, _ = response_head(101, b"", [(b"Upgrade", b"websocket")], body_length=None)
    assert fields(head) == [(b"Upgrade", b"websocket"), (b"Connection", b"upgrade")]
    assert framing is Framing.NONE
    with pytest.raises(InvalidHead):
        check_response(101, [(b"Upgrade", b"websocket")])  # hooks answer with final statuses


def test_keep_alive_and_http10() -> None:
    head, framing, keep_alive = response_head(200, b"", [], body_length=1, keep_alive=False)
    assert fields(head)[-1] == (b"Connection", b"close")
    assert not keep_alive
    head, framing, keep_alive = response_head(200, b"", [], body_length=1, http10=True)
    assert fields(head)[-1] == (b"Connection", b"keep-alive")
    assert keep_alive
    # HTTP/1.0 cannot read chunked: an unknown length runs to the close.
    head, framing, keep_alive = response_head(200, b"", [], body_length=None, http10=True)
    assert fields(head) == [(b"Connection", b"close")]
    assert (framing, keep_alive) == (Framing.CLOSE, False)
    with pytest.raises(InvalidHead):
        response_head(200, b"", [], body_length=None, http10=True, transfer_coding=b"gzip")


def test_extra_fields_come_last_and_the_reason_is_kept() -> None:
    head, _, _ = response_head(
        200, b"Fine", [(b"X-A", b"1")], body_length=0, extra=[(b"X-Request-ID", b"r")]
    )
    assert first_line(head) == b"HTTP/1.1 200 Fine"
    assert fields(head) == [(b"X-A", b"1"), (b"X-Request-ID", b"r"), (b"Content-Length", b"0")]


def test_continue_head() -> None:
    assert CONTINUE_HEAD == b"HTTP/1.1 100 Continue\r\n\r\n"


# -- request framing ------------------------------------------------------------------------------


def test_request_head_puts_host_first_and_owns_framing() -> None:
    head, framing = request_head(
        b"POST",
        b"/up?x=1",
        b"example.com:8080",
        [
            (b"Host", b"client.example"),
            (b"Content-Length", b"3"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Skip", b"1"),
            (b"X-A", b"1"),
        ],
        skip=frozenset({b"x-skip"}),
        extra=[(b"X-Forwarded-For", b"127.0.0.1")],
        body_length=None,
        chunked=True,
    )
    assert first_line(head) == b"POST /up?x=1 HTTP/1.1"
    assert fields(head) == [
        (b"Host", b"example.com:8080"),
        (b"X-A", b"1"),
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"Transfer-Encoding", b"chunked"),
    ]
    assert framing is Framing.CHUNKED


@pytest.mark.parametrize(
    ("body_length", "chunked", "field", "framing"),
    [
        (12, False, [(b"Content-Length", b"12")], Framing.LENGTH),
        (None, False, [], Framing.NONE),
    ],
)
def test_request_body_framing(
    body_length: int | None, chunked: bool, field: Headers, framing: Framing
) -> None:
    head, got = request_head(
        b"PUT", b"/", b"h", [], skip=frozenset(), extra=[], body_length=body_length
    )
    assert fields(head)[1:] == field
    assert got is framing


def test_a_host_that_would_split_the_head_is_refused() -> None:
    with pytest.raises(InvalidHead):
        request_head(b"GET", b"/", b"h\r\nX: y", [], skip=frozenset(), extra=[], body_length=None)


def test_the_name_caches_keep_no_long_names() -> None:
    """A client's huge header names are checked every time, never kept (memory stays bounded)."""
    from trio_gateway._proto import writer

    long_name = b"X-" + b"a" * 5000
    head, _, _ = response_head(200, b"", [(long_name, b"v")], body_length=0)
    assert long_name + b": v\r\n" in head
    assert long_name not in writer._GOOD_NAMES
    assert all(long_name not in prefixes for prefixes in writer._PREFIXES.values())
