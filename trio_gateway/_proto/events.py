"""Events the HTTP/1.1 cores produce. Plain slotted classes: they are created per request."""

from __future__ import annotations

from typing import Final

import attrs

Headers = list[tuple[bytes, bytes]]


@attrs.define(slots=True, eq=False)
class RequestHead:
    method: bytes
    target: bytes
    headers: Headers
    http_version: str
    keep_alive: bool
    #: Content-Length as sent, or None (chunked, or no body).
    content_length: int | None
    chunked: bool
    expect_continue: bool
    #: The client asked to switch protocols (``Upgrade`` + ``Connection: upgrade``) or CONNECT.
    upgrade: bool


@attrs.define(slots=True, eq=False)
class ResponseHead:
    status: int
    reason: bytes
    headers: Headers
    http_version: str
    keep_alive: bool
    content_length: int | None
    chunked: bool
    #: Transfer codings other than chunked the body carries (``b"gzip"``), comma-joined, or b"".
    transfer_coding: bytes = b""


@attrs.define(slots=True, eq=False)
class Data:
    data: bytes


@attrs.define(slots=True, eq=False)
class EndOfMessage:
    #: Whether the connection may carry another message (known for sure only at the end).
    keep_alive: bool


@attrs.define(slots=True, eq=False)
class Upgraded:
    """The parser stopped at a protocol switch; ``trailing`` is raw data after the head."""

    trailing: bytes


Event = RequestHead | ResponseHead | Data | EndOfMessage | Upgraded

NEED_DATA: Final = None
