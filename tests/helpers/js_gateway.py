"""A real gateway with JavaScript APIs and a real echo upstream, on 127.0.0.1 sockets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from tests.helpers.client import RawResponse, fetch
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, JavascriptConfig, ListenConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer

#: Written in an API definition, becomes the echo upstream's base URL (``http://host:port``).
UPSTREAM = "__UPSTREAM__"


async def echo(request: Request) -> Response:
    """The upstream: answers with what it received, as JSON."""
    body = await request.read_body(limit=1 << 20)
    doc = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": [[k.decode(), v.decode()] for k, v in request.headers],
        "body": body.decode("utf-8", "replace"),
    }
    return Response(
        status=200,
        headers=[(b"content-type", b"application/json"), (b"x-upstream", b"yes")],
        body_bytes=json.dumps(doc).encode(),
    )


def seen_headers(response: RawResponse) -> dict[str, list[str]]:
    """The headers the upstream received, by lower-case name."""
    out: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def api(
    api_id: str,
    *,
    middleware: dict[str, Any],
    keyless: bool = True,
    config_data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Classic API definition listening on ``/<api_id>/`` with ``custom_middleware``."""
    doc: dict[str, Any] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": "org1",
        "active": True,
        "use_keyless": keyless,
        "proxy": {"listen_path": f"/{api_id}/", "target_url": "", "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "custom_middleware": {"driver": "otto", **middleware},
        **extra,
    }
    if config_data is not None:
        doc["config_data"] = config_data
    return doc


@attrs.define
class JsGateway:
    running: RunningGateway
    upstream: tuple[str, int]

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> RawResponse:
        return await fetch(self.running.address, method, target, headers or [], body)


async def start_gateway(
    nursery: trio.Nursery,
    tmp_path: Path,
    apis: list[dict[str, Any]],
    scripts: dict[str, str],
    *,
    javascript: JavascriptConfig | None = None,
    upstream_handler: Callable[[Request], Awaitable[Response]] = echo,
    **config: Any,
) -> JsGateway:
    """Write ``scripts`` (file name -> source) under ``tmp_path/js`` and serve ``apis`` (Classic
    or OAS; :data:`UPSTREAM` in them replaced by the upstream's URL)."""
    upstream_server = HttpServer(handler=upstream_handler, log_requests=False)
    host, port = await nursery.start(upstream_server.serve, "127.0.0.1", 0)
    js = tmp_path / "js"
    js.mkdir(exist_ok=True)
    for name, source in scripts.items():
        (js / name).parent.mkdir(parents=True, exist_ok=True)
        (js / name).write_text(source)
    apps = tmp_path / "apps"
    apps.mkdir(exist_ok=True)
    for doc in apis:
        if "openapi" in doc:
            tyk = doc["x-tyk-api-gateway"]
            tyk["upstream"] = {"url": f"http://{host}:{port}/"}
            name = tyk["info"]["id"]
        else:
            doc["proxy"]["target_url"] = f"http://{host}:{port}/"
            name = doc["api_id"]
        text = json.dumps(doc).replace(UPSTREAM, f"http://{host}:{port}")
        (apps / f"{name}.json").write_text(text)
    gateway_config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        javascript=javascript or JavascriptConfig(enable=True),
        **config,
    )
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(gateway_config, apps_dir=apps, task_status=task_status)
    )
    return JsGateway(running=running, upstream=(host, port))
