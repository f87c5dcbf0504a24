"""Keys, sessions and the built-in auth and limits, end to end: a real gateway, a real upstream
and (parametrised) a real redis-server, all on 127.0.0.1 sockets.

Time that keys and limits count by is a fake wall clock injected into ``serve_gateway``; keys are
created directly through the store the gateway serves from (until the admin API exists).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.redis_server import RedisServer
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._auth.id_extractor import session_id
from trio_gateway._config.model import GatewayConfig, ListenConfig
from trio_gateway._exchange import Request, Response
from trio_gateway._redis.client import RedisClient
from trio_gateway._server import HttpServer
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import AccessDefinition, AccessLimit, AllowedUrl, Session
from trio_gateway._session.redis import RedisSessionStore
from trio_gateway._session.store import SessionStore

T0 = 1_700_000_000.0
ORG = "org1"

AUTH_PLUGIN = """
from trio_gateway.hooks import HookContext, Respond, Session


async def authenticate(ctx: HookContext) -> Respond | None:
    token = ctx.request.get_header("X-Token", "") or ""
    if not token.startswith("user-"):
        return Respond(status=403, body='{"error": "nope"}')
    conf = ctx.api.config_data or {}
    session = Session(
        quota_max=conf.get("quota_max", 0),
        quota_renewal_rate=3600,
        id_extractor_deadline=conf.get("deadline", 0),
        meta_data={"token": token},
        apply_policies=["gold-plan"] if token.startswith("user-pol") else [],
    )
    ctx.request.set_header("X-Auth-Plugin", "called")
    ctx.set_session(token, session)
    return None


async def count_visits(ctx: HookContext) -> None:
    session = ctx.session
    if session is not None:
        session.meta_data["visits"] = int(session.meta_data.get("visits", 0)) + 1
"""


@attrs.define
class WallClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


async def echo(request: Request) -> Response:
    doc = {"path": request.path, "headers": {k.decode(): v.decode() for k, v in request.headers}}
    return Response(status=200, headers=[], body_bytes=json.dumps(doc).encode())


async def http(
    address: tuple[str, int], method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(*address)
        async with stream:
            lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), got, body


def error_of(body: bytes) -> str:
    message: str = json.loads(body)["error"]
    return message


def api_doc(api_id: str, listen_path: str, target: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": ORG,
        "active": True,
        "use_keyless": False,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": True},
    }
    doc.update(extra)
    return doc


def write_apis(apps: Path, target: str) -> None:
    apps.mkdir()
    (apps.parent / "plugins").mkdir()
    (apps.parent / "plugins" / "auth.py").write_text(AUTH_PLUGIN)
    plugin = "../plugins/auth.py"
    docs = [
        api_doc(
            "keyed",
            "/keyed/",
            target,
            custom_middleware={
                "driver": "python",
                "post": [{"name": "count_visits", "path": plugin}],
            },
        ),
        api_doc(
            "located",
            "/located/",
            target,
            auth_configs={
                "authToken": {
                    "auth_header_name": "X-Api-Key",
                    "use_param": True,
                    "param_name": "key",
                    "use_cookie": True,
                    "cookie_name": "session",
                }
            },
        ),
        api_doc("open", "/open/", target, use_keyless=True),
        api_doc(
            "unlimited",
            "/unlimited/",
            target,
            disable_rate_limit=True,
            disable_quota=True,
            global_rate_limit={"rate": 1, "per": 60},
        ),
        api_doc(
            "limited",
            "/limited/",
            target,
            use_keyless=True,
            global_rate_limit={"rate": 2, "per": 60},
        ),
        api_doc(
            "custom",
            "/custom/",
            target,
            custom_plugin_auth_enabled=True,
            config_data={"quota_max": 3},
            custom_middleware={
                "driver": "python",
                "auth_check": {"name": "authenticate", "path": plugin},
            },
        ),
        api_doc(
            "cached",
            "/cached/",
            target,
            custom_plugin_auth_enabled=True,
            config_data={"quota_max": 3, "deadline": T0 + 100},
            custom_middleware={
                "driver": "python",
                "auth_check": {"name": "authenticate", "path": plugin},
                "id_extractor": {
                    "extract_from": "header",
                    "extract_with": "value",
                    "extractor_config": {"header_name": "X-Token"},
                },
            },
        ),
    ]
    for doc in docs:
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))


@attrs.define
class Setup:
    gateway: RunningGateway
    store: SessionStore
    clock: WallClock

    async def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return await http(self.gateway.address, "GET", path, headers)


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], SessionStore]]:
    stores: list[SessionStore] = []

    def make() -> SessionStore:
        store: SessionStore
        if request.param == "memory":
            store = MemorySessionStore()
        else:
            server: RedisServer = request.getfixturevalue("redis_db")
            store = RedisSessionStore(RedisClient(host=server.host, port=server.port))
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


async def start(
    nursery: trio.Nursery,
    tmp_path: Path,
    store: SessionStore,
    config: GatewayConfig | None = None,
) -> Setup:
    upstream = HttpServer(handler=echo, log_requests=False)
    host, port = await nursery.start(upstream.serve, "127.0.0.1", 0)
    apps = tmp_path / "apps"
    write_apis(apps, f"http://{host}:{port}/")
    config = attrs.evolve(config or GatewayConfig(), listen=ListenConfig(host="127.0.0.1", port=0))
    clock = WallClock()
    running: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(
            config, apps_dir=apps, session_store=store, wall_clock=clock, task_status=task_status
        )
    )
    assert running.report.errors == []
    return Setup(gateway=running, store=store, clock=clock)


@pytest.fixture
async def gw(
    nursery: trio.Nursery, tmp_path: Path, make_store: Callable[[], SessionStore]
) -> Setup:
    return await start(nursery, tmp_path, make_store())


# --- standard token auth -------------------------------------------------------------------------


async def test_missing_and_unknown_keys(gw: Setup) -> None:
    status, _, body = await gw.get("/keyed/x")
    assert (status, error_of(body)) == (401, "Authorization field missing")
    status, _, body = await gw.get("/keyed/x", Authorization="nope")
    assert (status, error_of(body)) == (403, "Access to this API has been disallowed")


async def test_known_key_passes_with_or_without_bearer(gw: Setup) -> None:
    await gw.store.put_session("k1", Session())
    status, _, body = await gw.get("/keyed/x", Authorization="k1")
    assert status == 200
    assert json.loads(body)["path"] == "/x"
    status, _, _ = await gw.get("/keyed/x", Authorization="Bearer k1")
    assert status == 200


async def test_expired_and_inactive_keys(gw: Setup) -> None:
    await gw.store.put_session("soon", Session(expires=int(T0) + 10))
    await gw.store.put_session("off", Session(is_inactive=True))
    assert (await gw.get("/keyed/", Authorization="soon"))[0] == 200
    gw.clock.now = T0 + 11
    status, _, body = await gw.get("/keyed/", Authorization="soon")
    assert (status, error_of(body)) == (401, "Key has expired, please renew")
    status, _, body = await gw.get("/keyed/", Authorization="off")
    assert (status, error_of(body)) == (403, "Key is inactive, please renew")


async def test_keys_naming_policies_are_refused_with_one_log_line(
    gw: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # Empty access_rights means every API: serving the key would ignore what the policy limits.
    await gw.store.put_session("pol-1234", Session(apply_policies=["gold-plan"]))
    await gw.store.put_session("old-style", Session(apply_policy_id="silver"))
    caplog.set_level("WARNING", logger="trio_gateway")
    status, _, body = await gw.get("/keyed/x", Authorization="pol-1234")
    assert (status, error_of(body)) == (403, "Access to this API has been disallowed")
    assert (await gw.get("/keyed/x", Authorization="old-style"))[0] == 403
    # Custom auth results are refused the same way, before they are stored.
    assert (await gw.get("/custom/", **{"X-Token": "user-pol-ann"}))[0] == 403
    assert await gw.store.get_session("user-pol-ann") is None
    lines = [r.getMessage() for r in caplog.records if "apply_policies" in r.getMessage()]
    assert len(lines) == 3
    assert lines[0] == (
        "API keyed: refused key ****1234 with 403: it names policies gold-plan (apply_policies), "
        "which trio-gateway does not apply yet; give the key its own access_rights and limits"
    )
    assert "policies silver" in lines[1]


async def test_access_rights_api_url_and_method(gw: Setup) -> None:
    await gw.store.put_session(
        "elsewhere", Session(access_rights={"other": AccessDefinition(api_id="other")})
    )
    rights = AccessDefinition(
        api_id="keyed", allowed_urls=[AllowedUrl(url="^/allowed", methods=["GET"])]
    )
    await gw.store.put_session("narrow", Session(access_rights={"keyed": rights}))
    status, _, body = await gw.get("/keyed/allowed", Authorization="elsewhere")
    assert (status, error_of(body)) == (403, "Access to this API has been disallowed")
    assert (await gw.get("/keyed/allowed/1", Authorization="narrow"))[0] == 200
    status, _, body = await gw.get("/keyed/other", Authorization="narrow")
    assert (status, error_of(body)) == (403, "Access to this resource has been disallowed")
    status, _, body = await http(
        gw.gateway.address, "DELETE", "/keyed/allowed", {"Authorization": "narrow"}
    )
    assert (status, error_of(body)) == (403, "Access to this resource has been disallowed")


async def test_key_locations_header_query_cookie(gw: Setup) -> None:
    await gw.store.put_session("k1", Session())
    assert (await gw.get("/located/"))[0] == 401
    assert (await gw.get("/located/", Authorization="k1"))[0] == 401  # not its header
    assert (await gw.get("/located/", **{"X-Api-Key": "k1"}))[0] == 200
    assert (await gw.get("/located/?key=k1"))[0] == 200
    assert (await gw.get("/located/", Cookie="a=b; session=k1"))[0] == 200
    assert (await gw.get("/located/?key=bad"))[0] == 403


# --- rate limits and quotas ----------------------------------------------------------------------


async def test_rate_limit_429_then_window_moves_on(gw: Setup) -> None:
    await gw.store.put_session("k", Session(rate=2, per=10))
    assert [(await gw.get("/keyed/", Authorization="k"))[0] for _ in range(2)] == [200, 200]
    status, _, body = await gw.get("/keyed/", Authorization="k")
    assert (status, error_of(body)) == (429, "Rate Limit Exceeded")
    gw.clock.now = T0 + 10.5
    assert (await gw.get("/keyed/", Authorization="k"))[0] == 200


@pytest.mark.parametrize(
    ("path", "header"),
    [("/keyed/", "Authorization"), ("/located/", "X-Api-Key")],
    ids=["api-with-hooks", "api-without-hooks"],
)
async def test_updated_key_applies_from_the_next_request(
    gw: Setup, path: str, header: str
) -> None:
    """Without hooks the gateway remembers what it derived from a stored session (its limits):
    an update through the store must still take effect at once."""
    await gw.store.put_session("k", Session(rate=100, per=10))
    assert [(await gw.get(path, **{header: "k"}))[0] for _ in range(2)] == [200, 200]
    await gw.store.put_session("k", Session(rate=2, per=10))
    status, _, body = await gw.get(path, **{header: "k"})
    assert (status, error_of(body)) == (429, "Rate Limit Exceeded")
    await gw.store.put_session("k", Session(rate=100, per=10, is_inactive=True))
    assert (await gw.get(path, **{header: "k"}))[0] == 403


async def test_quota_403_headers_and_renewal(gw: Setup) -> None:
    await gw.store.put_session("k", Session(quota_max=2, quota_renewal_rate=60))
    status, headers, _ = await gw.get("/keyed/", Authorization="k")
    assert status == 200
    assert headers["x-ratelimit-limit"] == "2"
    assert headers["x-ratelimit-remaining"] == "1"
    assert headers["x-ratelimit-reset"] == str(int(T0) + 60)
    assert (await gw.get("/keyed/", Authorization="k"))[1]["x-ratelimit-remaining"] == "0"
    status, headers, body = await gw.get("/keyed/", Authorization="k")
    assert (status, error_of(body)) == (403, "Quota exceeded")
    assert headers["x-ratelimit-remaining"] == "0"
    gw.clock.now = T0 + 61
    status, headers, _ = await gw.get("/keyed/", Authorization="k")
    assert status == 200
    assert headers["x-ratelimit-remaining"] == "1"


async def test_per_api_limit_in_access_rights_wins(gw: Setup) -> None:
    rights = AccessDefinition(api_id="keyed", limit=AccessLimit(rate=1, per=60))
    await gw.store.put_session("k", Session(rate=100, per=60, access_rights={"keyed": rights}))
    assert (await gw.get("/keyed/", Authorization="k"))[0] == 200
    assert (await gw.get("/keyed/", Authorization="k"))[0] == 429


async def test_headers_from_rate_limit_when_configured(
    nursery: trio.Nursery, tmp_path: Path, make_store: Callable[[], SessionStore]
) -> None:
    config = GatewayConfig(rate_limit_response_headers="rate_limits")
    gw = await start(nursery, tmp_path, make_store(), config)
    await gw.store.put_session("k", Session(rate=5, per=10, quota_max=100))
    status, headers, _ = await gw.get("/keyed/", Authorization="k")
    assert status == 200
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("5", "4")
    assert headers["x-ratelimit-reset"] == "10"


async def test_disable_rate_limit_and_quota_switch_the_limits_off_as_in_tyk(gw: Setup) -> None:
    limited = Session(rate=1, per=60, quota_max=1, quota_renewal_rate=3600)
    await gw.store.put_session("k-limited", limited)
    statuses = [(await gw.get("/unlimited/", Authorization="k-limited"))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]  # neither the key's limits nor global_rate_limit apply
    statuses = [(await gw.get("/keyed/", Authorization="k-limited"))[0] for _ in range(2)]
    assert statuses == [200, 429]  # the same key elsewhere is limited


async def test_global_rate_limit_on_keyless_api(gw: Setup) -> None:
    assert [(await gw.get("/limited/"))[0] for _ in range(2)] == [200, 200]
    status, _, body = await gw.get("/limited/")
    assert (status, error_of(body)) == (429, "API Rate Limit Exceeded")
    assert (await gw.get("/open/"))[0] == 200
    gw.clock.now = T0 + 61
    assert (await gw.get("/limited/"))[0] == 200


# --- custom auth and meta_data -------------------------------------------------------------------


async def test_custom_auth_session_is_stored_and_limited(gw: Setup) -> None:
    statuses = [(await gw.get("/custom/", **{"X-Token": "user-ann"}))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 403]
    stored = await gw.store.get_session("user-ann")
    assert stored is not None
    assert stored.org_id == ORG
    assert stored.meta_data == {"token": "user-ann"}
    assert stored.quota_remaining == 0
    assert (await gw.get("/custom/", **{"X-Token": "nobody"}))[0] == 403


async def test_id_extractor_cache_skips_the_plugin_until_the_deadline(gw: Setup) -> None:
    status, _, body = await gw.get("/cached/", **{"X-Token": "user-bob"})
    assert status == 200
    assert json.loads(body)["headers"]["x-auth-plugin"] == "called"
    sid = session_id(ORG, "user-bob")
    cached = await gw.store.get_session(sid)
    assert cached is not None
    assert cached.id_extractor_deadline == int(T0 + 100)
    status, _, body = await gw.get("/cached/", **{"X-Token": "user-bob"})
    assert status == 200
    assert "x-auth-plugin" not in json.loads(body)["headers"]
    gw.clock.now = T0 + 101
    status, _, body = await gw.get("/cached/", **{"X-Token": "user-bob"})
    assert status == 200
    assert json.loads(body)["headers"]["x-auth-plugin"] == "called"
    # Quota (3) counted across cached and plugin-made requests alike.
    status, _, body = await gw.get("/cached/", **{"X-Token": "user-bob"})
    assert (status, error_of(body)) == (403, "Quota exceeded")
    status, _, body = await gw.get("/cached/")
    assert (status, error_of(body)) == (400, "Authorization field missing")


async def test_post_hook_meta_data_is_persisted(gw: Setup) -> None:
    await gw.store.put_session("k", Session(meta_data={"team": "a"}))
    for _ in range(2):
        assert (await gw.get("/keyed/", Authorization="k"))[0] == 200
    stored = await gw.store.get_session("k")
    assert stored is not None
    assert stored.meta_data == {"team": "a", "visits": 2}


# --- Redis outage --------------------------------------------------------------------------------


async def test_redis_down_keyed_503_keyless_200_then_recovery(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server_factory: Callable[[], RedisServer],
    mock_clock: trio.testing.MockClock,
) -> None:
    server = redis_server_factory()
    store = RedisSessionStore(RedisClient(host=server.host, port=server.port))
    try:
        gw = await start(nursery, tmp_path, store)
        await store.put_session("k", Session(rate=100, per=60))
        assert (await gw.get("/keyed/", Authorization="k"))[0] == 200
        server.stop()
        status, _, body = await gw.get("/keyed/", Authorization="k")
        assert (status, error_of(body)) == (503, "Service Unavailable")
        assert (await gw.get("/open/"))[0] == 200
        restarted = RedisServer(port=server.port)
        restarted.start()
        try:
            assert (await gw.get("/keyed/", Authorization="k"))[0] == 503  # still backing off
            mock_clock.jump(10)  # past the client's reconnect backoff
            await store.put_session("k", Session(rate=100, per=60))  # the restart lost it
            assert (await gw.get("/keyed/", Authorization="k"))[0] == 200
        finally:
            restarted.stop()
    finally:
        await store.aclose()
