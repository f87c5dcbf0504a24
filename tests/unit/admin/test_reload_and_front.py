"""Unit tests (no sockets) for the reloader, the folder watch fingerprint, the secret check,
group notices and the admin front's routing of paths."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from trio_gateway._admin.app import AdminFront, mount, secret_matches
from trio_gateway._admin.group import is_reload_notice
from trio_gateway._apidef.model import ApiDefinition
from trio_gateway._config.model import GatewayConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._gateway import ApiRuntime, ApiSnapshot, Gateway, build_snapshot
from trio_gateway._reload import Reloader, folder_fingerprint
from trio_gateway._routing import Router, Target
from trio_gateway._upstream.connection import Origin, UpstreamPool

CONFIG = GatewayConfig()


@attrs.define
class FakePipeline:
    closed: bool = False
    closed_event: trio.Event = attrs.Factory(trio.Event)

    async def aclose(self) -> None:
        self.closed = True
        self.closed_event.set()


def snapshot_with(pipeline: FakePipeline) -> ApiSnapshot:
    api = ApiDefinition(api_id="p", listen_path="/p/", target_url="http://127.0.0.1:9/")
    target = Target.from_url(api.target_url)
    runtime = ApiRuntime(
        api=api,
        target=target,
        origin=Origin(scheme=target.scheme, host=target.host, port=target.port),
        listen_prefix="/p",
        pipeline=pipeline,  # type: ignore[arg-type]
    )
    return ApiSnapshot(router=Router.build([api]), runtimes={"p": runtime})


def write_api(folder: Path, api_id: str) -> None:
    doc = {
        "api_id": api_id,
        "name": api_id,
        "use_keyless": True,
        "active": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": f"/{api_id}/", "target_url": "http://127.0.0.1:9/"},
    }
    (folder / f"{api_id}.json").write_text(json.dumps(doc))


def make_reloader(folder: Path, first: ApiSnapshot, **kwargs: Any) -> Reloader:
    pool = UpstreamPool(ssl_context=ssl.create_default_context())
    gateway = Gateway(config=CONFIG, snapshot=first, pool=pool)

    async def build(apis: Sequence[ApiDefinition]) -> ApiSnapshot:
        return await build_snapshot(apis, CONFIG)

    return Reloader(gateway=gateway, folder=folder, build=build, **kwargs)


async def test_old_pipelines_close_only_after_in_flight_requests_finish(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    old_pipeline = FakePipeline()
    old = snapshot_with(old_pipeline)
    reloader = make_reloader(tmp_path, old, drain_timeout=1000)
    await nursery.start(reloader.serve)
    old.in_flight += 1  # a request that started on the old snapshot
    result = await reloader.reload()
    assert result.ok
    assert reloader.gateway.snapshot is not old
    await trio.testing.wait_all_tasks_blocked()
    assert not old_pipeline.closed  # still serving its request
    old.leave()
    await trio.testing.wait_all_tasks_blocked()
    assert old_pipeline.closed


async def test_drain_is_bounded(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    old_pipeline = FakePipeline()
    old = snapshot_with(old_pipeline)
    reloader = make_reloader(tmp_path, old, drain_timeout=5)
    await nursery.start(reloader.serve)
    old.in_flight += 1  # never finishes
    start = trio.current_time()
    await reloader.reload()
    await old_pipeline.closed_event.wait()
    assert trio.current_time() - start >= 5


async def test_without_serve_reload_drains_and_closes_itself(tmp_path: Path) -> None:
    old_pipeline = FakePipeline()
    reloader = make_reloader(tmp_path, snapshot_with(old_pipeline))
    assert (await reloader.reload()).ok
    assert old_pipeline.closed


async def test_failed_build_keeps_the_old_snapshot(tmp_path: Path) -> None:
    old = snapshot_with(FakePipeline())
    reloader = make_reloader(tmp_path, old)

    async def failing(apis: Sequence[ApiDefinition]) -> ApiSnapshot:
        raise ValueError("boom")

    reloader.build = failing
    result = await reloader.reload()
    assert not result.ok
    assert "boom" in result.message
    assert reloader.gateway.snapshot is old
    assert reloader.generation == 0


async def test_missing_folder_fails_the_reload(tmp_path: Path) -> None:
    old = snapshot_with(FakePipeline())
    reloader = make_reloader(tmp_path / "gone", old)
    result = await reloader.reload()
    assert not result.ok
    assert "cannot read the API definitions folder" in result.message
    assert reloader.gateway.snapshot is old


async def test_queued_reloads_coalesce(nursery: trio.Nursery, tmp_path: Path) -> None:
    write_api(tmp_path, "a")
    reloader = make_reloader(tmp_path, snapshot_with(FakePipeline()))
    for _ in range(5):
        reloader.request_reload()  # before serve runs: one reload covers them all
    await nursery.start(reloader.serve)
    with trio.fail_after(10):
        await reloader.wait_for_generation(1)
    await trio.testing.wait_all_tasks_blocked()
    assert reloader.generation == 1
    assert set(reloader.gateway.snapshot.runtimes) == {"a"}


def test_folder_fingerprint_sees_added_changed_and_removed_files(tmp_path: Path) -> None:
    assert folder_fingerprint(tmp_path / "missing") is None
    empty = folder_fingerprint(tmp_path)
    assert empty == {}
    write_api(tmp_path, "a")
    (tmp_path / "notes.txt").write_text("ignored")
    added = folder_fingerprint(tmp_path)
    assert added is not None
    assert set(added) == {"a.json"}
    (tmp_path / "a.json").write_text((tmp_path / "a.json").read_text() + "\n ")
    assert folder_fingerprint(tmp_path) != added
    (tmp_path / "a.json").unlink()
    assert folder_fingerprint(tmp_path) == {}


def test_secret_matches() -> None:
    assert secret_matches("s3cret", b"s3cret")
    assert not secret_matches("s3cret", b"s3cre")
    assert not secret_matches("s3cret", b"s3cretX")
    assert not secret_matches("s3cret", None)
    assert not secret_matches("", b"")  # no secret configured: nothing matches


def test_reload_notices() -> None:
    assert is_reload_notice(b'{"command": "GroupReload", "payload": ""}')
    assert is_reload_notice(b'{"command": "ApiUpdated"}')
    assert not is_reload_notice(b'{"command": "KeySpaceUpdateNotification"}')
    assert not is_reload_notice(b"not json")
    assert not is_reload_notice(b"[]")


async def test_front_claims_admin_paths_only_when_on() -> None:
    seen: list[str] = []

    async def gateway(request: Request) -> Response:
        seen.append(request.path)
        return Response(status=204, headers=[])

    off = mount(AdminFront(secret="", routes=None), gateway)
    response = await off(Request(method="GET", path="/tyk/keys", query="", headers=[]))
    assert response.status == 204
    assert seen == ["/tyk/keys"]
    hello = await off(Request(method="GET", path="/hello", query="", headers=[]))
    assert hello.status == 200
    assert seen == ["/tyk/keys"]

    draining = AdminFront(secret="", routes=None, ready=lambda: False)
    ready = await draining.handle(Request(method="GET", path="/ready", query="", headers=[]))
    assert ready.status == 503
    assert ready.body_bytes is not None
    assert json.loads(ready.body_bytes)["status"] == "fail"
