"""Responses the gateway writes itself, in Tyk's error format.

Tyk renders ``{"error": "<message>"}`` from a template with Go's JavaScript escaping, which turns
``'`` into ``\\'`` and so is not valid JSON. We always emit valid JSON (``json.dumps``) with
the same shape and layout; see docs/tyk-differences.md.
"""

from __future__ import annotations

import json

from ._exchange import Response
from .errors import ClientProtocolError, GatewayError

JSON_CONTENT_TYPE = b"application/json"
#: The headers of every error the gateway writes (Tyk: ``Content-Type`` and ``X-Generator``).
ERROR_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Type", JSON_CONTENT_TYPE),
    (b"X-Generator", b"trio-gateway"),
)

#: Tyk's messages for the statuses the gateway produces itself.
STANDARD_MESSAGES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "There was a problem proxying the request",
    503: "Service Unavailable",
    504: "Upstream service reached hard timeout.",
}


def error_body(message: str) -> bytes:
    """Tyk's error document for ``message``: valid JSON, Tyk's four-space layout."""
    return b'{\n    "error": ' + json.dumps(message).encode() + b"\n}"


def error_response(status: int, message: str | None = None) -> Response:
    """A complete gateway-made error response."""
    body = error_body(message if message is not None else STANDARD_MESSAGES.get(status, "Error"))
    return Response(
        status=status,
        headers=list(ERROR_HEADERS),
        body_bytes=body,
    )


def gateway_error_response(exc: GatewayError) -> Response:
    """The client's answer for an error the gateway raised on purpose: the one mapping, shared by
    the server and the test kit's in-process transport so that both answer alike.

    A client protocol error carries its own status (400, 413, 431) and gets that status's
    standard message; the rest answer with their class's status and public message.
    """
    if isinstance(exc, ClientProtocolError):
        return error_response(exc.status, None)
    return error_response(exc.status_hint, exc.public_message)
