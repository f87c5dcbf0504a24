"""Hot reload end to end: under load, with broken files, a failing folder, SIGHUP (a real
subprocess), ``--watch``, and ``/tyk/reload/group`` across two gateways sharing a redis-server."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from tests.helpers.client import fetch, open_client
from tests.integration.test_cli_and_shutdown import gateway_process
from tests.redis_server import RedisServer
from trio_gateway._admin.control import ControlPlane
from trio_gateway._admin.group import RedisGroupReload
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig, StorageConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "reload-secret"
AUTH = [("X-Tyk-Authorization", SECRET)]


async def echo(request: Request) -> Response:
    return Response(
        status=200,
        headers=[(b"content-type", b"application/json")],
        body_bytes=json.dumps(
            {"headers": {k.decode(): v.decode() for k, v in request.headers}}
        ).encode(),
    )


def classic(api_id: str, listen_path: str, target: str) -> dict[str, Any]:
    return {
        "api_id": api_id,
        "name": api_id,
        "org_id": "acme",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": True},
    }


def write_api(apps: Path, api_id: str, listen_path: str, target: str) -> None:
    (apps / f"{api_id}.json").write_text(json.dumps(classic(api_id, listen_path, target)))


async def start_upstream(nursery: trio.Nursery) -> str:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    return f"http://{host}:{port}/"


async def start_gateway(
    nursery: trio.Nursery, apps: Path, config: GatewayConfig, **kwargs: Any
) -> RunningGateway:
    gw: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(config, apps_dir=apps, task_status=task_status, **kwargs)
    )
    return gw


def control_of(gw: RunningGateway) -> ControlPlane:
    assert gw.control is not None
    return gw.control


CONFIG = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0), secret=SECRET)


async def test_reload_under_load_fails_no_request(nursery: trio.Nursery, tmp_path: Path) -> None:
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    shutil.copytree(EXAMPLES / "plugins", tmp_path / "plugins")
    # An API with a plugin (its pipeline is rebuilt and the old one closed on every reload)...
    plugin_doc = json.loads((EXAMPLES / "apps-plugins" / "add-headers.json").read_text())
    plugin_doc["proxy"]["target_url"] = target
    (apps / "add-headers.json").write_text(json.dumps(plugin_doc))
    plugin_path = plugin_doc["proxy"]["listen_path"].rstrip("/") + "/x"
    # ...and a plain one.
    write_api(apps, "plain", "/plain/", target)
    gw = await start_gateway(nursery, apps, CONFIG)
    reloader = control_of(gw).reloader

    failures: list[str] = []
    done = 0
    stop = trio.Event()

    async def client_loop(path: str) -> None:
        nonlocal done
        async with open_client(gw.address) as client:  # keep-alive: one connection throughout
            while not stop.is_set():
                response = await client.request("GET", path)
                if response.status != 200:
                    failures.append(f"{path}: {response.status} {response.body!r}")
                done += 1

    async with trio.open_nursery() as clients:
        for path in (plugin_path, "/plain/x", plugin_path, "/plain/y"):
            clients.start_soon(client_loop, path)
        for _ in range(20):
            result = await reloader.reload()
            assert result.ok, result.message
            await trio.lowlevel.checkpoint()  # let requests run between reloads
        stop.set()
    assert reloader.generation == 20
    assert failures == []
    assert done > 20
    # The plugin still runs on the newest snapshot.
    response = await fetch(gw.address, "GET", plugin_path)
    assert response.json()["headers"]["x-gateway"] == "example-gateway"


async def test_broken_file_is_skipped_and_the_others_kept(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    write_api(apps, "one", "/one/", target)
    gw = await start_gateway(nursery, apps, CONFIG)
    reloader = control_of(gw).reloader
    (apps / "broken.json").write_text("{ this is not json")
    write_api(apps, "two", "/two/", target)
    reply = await fetch(gw.address, "GET", "/tyk/reload?block=true", AUTH)
    assert reply.json() == {"status": "ok", "message": ""}
    assert reloader.last is not None
    assert reloader.last.ok
    assert reloader.last.report is not None
    assert any("broken.json" in e for e in reloader.last.report.errors)
    assert (await fetch(gw.address, "GET", "/one/x")).status == 200
    assert (await fetch(gw.address, "GET", "/two/x")).status == 200


async def test_unreadable_folder_keeps_the_old_snapshot(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    write_api(apps, "one", "/one/", target)
    gw = await start_gateway(nursery, apps, CONFIG)
    before = gw.gateway.snapshot
    shutil.rmtree(apps)
    reply = await fetch(gw.address, "GET", "/tyk/reload?block=true", AUTH)
    assert reply.status == 500
    assert reply.json()["status"] == "error"
    assert "cannot read the API definitions folder" in reply.json()["message"]
    assert gw.gateway.snapshot is before
    assert (await fetch(gw.address, "GET", "/one/x")).status == 200


async def test_watch_picks_up_a_new_file(nursery: trio.Nursery, tmp_path: Path) -> None:
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    write_api(apps, "one", "/one/", target)
    gw = await start_gateway(nursery, apps, CONFIG, watch_interval=0.02)
    reloader = control_of(gw).reloader
    assert (await fetch(gw.address, "GET", "/new/x")).status == 404
    write_api(apps, "new", "/new/", target)
    with trio.fail_after(10):
        await reloader.wait_for_generation(1)
    assert (await fetch(gw.address, "GET", "/new/x")).status == 200


async def test_sighup_reloads_a_running_process(nursery: trio.Nursery, tmp_path: Path) -> None:
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    write_api(apps, "one", "/one/", target)
    async with gateway_process("--apps", str(apps)) as gateway:
        assert (await fetch(gateway.address, "GET", "/two/x")).status == 404
        write_api(apps, "two", "/two/", target)
        gateway.process.send_signal(signal.SIGHUP)
        await gateway.wait_for_log("reload: serving 2 API(s)")
        assert (await fetch(gateway.address, "GET", "/two/x")).status == 200
        assert (await fetch(gateway.address, "GET", "/one/x")).status == 200


async def test_group_reload_reaches_every_gateway_on_the_redis(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer
) -> None:
    target = await start_upstream(nursery)
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        secret=SECRET,
        storage=StorageConfig(type="redis", host=redis_db.host, port=redis_db.port),
    )
    gateways = []
    for name in ("a", "b"):
        apps = tmp_path / name
        apps.mkdir()
        write_api(apps, "one", "/one/", target)
        gw = await start_gateway(nursery, apps, config)
        group = control_of(gw).group
        assert isinstance(group, RedisGroupReload)
        with trio.fail_after(10):
            await group.subscribed.wait()
        gateways.append((gw, apps))
    for gw, apps in gateways:
        write_api(apps, "two", "/two/", target)
        assert (await fetch(gw.address, "GET", "/two/x")).status == 404
    first = gateways[0][0]
    reply = await fetch(first.address, "GET", "/tyk/reload/group", AUTH)
    assert reply.json() == {"status": "ok", "message": ""}
    for gw, _ in gateways:
        with trio.fail_after(10):
            await control_of(gw).reloader.wait_for_generation(1)
        assert (await fetch(gw.address, "GET", "/two/x")).status == 200


async def test_group_subscriber_resubscribes_after_redis_restarts(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    server = redis_server_factory()
    target = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir()
    write_api(apps, "one", "/one/", target)
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        secret=SECRET,
        storage=StorageConfig(type="redis", host=server.host, port=server.port),
    )
    gw = await start_gateway(nursery, apps, config)
    group = control_of(gw).group
    assert isinstance(group, RedisGroupReload)
    with trio.fail_after(10):
        await group.subscribed.wait()
    server.stop()
    down = await fetch(gw.address, "GET", "/tyk/reload/group", AUTH)
    assert down.status == 503
    server.start()  # same port
    with trio.fail_after(15):
        await group.wait_for_subscriptions(2)
    reply = await fetch(gw.address, "GET", "/tyk/reload/group", AUTH)
    assert reply.json() == {"status": "ok", "message": ""}
    with trio.fail_after(10):
        await control_of(gw).reloader.wait_for_generation(1)
