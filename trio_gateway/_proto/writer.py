"""The HTTP/1.1 send side (pure): message heads for both directions and their body framing.

The shells (``_server.py`` towards clients, ``_upstream/proxy.py`` towards upstreams) only move the
bytes this module returns. Every decision about what goes on the wire is made here, once, as h11's
``Connection.send`` does:

* **Validation.** A head is refused (:class:`InvalidHead`) unless every field name is a token,
  no field value holds a control character other than HTAB (CR, LF and NUL above all: they would
  end the line, and with it the message), the method is one the gateway's own parser accepts
  (:data:`METHODS`: tokens all), the request target holds no
  whitespace or control, and the status is three digits (RFC 9110 §5.1, §5.5, §9.1; RFC 9112
  §3.2). Values come from parsers, the gateway and plugin hooks alike; whatever their source, a
  refused head is never sent. Hooks' values are also checked right after each hook
  (``check_request``/``check_response``, called by the pipeline runner), so that the failure is the
  hook's; the check here is the last line, and kept cheap: field names are checked once per
  distinct name (a bounded cache), values with one ``bytes.translate`` over the whole head.
* **Framing.** The framing headers are always the writer's: whatever the headers handed in say,
  ``Content-Length``, ``Transfer-Encoding``, ``Connection`` (and ``Keep-Alive``) are dropped and
  exactly one framing header is written from the body the caller actually sends (RFC 9112 §6).
* **No body** for 101, 204, 304 and answers to HEAD (RFC 9110 §6.4.1); 204 carries no
  ``Content-Length``, 304 and HEAD answers keep the length a GET would have had. Interim
  answers are the gateway's own: ``100 Continue`` is :data:`CONTINUE_HEAD`, 1xx from upstreams
  are not passed on, and :func:`response_head` refuses a 1xx as a final response (a 101 only
  goes out with the ``Upgrade`` it switches to).
* **Keep-alive.** ``Connection: close`` when the connection ends after this message, and
  ``Connection: keep-alive`` for an HTTP/1.0 peer that keeps it open; an HTTP/1.0 peer gets an
  unknown-length body delimited by the close (it cannot read chunked).
"""

from __future__ import annotations

import enum
import re
from typing import Final

Headers = list[tuple[bytes, bytes]]


class InvalidHead(ValueError):
    """A head the writer refuses to send (a value would split or corrupt the message)."""


class Framing(enum.Enum):
    """How the body after a head is delimited."""

    #: No body follows (1xx, 204, 304, an answer to HEAD, a request without body).
    NONE = "none"
    #: Exactly ``Content-Length`` bytes follow, as they are.
    LENGTH = "length"
    #: Chunked: each piece through :func:`encode_chunk`, then :data:`LAST_CHUNK`.
    CHUNKED = "chunked"
    #: The bytes as they are, until the connection closes (HTTP/1.0 peers, unknown length).
    CLOSE = "close"


# -- field checks ---------------------------------------------------------------------------------

#: RFC 9110 §5.6.2 token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Everything a field value may hold: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5). CR and LF are
#: not in it: :func:`_check_head` counts what is left, which must be the head's own line ends.
_VALUE_BYTES: Final = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b <= 0x7E or b >= 0x80)
#: A request target is visible ASCII only (RFC 9112 §3.2; RFC 3986 has no other characters).
_TARGET_BYTES: Final = bytes(range(0x21, 0x7F))

#: Field names already found to be tokens. The common ones are there from the start; others are
#: added as seen, up to a bound (so that a stream of made-up names cannot grow it without end).
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX: Final = 4096
#: Longer names are checked every time: the caches must not hold a client's 60 KiB header names.
_CACHED_NAME_MAX: Final = 64
#: The methods the gateway sends: the ones its own parser (llhttp) accepts from clients. RFC 9110
#: allows any token, but an upstream (or this gateway behind another) may refuse what llhttp does,
#: and a method we would not take in is not one a hook should send out (docs/tyk-differences.md).
METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)


def _seed_names() -> None:
    common = (
        "Host Content-Length Transfer-Encoding Connection Keep-Alive Content-Type Accept "
        "Accept-Encoding Accept-Language User-Agent Authorization Cookie Set-Cookie Date Server "
        "Cache-Control ETag Last-Modified Location Vary X-Forwarded-For X-Forwarded-Proto "
        "X-Forwarded-Host X-Request-ID X-Generator X-RateLimit-Limit X-RateLimit-Remaining "
        "X-RateLimit-Reset Upgrade Expect Content-Encoding"
    )
    for name in common.split():
        _GOOD_NAMES.add(name.encode())
        _GOOD_NAMES.add(name.lower().encode())


_seed_names()


def check_name(name: bytes) -> None:
    """Raise :class:`InvalidHead` unless ``name`` is a field name (a token)."""
    if name in _GOOD_NAMES:
        return
    if _TOKEN.fullmatch(name) is None:
        raise InvalidHead(f"invalid header name {name!r}")
    if len(name) <= _CACHED_NAME_MAX and len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)


def check_value(value: bytes) -> None:
    """Raise :class:`InvalidHead` if ``value`` holds a control character (CR, LF, NUL...)."""
    if value.translate(None, _VALUE_BYTES):
        raise InvalidHead(f"invalid header value {value!r}")


def check_headers(headers: Headers) -> None:
    """Check every name and value of ``headers``."""
    good = _GOOD_NAMES
    for name, _ in headers:
        if name not in good:
            check_name(name)
    # All values in one pass: ``translate`` pays for its deletion table on every call, so one
    # call over the joined values costs a fraction of one per value.
    if b"".join([value for _, value in headers]).translate(None, _VALUE_BYTES):
        for name, value in headers:
            if value.translate(None, _VALUE_BYTES):
                raise InvalidHead(f"invalid value of header {name!r}: {value!r}")


def check_method(method: bytes) -> None:
    """Raise :class:`InvalidHead` unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise InvalidHead(f"unsupported method {method!r}")


def check_target(target: bytes) -> None:
    """A request target: not empty, visible ASCII only (no whitespace, no controls)."""
    if not target or target.translate(None, _TARGET_BYTES):
        raise InvalidHead(f"invalid request target {target!r}")


_TEXT_METHODS: Final = frozenset(m.decode() for m in METHODS)
#: ``str.translate`` table deleting what a request target may hold (visible ASCII).
_TARGET_TEXT: Final = dict.fromkeys(range(0x21, 0x7F))


def check_request(method: str, path: str, query: str, headers: Headers) -> None:
    """Check what a hook may have set on a request (its text fields are ``str``)."""
    if method not in _TEXT_METHODS:
        raise InvalidHead(f"unsupported method {method!r}")
    if not path or path.translate(_TARGET_TEXT) or (query and query.translate(_TARGET_TEXT)):
        raise InvalidHead(f"invalid request target {path!r} {query!r}")
    check_headers(headers)


def check_response(status: int, headers: Headers) -> None:
    """Check what a hook may have set on a response (a final one: 1xx are the gateway's)."""
    if not 200 <= status <= 999:
        raise InvalidHead(f"a hook cannot answer with status {status!r}")
    check_headers(headers)


def _check_head(head: bytes, lines: int) -> None:
    """The last line of defence: ``head`` holds no control character but the ``lines`` CR LF
    pairs the writer put there. One pass in C, whatever the number of fields: deleting every byte
    a field may hold leaves exactly those pairs, or a value (or name, method, target) brought a
    CR, LF, NUL or other control of its own."""
    if len(head.translate(None, _VALUE_BYTES)) != 2 * lines:
        raise InvalidHead("a header name or value holds CR, LF or a control character")


# -- serialisation --------------------------------------------------------------------------------

_REASONS: dict[int, bytes] = {
    100: b"Continue",
    101: b"Switching Protocols",
    103: b"Early Hints",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

_STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()
}

#: The interim answer to ``Expect: 100-continue``.
CONTINUE_HEAD: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"

#: Response fields the writer owns: whatever a hook or the upstream says, these are ours.
RESPONSE_OWNED: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"keep-alive"}
)


def status_line(status: int, reason: bytes = b"") -> bytes:
    if not reason:
        cached = _STATUS_LINES.get(status)
        if cached is not None:
            return cached
    if not 100 <= status <= 999:
        raise InvalidHead(f"invalid status {status!r}")
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or _REASONS.get(status, b"Unknown"))


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def frame(framing: Framing, data: bytes) -> bytes:
    """``data`` as it goes on the wire under ``framing`` (a chunk when chunked)."""
    return encode_chunk(data) if framing is Framing.CHUNKED and data else data


def _serialise(
    first_line: bytes,
    first_lines: int,
    headers: Headers,
    skip: frozenset[bytes],
    extra: Headers | None,
    own: tuple[bytes, ...],
) -> bytes:
    """``first_line`` (``first_lines`` CRLF-ended lines), ``headers`` without the names in
    ``skip`` (names checked), ``extra`` (gateway-made), the writer's ``own`` lines (each one
    complete line), the blank line; the whole head checked for stray controls."""
    parts = [first_line]
    append = parts.append
    # One dict lookup per field tells both whether the name was checked and whether to drop it
    # (bytes cache their hash, so this is cheaper than lower-casing every name).
    verdicts = _VERDICTS.get(skip)
    if verdicts is None:
        verdicts = {}  # a skip set nobody registered (rare): no cache
    for name, value in headers:
        drop = verdicts.get(name)
        if drop is None:
            drop = _verdict(name, skip, verdicts)
        if not drop:
            append(name + b": " + value + b"\r\n")
    if extra:
        for name, value in extra:
            append(name + b": " + value + b"\r\n")
    parts.extend(own)
    append(b"\r\n")
    head = b"".join(parts)
    _check_head(head, len(parts) - 1 + first_lines)
    return head


def _verdict(name: bytes, skip: frozenset[bytes], verdicts: dict[bytes, bool]) -> bool:
    drop = name.lower() in skip
    if not drop:
        check_name(name)
    if len(name) <= _CACHED_NAME_MAX and len(verdicts) < _GOOD_NAMES_MAX:
        verdicts[name] = drop
    return drop


# The writer's own lines, made once.
_LENGTH_LINE: Final = b"Content-Length: %d\r\n"
_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE: Final = b"Connection: close\r\n"
_KEEP_ALIVE_LINE: Final = b"Connection: keep-alive\r\n"
_UPGRADE_LINE: Final = b"Connection: upgrade\r\n"
_NONE: Final = Framing.NONE
_LENGTH: Final = Framing.LENGTH
_CHUNKED_FRAMING: Final = Framing.CHUNKED


def response_head(
    status: int,
    reason: bytes,
    headers: Headers,
    *,
    body_length: int | None,
    bodiless: bool = False,
    head_request: bool = False,
    keep_alive: bool = True,
    http10: bool = False,
    transfer_coding: bytes = b"",
    extra: Headers | None = None,
) -> tuple[bytes, Framing, bool]:
    """The head of a response and how its body goes: ``(head, framing, keep_alive)``.

    ``body_length`` is the length of the body the caller will send (None: unknown, streamed);
    ``bodiless`` says the response has no body whatever its status (an upstream's answer to HEAD);
    ``transfer_coding`` names codings other than chunked the upstream applied to a body we pass on
    as it is (then the body is chunked after them). ``extra`` are gateway-made fields, after the
    others. The returned ``keep_alive`` is False when the body is delimited by the close.
    """
    framing = _NONE
    length_line = b""
    if status < 200:
        # Interim answers are not final responses (100 Continue is CONTINUE_HEAD); a 101 only
        # with the protocol it switches to (RFC 9110 §15.2.2), or the peer cannot follow.
        if status != 101 or not any(n.lower() == b"upgrade" for n, _ in headers):
            raise InvalidHead(f"status {status} is not a final response")
    elif status == 204:
        pass  # never a body, never a length (RFC 9110 §8.6)
    elif bodiless or head_request or status == 304:
        if body_length is not None and not transfer_coding:
            length_line = _LENGTH_LINE % body_length
    elif transfer_coding:
        if http10:
            raise InvalidHead("a transfer-coded body cannot go to an HTTP/1.0 client")
        length_line = b"Transfer-Encoding: " + transfer_coding + b", chunked\r\n"
        framing = _CHUNKED_FRAMING
    elif body_length is not None:
        length_line = _LENGTH_LINE % body_length
        framing = _LENGTH
    elif not http10:
        length_line = _CHUNKED_LINE
        framing = _CHUNKED_FRAMING
    else:
        framing = Framing.CLOSE
        keep_alive = False
    if head_request:
        framing = _NONE
    if status == 101:
        connection_line = _UPGRADE_LINE  # what follows is the new protocol
    elif not keep_alive:
        connection_line = _CLOSE_LINE
    elif http10:
        connection_line = _KEEP_ALIVE_LINE
    else:
        connection_line = b""
    own: tuple[bytes, ...]
    if length_line:
        own = (length_line, connection_line) if connection_line else (length_line,)
    else:
        own = (connection_line,) if connection_line else ()
    first = _STATUS_LINES.get(status) if not reason else None
    if first is None:
        first = status_line(status, reason)
    head = _serialise(first, 1, headers, RESPONSE_OWNED, extra, own)
    return head, framing, keep_alive


def request_head(
    method: bytes,
    target: bytes,
    host: bytes,
    headers: Headers,
    *,
    skip: frozenset[bytes],
    extra: Headers,
    body_length: int | None,
    chunked: bool = False,
) -> tuple[bytes, Framing]:
    """The head of a request to an upstream and how its body goes.

    ``skip`` names fields of ``headers`` not to send (lower case; the caller's hop-by-hop set,
    ``extra``'s names; framing and ``Host`` are always dropped); ``Host`` comes first, then
    ``headers``, then ``extra`` (gateway-made), then the framing field: ``Content-Length`` when
    ``body_length`` is given, else chunked when ``chunked``, else none (no body).
    """
    check_method(method)
    check_target(target)
    own: tuple[bytes, ...]
    if body_length is not None:
        own = (_LENGTH_LINE % body_length,)
        framing = _LENGTH
    elif chunked:
        own = (_CHUNKED_LINE,)
        framing = _CHUNKED_FRAMING
    else:
        own = ()
        framing = _NONE
    first = method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
    owned = _REQUEST_SKIPS.get(skip)
    if owned is None:
        owned = skip | REQUEST_OWNED  # not registered (a client's own Connection tokens)
    return _serialise(first, 2, headers, owned, extra, own), framing


#: Request fields the writer owns.
REQUEST_OWNED: Final = frozenset({b"content-length", b"transfer-encoding", b"host"})
#: ``skip | REQUEST_OWNED`` per registered ``skip`` (see :func:`request_skip`).
_REQUEST_SKIPS: dict[frozenset[bytes], frozenset[bytes]] = {}
#: Per registered skip set: field name -> whether it is dropped (True) or sent (False, a checked
#: token). Bounded like ``_GOOD_NAMES``.
_VERDICTS: dict[frozenset[bytes], dict[bytes, bool]] = {RESPONSE_OWNED: {}}


def request_skip(skip: frozenset[bytes]) -> frozenset[bytes]:
    """Register a constant ``skip`` set for :func:`request_head` (at import time), so that its
    verdicts per field name are cached; returns it. Sets made per request are not registered:
    they work the same, uncached."""
    owned = _REQUEST_SKIPS[skip] = skip | REQUEST_OWNED
    _VERDICTS.setdefault(owned, {})
    return skip
