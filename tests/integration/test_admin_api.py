"""The Tyk control API end to end: a real gateway, a real upstream, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.helpers.client import RawResponse, fetch
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._server import HttpServer
from trio_gateway._session.memory import MemorySessionStore

SECRET = "admin-s3cret"
AUTH = [("X-Tyk-Authorization", SECRET)]
DENIED = {
    "status": "error",
    "message": "Attempted administrative access with invalid or missing key!",
}


async def echo(request: Request) -> Response:
    return Response(
        status=200,
        headers=[(b"content-type", b"application/json")],
        body_bytes=json.dumps({"path": request.path}).encode(),
    )


def classic(api_id: str, listen_path: str, target: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "api_id": api_id,
        "name": api_id,
        "org_id": "acme",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": True},
    }
    doc.update(extra)
    return doc


def keyed(api_id: str, listen_path: str, target: str) -> dict[str, Any]:
    return classic(
        api_id,
        listen_path,
        target,
        use_keyless=False,
        use_standard_auth=True,
        auth={"auth_header_name": "Authorization"},
    )


@attrs.define
class Setup:
    gw: RunningGateway
    apps: Path
    target: str
    store: MemorySessionStore

    @property
    def address(self) -> tuple[str, int]:
        return self.gw.address


async def start(
    nursery: trio.Nursery,
    tmp_path: Path,
    *,
    secret: str = SECRET,
    control_port: bool = False,
) -> Setup:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    target = f"http://{host}:{port}/"
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "free.json").write_text(json.dumps(classic("free", "/free/", target)))
    (apps / "locked.json").write_text(json.dumps(keyed("locked", "/locked/", target)))
    control_api_port = None
    if control_port:
        from tests.redis_server import free_port

        control_api_port = free_port()
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        secret=secret,
        control_api_port=control_api_port,
    )
    store = MemorySessionStore()
    gw: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=apps, session_store=store, task_status=task_status
        )
    )
    return Setup(gw=gw, apps=apps, target=target, store=store)


async def admin(
    setup: Setup, method: str, path: str, body: object = None, *, raw: bytes | None = None
) -> RawResponse:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    return await fetch(setup.address, method, path, AUTH, data)


# -- the secret -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [[], [("X-Tyk-Authorization", "wrong")], [("X-Tyk-Authorization", SECRET + "x")]],
    ids=["missing", "wrong", "longer"],
)
async def test_wrong_or_missing_secret_is_403(
    nursery: trio.Nursery, tmp_path: Path, headers: list[tuple[str, str]]
) -> None:
    setup = await start(nursery, tmp_path)
    for method, path in [("GET", "/tyk/keys"), ("GET", "/tyk/apis"), ("GET", "/tyk/reload")]:
        response = await fetch(setup.address, method, path, headers)
        assert response.status == 403
        assert response.json() == DENIED


async def test_health_checks_need_no_secret(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    for path in ("/hello", "/ready"):
        response = await fetch(setup.address, "GET", path)
        assert response.status == 200
        assert response.json()["status"] == "pass"


async def test_no_secret_turns_the_admin_api_off(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path, secret="")
    response = await fetch(setup.address, "GET", "/tyk/keys", [("X-Tyk-Authorization", "")])
    assert response.status == 404
    assert response.json() == {"error": "Not Found"}  # routed like any unknown path
    assert (await fetch(setup.address, "GET", "/hello")).status == 200


async def test_control_api_port_serves_admin_on_its_own_listener(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    setup = await start(nursery, tmp_path, control_port=True)
    control = setup.gw.control
    assert control is not None
    assert control.admin_address is not None
    on_admin = await fetch(control.admin_address, "GET", "/tyk/keys", AUTH)
    assert on_admin.status == 200
    assert on_admin.json() == {"keys": []}
    on_main = await fetch(setup.address, "GET", "/tyk/keys", AUTH)
    assert on_main.status == 404
    # API traffic stays on the main listener.
    assert (await fetch(setup.address, "GET", "/free/x")).status == 200
    assert (await fetch(control.admin_address, "GET", "/free/x", AUTH)).status == 404


# -- keys -----------------------------------------------------------------------------------------

SESSION = {
    "rate": 100,
    "per": 60,
    "quota_max": -1,
    "org_id": "acme",
    "access_rights": {"locked": {"api_id": "locked", "api_name": "locked", "versions": []}},
    "meta_data": {"team": "blue"},
}


async def test_created_key_opens_a_keyed_api(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    assert (await fetch(setup.address, "GET", "/locked/x")).status == 401
    created = await admin(setup, "POST", "/tyk/keys/create", SESSION)
    assert created.status == 200
    reply = created.json()
    assert reply["status"] == "ok"
    assert reply["action"] == "added"
    key = reply["key"]
    assert key.startswith("acme")
    assert len(key) > len("acme") + 16
    ok = await fetch(setup.address, "GET", "/locked/x", [("Authorization", key)])
    assert ok.status == 200
    listed = await admin(setup, "GET", "/tyk/keys")
    assert listed.json() == {"keys": [key]}
    read = await admin(setup, "GET", f"/tyk/keys/{key}")
    assert read.status == 200
    assert read.json()["meta_data"] == {"team": "blue"}
    assert read.json()["access_rights"]["locked"]["api_id"] == "locked"


async def test_key_with_a_chosen_name_update_and_delete(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    setup = await start(nursery, tmp_path)
    added = await admin(setup, "POST", "/tyk/keys/my-key", SESSION)
    assert added.json() == {"key": "my-key", "status": "ok", "action": "added"}
    stored = await setup.store.get_session("my-key")
    assert stored is not None
    assert stored.rate == 100

    changed = dict(SESSION, rate=5, meta_data={"team": "red"})
    updated = await admin(setup, "PUT", "/tyk/keys/my-key", changed)
    assert updated.json() == {"key": "my-key", "status": "ok", "action": "modified"}
    read = (await admin(setup, "GET", "/tyk/keys/my-key")).json()
    assert read["rate"] == 5
    assert read["meta_data"] == {"team": "red"}
    assert read["date_created"] == stored.date_created  # an update keeps the creation date

    deleted = await admin(setup, "DELETE", "/tyk/keys/my-key")
    assert deleted.json() == {"key": "my-key", "status": "ok", "action": "deleted"}
    assert await setup.store.get_session("my-key") is None
    assert (
        await fetch(setup.address, "GET", "/locked/x", [("Authorization", "my-key")])
    ).status == 403


async def test_unknown_keys_are_404(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    got = await admin(setup, "GET", "/tyk/keys/nope")
    assert (got.status, got.json()) == (404, {"status": "error", "message": "Key not found"})
    put = await admin(setup, "PUT", "/tyk/keys/nope", SESSION)
    assert (put.status, put.json()["message"]) == (404, "Key is not found")
    deleted = await admin(setup, "DELETE", "/tyk/keys/nope")
    assert (deleted.status, deleted.json()["message"]) == (404, "There is no such key found")


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/tyk/keys/create", b"{not json"),
        ("POST", "/tyk/keys/create", b'{"rate": "lots"}'),
        ("POST", "/tyk/keys/k1", b"[1, 2]"),
        ("PUT", "/tyk/keys/k1", b"{"),
        ("POST", "/tyk/apis", b"{oops"),
        ("PUT", "/tyk/apis/free", b"{oops"),
    ],
)
async def test_bad_json_is_400(
    nursery: trio.Nursery, tmp_path: Path, method: str, path: str, raw: bytes
) -> None:
    setup = await start(nursery, tmp_path)
    await setup.store.put_session("k1", (await _session(setup)))
    response = await admin(setup, method, path, raw=raw)
    assert response.status == 400
    assert response.json() == {"status": "error", "message": "Request malformed"}


async def _session(setup: Setup) -> Any:
    from trio_gateway._session.json import session_from_json

    return session_from_json(SESSION)


async def test_unknown_admin_path_and_method(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    assert (await admin(setup, "GET", "/tyk/nothing-here")).status == 404
    assert (await admin(setup, "DELETE", "/tyk/keys")).status == 405
    assert (await admin(setup, "POST", "/tyk/reload")).status == 405


# -- APIs (file-backed) ---------------------------------------------------------------------------


async def test_list_and_read_apis(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    listed = await admin(setup, "GET", "/tyk/apis")
    assert sorted(d["api_id"] for d in listed.json()) == ["free", "locked"]
    one = await admin(setup, "GET", "/tyk/apis/free")
    assert one.json()["proxy"]["listen_path"] == "/free/"
    missing = await admin(setup, "GET", "/tyk/apis/nope")
    assert (missing.status, missing.json()) == (
        404,
        {"status": "error", "message": "API not found"},
    )


async def test_create_update_delete_api_files(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    assert (await fetch(setup.address, "GET", "/new/x")).status == 404

    created = await admin(setup, "POST", "/tyk/apis", classic("new-api", "/new/", setup.target))
    assert created.json() == {"key": "new-api", "status": "ok", "action": "added"}
    assert (setup.apps / "new-api.json").is_file()
    assert (await fetch(setup.address, "GET", "/new/x")).status == 200  # live after the reply

    moved = classic("new-api", "/moved/", setup.target)
    updated = await admin(setup, "PUT", "/tyk/apis/new-api", moved)
    assert updated.json() == {"key": "new-api", "status": "ok", "action": "modified"}
    assert (
        json.loads((setup.apps / "new-api.json").read_text())["proxy"]["listen_path"] == "/moved/"
    )
    assert (await fetch(setup.address, "GET", "/new/x")).status == 404
    assert (await fetch(setup.address, "GET", "/moved/x")).status == 200

    deleted = await admin(setup, "DELETE", "/tyk/apis/new-api")
    assert deleted.json() == {"key": "new-api", "status": "ok", "action": "deleted"}
    assert not (setup.apps / "new-api.json").exists()
    assert (await fetch(setup.address, "GET", "/moved/x")).status == 404
    assert (await fetch(setup.address, "GET", "/free/x")).status == 200  # the others stay


async def test_api_write_errors(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    mismatch = await admin(setup, "PUT", "/tyk/apis/free", classic("other", "/o/", setup.target))
    assert mismatch.status == 400
    assert mismatch.json()["message"].startswith("Request APIID does not match")
    unknown = await admin(setup, "PUT", "/tyk/apis/ghost", classic("ghost", "/g/", setup.target))
    assert unknown.status == 404
    assert not (setup.apps / "ghost.json").exists()
    assert (await admin(setup, "DELETE", "/tyk/apis/ghost")).status == 404
    invalid = await admin(setup, "POST", "/tyk/apis", {"api_id": "bad", "proxy": {}})
    assert invalid.status == 400
    assert invalid.json()["message"].startswith("Validation of API Definition failed")
    assert not (setup.apps / "bad.json").exists()
    escape = await admin(setup, "POST", "/tyk/apis", classic("../evil", "/e/", setup.target))
    assert escape.status == 400


# -- reload ---------------------------------------------------------------------------------------


async def test_reload_endpoints(nursery: trio.Nursery, tmp_path: Path) -> None:
    setup = await start(nursery, tmp_path)
    control = setup.gw.control
    assert control is not None
    (setup.apps / "extra.json").write_text(json.dumps(classic("extra", "/extra/", setup.target)))
    blocked = await admin(setup, "GET", "/tyk/reload?block=true")
    assert blocked.json() == {"status": "ok", "message": ""}
    assert control.reloader.generation == 1
    assert (await fetch(setup.address, "GET", "/extra/x")).status == 200

    (setup.apps / "extra.json").unlink()
    queued = await admin(setup, "GET", "/tyk/reload")
    assert queued.json() == {"status": "ok", "message": ""}
    with trio.fail_after(10):
        await control.reloader.wait_for_generation(2)
    assert (await fetch(setup.address, "GET", "/extra/x")).status == 404

    group = await admin(setup, "GET", "/tyk/reload/group")  # memory store: this gateway alone
    assert group.json() == {"status": "ok", "message": ""}
    with trio.fail_after(10):
        await control.reloader.wait_for_generation(3)
