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
#: not in it: :func:`_check_head` counts the other bytes, which must be the head's own line ends.
_VALUE_BYTES: Final = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b <= 0x7E or b >= 0x80)
#: What a field value may not hold: the complement of ``_VALUE_BYTES`` (controls but HTAB, DEL).
#: ``bytes.translate`` builds its deletion table per call from the bytes it is given, so deleting
#: these 32 costs a good deal less than deleting the 224 a value may hold; the count is the same.
_CONTROL_BYTES: Final = bytes(b for b in range(256) if b not in _VALUE_BYTES)

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


def _good_values(values: bytes) -> bool:
    """Whether ``values`` holds only what a field value may hold (``_VALUE_BYTES``).

    The usual value is printable ASCII, which two C scans prove (ASCII, then printable: 0x20 to
    0x7E); anything else (HTAB, obs-text, a control) gets the exact count by ``translate``."""
    if values.isascii() and values.decode("ascii").isprintable():
        return True
    return len(values.translate(None, _CONTROL_BYTES)) == len(values)


def check_value(value: bytes) -> None:
    """Raise :class:`InvalidHead` if ``value`` holds a control character (CR, LF, NUL...)."""
    if not _good_values(value):
        raise InvalidHead(f"invalid header value {value!r}")


def check_headers(headers: Headers) -> None:
    """Check every name and value of ``headers``."""
    good = _GOOD_NAMES
    for name, _ in headers:
        if name not in good:
            check_name(name)
    # All values in one pass: one check over the joined values costs a fraction of one per value.
    if not _good_values(b"".join([value for _, value in headers])):
        for name, value in headers:
            if not _good_values(value):
                raise InvalidHead(f"invalid value of header {name!r}: {value!r}")


def check_method(method: bytes) -> None:
    """Raise :class:`InvalidHead` unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise InvalidHead(f"unsupported method {method!r}")


def _visible_ascii(text: str) -> bool:
    """Whether ``text`` is visible ASCII only (0x21 to 0x7E): ASCII, printable (0x20 to 0x7E),
    no space. Three C scans; ``str.translate`` with a table is a dict lookup per character."""
    return text.isascii() and text.isprintable() and " " not in text


def check_target(target: bytes) -> None:
    """A request target: not empty, visible ASCII only (no whitespace, no controls)."""
    if not target or not (target.isascii() and _visible_ascii(target.decode("ascii"))):
        raise InvalidHead(f"invalid request target {target!r}")


_TEXT_METHODS: Final = frozenset(m.decode() for m in METHODS)


def check_request(method: str, path: str, query: str, headers: Headers) -> None:
    """Check what a hook may have set on a request (its text fields are ``str``)."""
    if method not in _TEXT_METHODS:
        raise InvalidHead(f"unsupported method {method!r}")
    if not path or not _visible_ascii(path) or (query and not _visible_ascii(query)):
        raise InvalidHead(f"invalid request target {path!r} {query!r}")
    check_headers(headers)


def check_response(status: int, headers: Headers) -> None:
    """Check what a hook may have set on a response (a final one: 1xx are the gateway's)."""
    if not 200 <= status <= 999:
        raise InvalidHead(f"a hook cannot answer with status {status!r}")
    check_headers(headers)


def _check_head(head: bytes, lines: int) -> None:
    """The last line of defence: ``head`` holds no control character but the ``lines`` CR LF
    pairs the writer put there. One pass in C, whatever the number of fields: deleting every
    control takes away exactly those pairs, or a value (or name, method, target) brought a CR,
    LF, NUL or other control of its own."""
    if len(head) - len(head.translate(None, _CONTROL_BYTES)) != 2 * lines:
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
    # The module's alias, not ``Framing.CHUNKED``: an enum member read off its class costs a
    # lookup through the enum's metaclass (~25 ns in CPython 3.11), per chunk here.
    return encode_chunk(data) if framing is _CHUNKED_FRAMING and data else data


def _serialise(
    first: bytes,
    first_lines: int,
    headers: Headers,
    skip: frozenset[bytes],
    extra: Headers | None,
    own: tuple[bytes, ...],
) -> bytes:
    """``first`` (``first_lines`` lines, the last without its CR LF), ``headers`` without the
    names in ``skip`` (names checked), ``extra`` (gateway-made), the writer's ``own`` lines (each
    one line without its CR LF), the blank line; the whole head checked for stray controls."""
    parts = [first]
    append = parts.append
    # One dict lookup per field gives the line's start (``Name: ``) once the name is checked, or
    # b"" for a field to drop (bytes cache their hash, so this is cheaper than lower-casing every
    # name); the lines are joined with CR LF in one go, not ended one by one.
    prefixes = _PREFIXES.get(skip)
    if prefixes is None:
        prefixes = {}  # a skip set nobody registered (rare): no cache
    for name, value in headers:
        prefix = prefixes.get(name)
        if prefix is None:
            prefix = _prefix(name, skip, prefixes)
        if prefix:
            append(prefix + value)
    if extra:
        for name, value in extra:
            append(name + b": " + value)
    parts.extend(own)
    # Two empty parts: the last line's CR LF and the blank line that ends the head.
    append(b"")
    append(b"")
    head = b"\r\n".join(parts)
    _check_head(head, len(parts) - 2 + first_lines)
    return head


def _prefix(name: bytes, skip: frozenset[bytes], prefixes: dict[bytes, bytes]) -> bytes:
    """``name: `` for a field to send (its name checked), b"" for one in ``skip``; kept in
    ``prefixes`` unless the name is long or the cache full."""
    if name.lower() in skip:
        prefix = b""
    else:
        check_name(name)
        prefix = name + b": "
    if len(name) <= _CACHED_NAME_MAX and len(prefixes) < _GOOD_NAMES_MAX:
        prefixes[name] = prefix
    return prefix


# The writer's own lines, made once (without their CR LF, as _serialise wants them).
_LENGTH_LINE: Final = b"Content-Length: %d"
_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked"
_CLOSE_LINE: Final = b"Connection: close"
_KEEP_ALIVE_LINE: Final = b"Connection: keep-alive"
_UPGRADE_LINE: Final = b"Connection: upgrade"
_NONE: Final = Framing.NONE
_LENGTH: Final = Framing.LENGTH
_CHUNKED_FRAMING: Final = Framing.CHUNKED
#: ``_STATUS_LINES`` without their CR LF.
_STATUS_TEXT: Final = {code: line[:-2] for code, line in _STATUS_LINES.items()}


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
        length_line = b"Transfer-Encoding: " + transfer_coding + b", chunked"
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
    # The upstream's reason is usually the standard one ("200 OK"): the line made once serves.
    first = _STATUS_TEXT.get(status)
    if first is None or (reason and reason != _REASONS[status]):
        first = status_line(status, reason)[:-2]
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
    first = method + b" " + target + b" HTTP/1.1\r\nHost: " + host
    owned = _REQUEST_SKIPS.get(skip)
    if owned is None:
        owned = skip | REQUEST_OWNED  # not registered (a client's own Connection tokens)
    return _serialise(first, 2, headers, owned, extra, own), framing


#: Request fields the writer owns.
REQUEST_OWNED: Final = frozenset({b"content-length", b"transfer-encoding", b"host"})
#: ``skip | REQUEST_OWNED`` per registered ``skip`` (see :func:`request_skip`).
_REQUEST_SKIPS: dict[frozenset[bytes], frozenset[bytes]] = {}
#: Per registered skip set: field name -> b"" if it is dropped, else the start of its line
#: (``Name: ``, the name a checked token). Bounded like ``_GOOD_NAMES``.
_PREFIXES: dict[frozenset[bytes], dict[bytes, bytes]] = {RESPONSE_OWNED: {}}


def request_skip(skip: frozenset[bytes]) -> frozenset[bytes]:
    """Register a constant ``skip`` set for :func:`request_head` (at import time), so that its
    line starts per field name are cached; returns it. Sets made per request are not registered:
    they work the same, uncached."""
    owned = _REQUEST_SKIPS[skip] = skip | REQUEST_OWNED
    _PREFIXES.setdefault(owned, {})
    return skip
