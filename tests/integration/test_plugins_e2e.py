"""The example plugins end to end: a real gateway and a real upstream on 127.0.0.1 sockets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import trio

from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def echo(request: Request) -> Response:
    body = await request.read_body(limit=1 << 20)
    doc = {
        "path": request.path,
        "headers": {k.decode(): v.decode() for k, v in request.headers},
        "body": body.decode(),
    }
    return Response(
        status=200,
        headers=[(b"content-type", b"application/json")],
        body_bytes=json.dumps(doc).encode(),
    )


async def http(
    address: tuple[str, int], method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(*address)
        async with stream:
            lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            lines.append(f"Content-Length: {len(body)}")
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        got[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), got, rest


async def start(nursery: trio.Nursery, tmp_path: Path) -> RunningGateway:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    apps = tmp_path / "apps"
    apps.mkdir()
    shutil.copytree(EXAMPLES / "plugins", tmp_path / "plugins")
    for source in (EXAMPLES / "apps-plugins").glob("*.json"):
        doc = json.loads(source.read_text())
        doc["proxy"]["target_url"] = f"http://{host}:{port}/"
        (apps / source.name).write_text(json.dumps(doc))
    config = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0))
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    return running


async def test_example_plugins_over_real_sockets(nursery: trio.Nursery, tmp_path: Path) -> None:
    gw = await start(nursery, tmp_path)
    addr = gw.address

    status, _, body = await http(addr, "GET", "/plugins/headers/x", {"X-Internal-Debug": "1"})
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["x-gateway"] == "example-gateway"
    assert seen["x-api-id"] == "plugins-add-headers"
    assert "x-internal-debug" not in seen

    status, _, body = await http(addr, "POST", "/plugins/orders/", {}, b'{"item": "tea"}')
    assert status == 400
    assert json.loads(body) == {"error": "quantity must be a positive integer"}
    status, _, body = await http(
        addr, "POST", "/plugins/orders/", {}, b'{"item": "tea", "quantity": 2}'
    )
    assert status == 200
    assert json.loads(json.loads(body)["body"]) == {"item": "tea", "quantity": 2}

    status, headers, body = await http(addr, "GET", "/plugins/rewrite/a", {})
    assert status == 200
    assert headers["x-rewritten-by"] == "trio-gateway"
    doc = json.loads(body)
    assert doc["api"] == "plugins-rewrite-response"
    assert doc["data"]["path"] == "/a"

    status, _, _ = await http(addr, "GET", "/plugins/auth/me", {})
    assert status == 403
    status, _, body = await http(
        addr, "GET", "/plugins/auth/me", {"Authorization": "Bearer secret-token-ann"}
    )
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["x-user"] == "ann"
    assert "authorization" not in seen
    gw.shutdown()


async def test_api_whose_plugin_cannot_load_answers_503_while_others_serve(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gw_dir = tmp_path
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    apps = gw_dir / "apps"
    apps.mkdir()
    base = json.loads((EXAMPLES / "apps-plugins" / "add-headers.json").read_text())
    base["proxy"]["target_url"] = f"http://{host}:{port}/"
    broken = json.loads(json.dumps(base))
    broken["api_id"], broken["proxy"]["listen_path"] = "broken", "/broken/"
    broken["custom_middleware"]["pre"][0]["path"] = "missing.py"
    fine = json.loads(json.dumps(base))
    fine["custom_middleware"]["pre"] = []
    (apps / "broken.json").write_text(json.dumps(broken))
    (apps / "fine.json").write_text(json.dumps(fine))
    config = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0))
    gw = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    status, _, body = await http(gw.address, "GET", "/broken/x", {})
    assert status == 503
    assert b"missing.py" not in body
    status, _, _ = await http(gw.address, "GET", "/plugins/headers/x", {})
    assert status == 200
    gw.shutdown()
