"""WebSocket upgrades tunnelled through the gateway, and https upstreams verified with a test CA."""

from __future__ import annotations

from pathlib import Path

import trio
import trustme
import wsproto
import wsproto.events as ws

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch
from tests.helpers.upstream import (
    start_upstream,
    start_websocket_echo,
    tls_server_context,
    write_ca_file,
)
from trio_gateway._config.model import GatewayConfig, UpstreamConfig


class WebSocketClient:
    """A wsproto client over one TCP connection (test side)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pending: list[ws.Event] = []

    async def next_event(self) -> ws.Event:
        with trio.fail_after(10):
            while not self.pending:
                data = await self.stream.receive_some()
                self.conn.receive_data(data or None)
                self.pending.extend(self.conn.events())
                if not data and not self.pending:
                    raise AssertionError("connection closed before the expected event")
        return self.pending.pop(0)

    async def send(self, event: ws.Event) -> None:
        await self.stream.send_all(self.conn.send(event))


async def test_websocket_echo_through_gateway(nursery: trio.Nursery, tmp_path: Path) -> None:
    echo = await start_websocket_echo(nursery)
    host, port = echo.address
    write_keyless_api(tmp_path, api_id="ws", listen_path="/ws/", target_url=f"http://{host}:{port}")
    gw = await start_gateway(nursery, tmp_path)

    stream = await trio.open_tcp_stream(*gw.address)
    async with stream:
        client = WebSocketClient(stream)
        await client.send(ws.Request(host="chat.example", target="/ws/chat?room=1"))
        accepted = await client.next_event()
        assert isinstance(accepted, ws.AcceptConnection)

        await client.send(ws.TextMessage(data="hello through the gateway"))
        text = await client.next_event()
        assert isinstance(text, ws.TextMessage)
        assert text.data == "hello through the gateway"

        payload = bytes(range(256)) * 100  # larger than one read, several TCP segments
        await client.send(ws.BytesMessage(data=payload))
        received = b""
        while len(received) < len(payload):
            event = await client.next_event()
            assert isinstance(event, ws.BytesMessage)
            received += bytes(event.data)
        assert received == payload

        await client.send(ws.CloseConnection(code=1000, reason="done"))
        closing = await client.next_event()
        assert isinstance(closing, ws.CloseConnection)
        assert closing.code == 1000

    assert echo.accepted == 1
    assert [target for target, _ in echo.handshakes] == ["/chat?room=1"]  # listen path stripped
    assert echo.messages == ["hello through the gateway", payload]


async def test_https_upstream_verified_with_test_ca(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    upstream = await start_upstream(nursery, tls=tls_server_context(ca))
    apps = tmp_path / "apps"
    write_keyless_api(apps, api_id="tls", listen_path="/tls/", target_url=upstream.url + "/up/")
    config = GatewayConfig(upstream=UpstreamConfig(ca_file=str(write_ca_file(ca, tmp_path))))
    gw = await start_gateway(nursery, apps, config=config)

    for i in range(3):
        response = await fetch(gw.address, "GET", f"/tls/{i}?q=1")
        assert response.status == 200
        assert response.json()["target"] == f"/up/{i}?q=1"

    assert upstream.tls_failures == 0
    assert upstream.accepted == 1  # TLS connections are pooled too


async def test_https_upstream_refused_without_its_ca(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    upstream = await start_upstream(nursery, tls=tls_server_context(ca))
    write_keyless_api(tmp_path, api_id="tls", listen_path="/tls/", target_url=upstream.url)
    gw = await start_gateway(nursery, tmp_path)

    response = await fetch(gw.address, "GET", "/tls/secret")

    assert response.status == 502
    assert response.header(b"content-type") == b"application/json"
    assert set(response.json()) == {"error"}
    assert upstream.requests == []  # not one byte of the request went to the unverified server
    await upstream.wait_until(lambda: upstream.tls_failures == 1)


async def test_https_upstream_with_wrong_hostname_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Trusting the CA is not enough: the certificate must name the host we connect to."""
    ca = trustme.CA()
    upstream = await start_upstream(nursery, tls=tls_server_context(ca, "other.example"))
    apps = tmp_path / "apps"
    write_keyless_api(apps, api_id="tls", listen_path="/tls/", target_url=upstream.url)
    config = GatewayConfig(upstream=UpstreamConfig(ca_file=str(write_ca_file(ca, tmp_path))))
    gw = await start_gateway(nursery, apps, config=config)

    response = await fetch(gw.address, "GET", "/tls/x")

    assert response.status == 502
    assert upstream.requests == []
