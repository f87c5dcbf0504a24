"""A bug in a request handler costs that request a 500, never the server or the connection."""

from __future__ import annotations

import json

import trio

from tests.helpers.client import open_client
from trio_gateway._error_body import error_response
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer


async def flaky_handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("secret internal detail")
    return error_response(418, "fine")


async def test_unexpected_handler_error_answers_500_and_keeps_serving(
    nursery: trio.Nursery,
) -> None:
    server = HttpServer(handler=flaky_handler)
    address = await nursery.start(server.serve, "127.0.0.1", 0)
    async with open_client(address) as client:
        broken = await client.request("GET", "/boom")
        assert broken.status == 500
        assert json.loads(broken.body) == {"error": "Internal Server Error"}
        assert b"secret" not in broken.body
        # Same connection, next request: still served.
        assert (await client.request("GET", "/ok")).status == 418
    server.shutdown()
