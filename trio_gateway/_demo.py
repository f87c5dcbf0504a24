"""The demo upstream `trio-gateway run` starts when no API folder is given.

It answers every request with a small JSON document describing what it received, so the README's
``curl`` line shows a proxied response (and the headers the gateway added) at once.
"""

from __future__ import annotations

import json

from ._exchange import Request, Response

DEMO_HOST = "127.0.0.1"

_SHOWN_HEADERS = (
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"user-agent",
    b"content-type",
)


async def demo_handler(request: Request) -> Response:
    body = await request.read_body(limit=1 << 20)
    document = {
        "message": "Hello from the trio-gateway demo upstream",
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in request.headers
            if name.lower() in _SHOWN_HEADERS
        },
        "body_bytes": len(body),
    }
    return Response(
        status=200,
        headers=[(b"Content-Type", b"application/json")],
        body_bytes=json.dumps(document, indent=2).encode() + b"\n",
    )
