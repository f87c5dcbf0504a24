"""The rest of the transport: TLS, retry after GOAWAY, per-API servers, DispatchEvent."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trustme
from conftest import Server, running_server
from grpc_dispatcher_server import start_server
from test_grpc_gateway_e2e import api_doc, by_hook_name, start_gateway

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from plugin_drivers.grpc.client import GrpcUnavailable, open_grpc_channel
from plugin_drivers.grpc.driver import GrpcDriver
from tests.helpers.client import fetch
from tests.helpers.upstream import start_upstream
from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef

DISPATCH = "/coprocess.Dispatcher/Dispatch"


def obj(name: str) -> bytes:
    return pb.Object(hook_type=1, hook_name=name).SerializeToString()


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[str]:
    cert = ca.issue_cert("localhost")
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())]
    )
    server, port = start_server("127.0.0.1:0", credentials=credentials)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


async def test_tls_with_a_trusted_ca(ca: trustme.CA, tls_server: str) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    port = tls_server.rsplit(":", 1)[1]
    # The certificate names "localhost": the authority carries the name checked.
    async with open_grpc_channel(
        tls_server, ssl_context=context, authority=f"localhost:{port}"
    ) as channel:
        with trio.fail_after(5):
            reply = await channel.unary_unary(DISPATCH, obj("over tls"))
    assert pb.Object.FromString(reply).hook_name == "over tls"


async def test_tls_refuses_an_unknown_ca(tls_server: str) -> None:
    context = ssl.create_default_context()  # the system's CAs only: trustme's is not among them
    port = tls_server.rsplit(":", 1)[1]
    async with open_grpc_channel(
        tls_server, ssl_context=context, authority=f"localhost:{port}"
    ) as channel:
        with trio.fail_after(5), pytest.raises(GrpcUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await channel.unary_unary(DISPATCH, obj("x"))


async def test_tls_config_through_the_gateway(
    nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, tls_server: str
) -> None:
    from trio_gateway._app import serve_gateway
    from trio_gateway._config.model import CoprocessConfig, GatewayConfig, ListenConfig

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "a.json").write_text(json.dumps(api_doc(upstream, {"pre": [{"name": "p"}]})))
    port = tls_server.rsplit(":", 1)[1]
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        coprocess=CoprocessConfig(
            enable=True,
            grpc_server=tls_server,
            grpc_authority=f"localhost:{port}",
            grpc_tls=True,
            grpc_ca_file=str(ca_file),
        ),
    )
    gw = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    assert (await fetch(gw.address, "GET", "/api/x")).status == 200
    assert len(upstream.requests) == 1
    gw.shutdown()


# -- GOAWAY ---------------------------------------------------------------------------------------


async def serve_goaway_then_echo(
    nursery: trio.Nursery,
) -> tuple[int, list[int]]:
    """A bare h2 gRPC server: its first connection answers the first request with
    GOAWAY(last_stream_id=0) and closes (nothing processed); later connections echo.

    Returns the port and a list of how many requests each connection received.
    """
    seen: list[int] = []

    async def handle(stream: trio.SocketStream) -> None:
        index = len(seen)
        seen.append(0)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        conn.initiate_connection()
        await stream.send_all(conn.data_to_send())
        bodies: dict[int, bytes] = {}
        while data := await stream.receive_some():
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    seen[index] += 1
                    if index == 0:
                        conn.close_connection(last_stream_id=0)
                        await stream.send_all(conn.data_to_send())
                        await stream.aclose()
                        return
                elif isinstance(event, h2.events.DataReceived):
                    assert event.stream_id is not None
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    assert event.stream_id is not None
                    sid = event.stream_id
                    conn.send_headers(
                        sid, [(b":status", b"200"), (b"content-type", b"application/grpc")]
                    )
                    conn.send_data(sid, bodies.pop(sid, b""))
                    conn.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
            await stream.send_all(conn.data_to_send())

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port, seen


async def test_a_call_the_server_did_not_process_is_retried_after_goaway(
    nursery: trio.Nursery,
) -> None:
    port, seen = await serve_goaway_then_echo(nursery)
    async with open_grpc_channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(5):
            reply = await channel.unary_unary(DISPATCH, obj("retried"))
        assert pb.Object.FromString(reply).hook_name == "retried"
        assert seen == [1, 1]  # refused on the first connection, answered on the second
        assert channel.retries == 1
        assert channel.connects == 2


# -- Per-API server -------------------------------------------------------------------------------


@pytest.fixture
def other_server() -> Iterator[Server]:
    with running_server() as srv:
        yield srv


async def test_an_api_can_name_its_own_grpc_server(
    nursery: trio.Nursery, tmp_path: Path, server: Server, other_server: Server
) -> None:
    on_default = by_hook_name(server, {})
    on_other = by_hook_name(other_server, {})
    upstream = await start_upstream(nursery)
    default_api = api_doc(upstream, {"pre": [{"name": "default-pre"}]})
    own_api = api_doc(upstream, {"pre": [{"name": "own-pre"}]})
    own_api.update(api_id="own", config_data={"trio_gateway_grpc_server": other_server.target})
    own_api["proxy"] = {**own_api["proxy"], "listen_path": "/own/"}
    broken = api_doc(upstream, {"pre": [{"name": "broken-pre"}]})
    broken.update(api_id="broken", config_data={"trio_gateway_grpc_server": "dns:///nope"})
    broken["proxy"] = {**broken["proxy"], "listen_path": "/broken/"}
    gw = await start_gateway(nursery, tmp_path, server.target, default_api, own_api, broken)
    assert (await fetch(gw.address, "GET", "/api/x")).status == 200
    assert (await fetch(gw.address, "GET", "/own/x")).status == 200
    assert (await fetch(gw.address, "GET", "/broken/x")).status == 503
    assert [o.hook_name for o in on_default] == ["default-pre"]
    assert [o.hook_name for o in on_other] == ["own-pre"]
    gw.shutdown()


# -- DispatchEvent --------------------------------------------------------------------------------


async def test_emit_event_reaches_dispatch_event() -> None:
    events: list[pb.Event] = []
    server, port = start_server("127.0.0.1:0", on_event=events.append)
    try:
        async with open_grpc_channel(f"127.0.0.1:{port}") as channel:
            driver = GrpcDriver(channel)
            api = ApiDefinition(
                api_id="api1",
                org_id="org1",
                listen_path="/x/",
                target_url="http://127.0.0.1:1",
                middleware=MiddlewareConfig(driver="grpc", pre=(PluginRef(name="p"),)),
            )
            await driver.load(api, ())
            taken = await driver.emit_event(
                "RatelimitExceeded", {"key": "k1"}, handler_name="on_limit"
            )
        assert taken
    finally:
        server.stop(0)
    (event,) = events
    payload: dict[str, Any] = json.loads(event.payload)
    assert payload["message"]["Type"] == "RatelimitExceeded"
    assert payload["message"]["Meta"] == {"key": "k1"}
    assert payload["message"]["TimeStamp"]
    assert payload["handler_name"] == "on_limit"
    assert payload["spec"] == {"APIID": "api1", "OrgID": "org1"}


async def test_emit_event_failure_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    from conftest import free_port

    async with open_grpc_channel(f"127.0.0.1:{free_port()}") as channel:
        driver = GrpcDriver(channel)
        assert not await driver.emit_event("KeyExpired", {})
    assert "KeyExpired" in caplog.text
