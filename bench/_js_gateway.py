"""A gateway with JavaScript APIs in this process, and a minimal HTTP/1.1 client (bench helpers).

Used by bench/js_startup.py and bench/js_limits.py. Not part of the test suite.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import trio

from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, JavascriptConfig, ListenConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer


async def _ok(request: Request) -> Response:
    await request.read_body(limit=1 << 20)
    return Response(status=200, headers=[(b"content-type", b"text/plain")], body_bytes=b"ok")


def js_api(api_id: str, script: Path, name: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """A keyless Classic API on ``/<api_id>/`` with one JavaScript Pre hook."""
    return {
        "name": api_id,
        "api_id": api_id,
        "org_id": "bench",
        "active": True,
        "use_keyless": True,
        "proxy": {"listen_path": f"/{api_id}/", "target_url": "", "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "custom_middleware": {
            "driver": "otto",
            "pre": [{"name": name, "path": str(script), "timeout": timeout}],
        },
    }


async def start_upstream(nursery: trio.Nursery) -> str:
    server = HttpServer(handler=_ok, log_requests=False)
    host, port = await nursery.start(server.serve, "127.0.0.1", 0)
    return f"http://{host}:{port}/"


def write_apps(folder: Path, upstream: str, apis: list[dict[str, Any]]) -> Path:
    apps = folder / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    for doc in apis:
        doc["proxy"]["target_url"] = upstream
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))
    return apps


async def start_gateway(
    nursery: trio.Nursery, apps: Path, javascript: JavascriptConfig
) -> RunningGateway:
    config = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0), javascript=javascript)
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status)
    )
    return running


#: A Pre middleware that sets one header: the hook the JS throughput figures are about.
HEADER_SCRIPT = """
var benchPre = new TykJS.TykMiddleware.NewMiddleware({});
benchPre.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Bench-Js"] = "1";
    return benchPre.ReturnData(request, {});
});
"""


async def start_plain_and_js(nursery: trio.Nursery, folder: Path, source: str) -> RunningGateway:
    """A gateway with two keyless APIs on one upstream: ``/plain/`` without plugins and
    ``/js/`` with ``source`` (defining ``benchPre``) as its Pre hook."""
    script = folder / "bench.js"
    script.write_text(source)
    upstream = await start_upstream(nursery)
    plain = js_api("plain", script, "benchPre")
    del plain["custom_middleware"]
    apps = write_apps(folder, upstream, [js_api("js", script, "benchPre"), plain])
    return await start_gateway(nursery, apps, JavascriptConfig(enable=True))


async def get(address: tuple[str, int], target: str, headers: dict[str, str] | None = None) -> int:
    """One GET on a fresh connection; the status code (bounded by 30 s)."""
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream(*address)
        async with stream:
            lines = [f"GET {target} HTTP/1.1", "Host: bench", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    return int(data.split(b" ", 2)[1])


def rss_mib() -> float:
    """This process's resident set size now (MiB), from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1024 * 1024)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
