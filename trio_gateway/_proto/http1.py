"""HTTP/1.1 cores over llhttp (``httptools``): bytes in, events out, and head serialisation.

Why httptools and not h11: measured on this machine kind, a Trio server with h11 answered ~4.1k
req/s and with httptools ~14.8k (docs/decisions.md). llhttp in its default strict mode already
refuses the request-smuggling shapes we must refuse (Content-Length with Transfer-Encoding,
duplicate Content-Length, bad chunk sizes, obs-fold, a Transfer-Encoding that does not end in
chunked, bare LF); we add the limits llhttp leaves to its embedder (header section size, body size).

httptools parses everything fed to it in one call, including pipelined requests, so callbacks only
append to an event queue; the shell pulls events and feeds more bytes only when the queue is empty.
That keeps buffered pipelined data bounded by one read.
"""

from __future__ import annotations

from collections import deque

import httptools

from ..errors import ClientProtocolError, UpstreamProtocolError
from .events import Data, EndOfMessage, Event, RequestHead, ResponseHead, Upgraded

Headers = list[tuple[bytes, bytes]]


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing; turned into a 431."""


class _BodyTooLarge(Exception):
    """Raised inside a parser callback to stop parsing; turned into a 413."""


class _BadHost(Exception):
    """Raised inside a parser callback: no Host in an HTTP/1.1 request, or more than one."""


class _UnsupportedVersion(Exception):
    """Raised inside a parser callback to stop parsing; turned into a 400."""


class H1ServerParser:
    """Parses a client's byte stream into request events.

    ``max_header_bytes`` bounds the request line plus header section (431 beyond it);
    ``max_body_bytes`` > 0 bounds each request body (413 beyond it).
    """

    __slots__ = (
        "_began_in_feed",
        "_body_bytes",
        "_events",
        "_head_bytes",
        "_headers",
        "_in_head",
        "_max_body",
        "_max_head",
        "_parser",
        "_raw_head_bytes",
        "_target",
        "_upgraded",
    )

    def __init__(self, *, max_header_bytes: int = 65536, max_body_bytes: int = 0) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Event] = deque()
        self._max_head = max_header_bytes
        self._max_body = max_body_bytes
        self._headers: Headers = []
        self._target = b""
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._began_in_feed = False
        self._body_bytes = 0
        self._in_head = False
        self._upgraded = False

    # -- public API ------------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        if self._events:
            return self._events.popleft()
        return None

    @property
    def in_head(self) -> bool:
        """True while a request head has started but not finished (for the slowloris timeout)."""
        return self._in_head

    def feed(self, data: bytes) -> None:
        """Feed bytes from the client. Raises ClientProtocolError (400, 413 or 431)."""
        if self._upgraded:
            raise RuntimeError("feed() after a protocol switch")
        self._began_in_feed = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded = True
            self._events.append(Upgraded(data[offset:]))
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadTooLarge):
                raise ClientProtocolError("Request header fields too large", 431) from None
            if isinstance(cause, _BodyTooLarge):
                raise ClientProtocolError("Request body too large", 413) from None
            if isinstance(cause, _BadHost):
                raise ClientProtocolError("Missing or duplicate Host header") from None
            raise ClientProtocolError("Bad Request") from exc
        except httptools.HttpParserError as exc:
            # The message text is llhttp's; it goes to the log, never to the client.
            raise ClientProtocolError(f"Malformed request: {exc}") from exc
        if self._in_head and not self._began_in_feed:
            # A head that began in an earlier feed and is still incomplete: every byte of this
            # feed belongs to it. Counting them (apart from the callbacks' exact count, which
            # they would double) bounds one endless header line, which httptools buffers without
            # a callback; the feed a head begins in is left out, as its start offset is unknown.
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self._max_head:
                raise ClientProtocolError("Request header fields too large", 431)

    # -- llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._began_in_feed = True
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._body_bytes = 0
        self._headers = []
        self._target = b""

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge
        # llhttp drops the leading OWS but keeps the trailing one, which is not part of the
        # value either (RFC 9112 §5): `Expect: 100-continue ` must still mean 100-continue.
        self._headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        content_length: int | None = None
        chunked = False
        expect_continue = False
        upgrade = False
        hosts = 0
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"host":
                hosts += 1
            elif lname == b"content-length":
                content_length = int(value)
            elif lname == b"transfer-encoding":
                chunked = True  # llhttp has checked that chunked is the final coding
            elif lname == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif lname == b"upgrade":
                upgrade = True
        method: bytes = parser.get_method()
        version: str = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            # llhttp accepts "GET /" (HTTP/0.9) and "HTTP/2.0" heads; we speak neither over
            # HTTP/1 syntax, and answering them in HTTP/1.1 would be guessing.
            raise _UnsupportedVersion
        # RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without Host, and to any
        # request with more than one.
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise _BadHost
        if self._max_body and content_length is not None and content_length > self._max_body:
            raise _BodyTooLarge
        self._events.append(
            RequestHead(
                method=method,
                target=self._target,
                headers=self._headers,
                http_version=version,
                keep_alive=parser.should_keep_alive(),
                content_length=content_length,
                chunked=chunked,
                expect_continue=expect_continue,
                upgrade=(upgrade and parser.should_upgrade()) or method == b"CONNECT",
            )
        )

    def on_body(self, body: bytes) -> None:
        if self._max_body:
            self._body_bytes += len(body)
            if self._body_bytes > self._max_body:
                raise _BodyTooLarge
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        # should_keep_alive() is only reliable inside a callback (llhttp resets it afterwards).
        self._events.append(EndOfMessage(self._parser.should_keep_alive()))


class H1ClientParser:
    """Parses an upstream's byte stream into response events (one response per request)."""

    __slots__ = (
        "_events",
        "_headers",
        "_in_message",
        "_parser",
        "_reason",
        "_until_close",
        "_upgraded",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._events: deque[Event] = deque()
        self._headers: Headers = []
        self._reason = b""
        self._upgraded = False
        #: A response has begun and not completed.
        self._in_message = False
        #: The response in progress has neither Content-Length nor chunked: the close ends it.
        self._until_close = False

    def next_event(self) -> Event | None:
        if self._events:
            return self._events.popleft()
        return None

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded = True
            self._events.append(Upgraded(data[offset:]))
        except httptools.HttpParserError as exc:
            raise UpstreamProtocolError(f"Malformed upstream response: {exc}") from exc

    def feed_eof(self) -> None:
        """The upstream closed: completes a read-until-close body, else it is an error.

        httptools has no way to tell llhttp about the end of input (``feed_data(b"")`` is a
        no-op), so the parser tracks the framing itself.
        """
        if not self._in_message:
            return  # closed between responses: the caller decides whether that is an error
        if self._until_close:
            self._in_message = False
            self._events.append(EndOfMessage(False))
            return
        raise UpstreamProtocolError("Upstream closed the connection mid-response")

    # -- llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""
        self._in_message = True
        self._until_close = False

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        # As for requests: the trailing OWS llhttp keeps is not part of the value (RFC 9112 §5).
        self._headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        content_length: int | None = None
        codings: list[bytes] | None = None
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                content_length = int(value)
            elif lname == b"transfer-encoding":
                if codings is None:
                    codings = []
                codings.extend(c.strip().lower() for c in value.split(b","))
        chunked = False
        transfer_coding = b""
        if codings is not None:
            # RFC 9112 §6.3: a Transfer-Encoding whose final coding is chunked is chunked (3);
            # any other Transfer-Encoding is read until the close (3, llhttp does so), whatever
            # coding it names: that coding is the client's to undo, so it is passed on. (The
            # usual response has none: no lists are made for it.)
            chunked = bool(codings) and codings[-1] == b"chunked"
            transfer_coding = b", ".join([c for c in codings if c and c != b"chunked"])
            content_length = None
        status = parser.get_status_code()
        self._events.append(
            ResponseHead(
                status=status,
                reason=self._reason,
                headers=self._headers,
                http_version=parser.get_http_version(),
                keep_alive=parser.should_keep_alive(),
                content_length=content_length,
                chunked=chunked,
                transfer_coding=transfer_coding,
            )
        )
        self._until_close = (
            ((codings is not None and not chunked) or (content_length is None and not chunked))
            and status >= 200
            and status not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(EndOfMessage(self._parser.should_keep_alive()))
