"""The JavaScript example plugins (examples/javascript/) end to end, as the README runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import trio

from tests.helpers.client import fetch
from tests.helpers.js_gateway import echo
from trio_gateway._app import serve_gateway
from trio_gateway._config.model import GatewayConfig, JavascriptConfig, ListenConfig
from trio_gateway._server import HttpServer

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "javascript"


async def test_javascript_examples_over_real_sockets(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    folder = tmp_path / "javascript"
    shutil.copytree(EXAMPLES, folder)
    for path in (folder / "apps").glob("*.json"):
        doc = json.loads(path.read_text())
        doc["proxy"]["target_url"] = f"http://{host}:{port}/"
        path.write_text(json.dumps(doc))
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0), javascript=JavascriptConfig(enable=True)
    )
    gw = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=folder / "apps", task_status=task_status
        )
    )
    addr = gw.address

    response = await fetch(addr, "GET", "/js/headers/x", [("X-Internal-Debug", "1")])
    seen = {k.lower(): v for k, v in response.json()["headers"]}
    assert seen["x-gateway"] == "example-gateway"
    assert seen["x-api-id"] == "js-add-headers"
    assert "x-internal-debug" not in seen

    bad = await fetch(addr, "POST", "/js/orders/", [], b'{"item": "tea"}')
    assert (bad.status, bad.json()) == (400, {"error": "quantity must be a positive integer"})
    not_json = await fetch(addr, "POST", "/js/orders/", [], b"tea please")
    assert (not_json.status, not_json.json()) == (400, {"error": "body must be JSON"})
    good = await fetch(addr, "POST", "/js/orders/", [], b'{"item": "tea", "quantity": 2}')
    assert good.status == 200
    assert json.loads(good.json()["body"]) == {"item": "tea", "quantity": 2}

    denied = await fetch(addr, "GET", "/js/auth/me", [("Authorization", "Bearer wrong")])
    assert (denied.status, denied.json()) == (403, {"error": "Key not authorised"})
    allowed = await fetch(
        addr, "GET", "/js/auth/me", [("Authorization", "Bearer secret-token-ann")]
    )
    assert allowed.status == 200, allowed.body
    seen = {k.lower(): v for k, v in allowed.json()["headers"]}
    assert seen["x-user"] == "ann"
    assert "authorization" not in seen
    gw.shutdown()
