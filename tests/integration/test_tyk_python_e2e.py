"""Tyk-style Python plugins (``from tyk.decorators import *``, ``@Hook``) end to end: a real
gateway and a real upstream on 127.0.0.1 sockets, a local plugin folder (no bundle) or a bundle
from a real HTTP server, the plugin store in memory and in a real redis-server."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.bundles import bundles_config, make_bundle, sent_headers, setup
from tests.helpers.client import RawResponse, fetch
from tests.helpers.upstream import start_upstream
from tests.redis_server import RedisServer
from trio_gateway._app import RunningGateway
from trio_gateway._config.model import GatewayConfig, StorageConfig

MIDDLEWARE = """
from tyk.decorators import *
from gateway import TykGateway as tyk
import coprocess_session_state_pb2
from helpers import suffix


@Hook
def AddHeader(request, session, spec):
    request.add_header("X-Tyk-Style", spec["APIID"] + suffix())
    request.delete_header("X-Remove")
    request.add_param("added", "1")
    request.delete_param("gone")
    print("pre hook saw", request.object.method, request.get_header("X-Remove"))
    tyk.log("tyk.log line from " + request.object.url, "warning")
    return request, session


@Hook
def Deny(request, session, metadata, spec):
    if request.get_header("X-Deny"):
        request.object.return_overrides.response_code = 418
        request.object.return_overrides.response_error = "denied by plugin"
    return request, session, metadata


@Hook
def ConfigData(request, session, spec):
    try:
        request.add_header("X-Config", spec["config_data"])
    except KeyError:
        request.add_header("X-Config", "missing")
    return request, session


@Hook
def MyAuth(request, session, metadata, spec):
    if request.get_header("Authorization") == "secret-token":
        session.rate = 1000.0
        session.per = 1.0
        session.id_extractor_deadline = 4102444800  # 2100-01-01: cached from now on
        metadata["token"] = "secret-token"
        metadata["plan"] = "gold"
        request.add_header("X-Auth-Plugin", "called")
    return request, session, metadata


@Hook
def TagPlan(request, session, metadata, spec):
    request.add_header("X-Plan", metadata.get("plan", "none"))
    request.add_header("X-Rate", str(int(session.rate)))
    return request, session, metadata


@Hook
def Rewrite(request, response, session, metadata, spec):
    doc = {"wrapped": response.raw_body.decode(), "status": response.status_code}
    response.raw_body = (str(doc["status"]) + ":" + spec["APIID"]).encode()
    response.headers["X-Rewritten"] = "yes"
    response.status_code = 201
    return response


@Hook
def Boom(request, session, spec):
    raise RuntimeError("secret traceback text")


@Hook
def BoomAuth(request, session, metadata, spec):
    raise RuntimeError("secret auth failure")


@Hook
def Store(request, session, spec):
    key = request.get_header("X-Key")
    tyk.store_data(key, request.get_header("X-Value"), 60)
    request.add_header("X-Got", tyk.get_data(key).decode())
    request.add_header("X-Missing", repr(tyk.get_data("never-stored")))
    return request, session


@Hook
def Visible(request, session, spec):
    import sys
    request.add_header("X-Session-Type", coprocess_session_state_pb2.SessionState.__name__)
    request.add_header("X-Tyk-In-Sys-Modules", str("tyk" in sys.modules))
    return request, session
"""

HELPERS = 'def suffix():\n    return "-helped"\n'


def plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins" / "tykstyle"
    folder.mkdir(parents=True)
    (folder / "middleware.py").write_text(MIDDLEWARE)
    (folder / "helpers.py").write_text(HELPERS)
    return folder


def hooks(*stages: tuple[str, str], folder: Path) -> dict[str, Any]:
    mw: dict[str, Any] = {"driver": "python"}
    for stage, name in stages:
        entry = {"name": name, "path": str(folder)}
        if stage == "auth_check":
            mw[stage] = entry
        else:
            mw.setdefault(stage, []).append(entry)
    return mw


async def serve_apis(
    nursery: trio.Nursery,
    tmp_path: Path,
    apis: dict[str, dict[str, Any]],
    config: GatewayConfig | None = None,
) -> tuple[RunningGateway, str]:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    for api_id, extra in apis.items():
        write_keyless_api(
            apps, api_id=api_id, listen_path=f"/{api_id}/", target_url=upstream.url, **extra
        )
    return await start_gateway(nursery, apps, config=config), upstream.url


def upstream_saw(response: RawResponse) -> dict[str, str]:
    assert response.status == 200, response.body
    return sent_headers(response.body)


async def test_a_pre_hook_from_a_local_folder_edits_the_request_and_logs(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    folder = plugin_folder(tmp_path)
    path_before = list(sys.path)
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {"tyk": {"custom_middleware": hooks(("pre", "AddHeader"), folder=folder)}},
    )
    response = await fetch(
        gw.address, "GET", "/tyk/x?gone=1&keep=2", [("X-Remove", "a"), ("Accept", "*/*")]
    )
    seen = upstream_saw(response)
    assert seen["x-tyk-style"] == "tyk-helped"
    assert "x-remove" not in seen
    target = json.loads(response.body)["target"]
    assert target == "/x?added=1&keep=2"
    messages = [r.getMessage() for r in caplog.records]
    # print() and tyk.log reach the gateway's log, with the API.
    assert "plugin output api=tyk: pre hook saw GET a" in messages
    assert "plugin api=tyk: tyk.log line from /tyk/x?gone=1&keep=2" in messages
    # Tyk's names exist only inside the plugin's namespace.
    assert sys.path == path_before
    assert not {"tyk", "gateway", "coprocess_object_pb2", "helpers"} & set(sys.modules)


async def test_tyk_modules_are_not_global_even_for_plugin_code(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    gw, _ = await serve_apis(
        nursery, tmp_path, {"vis": {"custom_middleware": hooks(("pre", "Visible"), folder=folder)}}
    )
    seen = upstream_saw(await fetch(gw.address, "GET", "/vis/x"))
    assert seen["x-session-type"] == "SessionState"
    assert seen["x-tyk-in-sys-modules"] == "False"


async def test_return_overrides_answer_the_client_with_tyks_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    gw, _ = await serve_apis(
        nursery, tmp_path, {"deny": {"custom_middleware": hooks(("pre", "Deny"), folder=folder)}}
    )
    denied = await fetch(gw.address, "GET", "/deny/x", [("X-Deny", "1")])
    assert denied.status == 418
    assert denied.json() == {"error": "denied by plugin"}
    assert (await fetch(gw.address, "GET", "/deny/x")).status == 200


async def test_spec_has_config_data_as_json_and_raises_key_error_without_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    mw = hooks(("pre", "ConfigData"), folder=folder)
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {
            "with": {"custom_middleware": mw, "config_data": {"b": 1, "a": "x"}},
            "without": {"custom_middleware": mw},
        },
    )
    assert upstream_saw(await fetch(gw.address, "GET", "/with/x"))["x-config"] == (
        '{"a":"x","b":1}'
    )
    assert upstream_saw(await fetch(gw.address, "GET", "/without/x"))["x-config"] == "missing"


async def test_custom_auth_fills_the_session_and_the_id_extractor_cache_applies(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    mw = hooks(("auth_check", "MyAuth"), ("post", "TagPlan"), folder=folder)
    mw["id_extractor"] = {
        "extract_from": "header",
        "extract_with": "value",
        "extractor_config": {"header_name": "Authorization"},
    }
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {
            "auth": {
                "use_keyless": False,
                "custom_plugin_auth_enabled": True,
                "custom_middleware": mw,
            }
        },
    )
    token = [("Authorization", "secret-token")]
    first = upstream_saw(await fetch(gw.address, "GET", "/auth/x", token))
    assert first["x-auth-plugin"] == "called"
    # The session the hook filled reaches later hooks (metadata and fields).
    assert (first["x-plan"], first["x-rate"]) == ("gold", "1000")
    # Cached by the ID extractor until its deadline: the plugin is not called again.
    second = upstream_saw(await fetch(gw.address, "GET", "/auth/x", token))
    assert "x-auth-plugin" not in second
    assert second["x-plan"] == "gold"
    refused = await fetch(gw.address, "GET", "/auth/x", [("Authorization", "wrong")])
    assert refused.status == 403
    assert refused.json() == {"error": "Forbidden"}


async def test_a_response_hook_rewrites_body_headers_and_status(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {"resp": {"custom_middleware": hooks(("response", "Rewrite"), folder=folder)}},
    )
    response = await fetch(gw.address, "GET", "/resp/x")
    assert response.status == 201
    assert response.body == b"200:resp"
    assert response.header("x-rewritten") == b"yes"
    assert response.header("content-length") == b"8"


@pytest.mark.parametrize(
    ("stage", "name", "status", "error"),
    [
        ("pre", "Boom", 500, "Middleware error"),
        ("auth_check", "BoomAuth", 403, "Key not authorised"),
    ],
)
async def test_an_exception_is_tyks_error_logged_once_without_its_text_to_the_client(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stage: str,
    name: str,
    status: int,
    error: str,
) -> None:
    folder = plugin_folder(tmp_path)
    extra: dict[str, Any] = {"custom_middleware": hooks((stage, name), folder=folder)}
    if stage == "auth_check":
        extra.update(use_keyless=False, custom_plugin_auth_enabled=True)
    gw, _ = await serve_apis(nursery, tmp_path, {"bad": extra, "fine": {}})
    response = await fetch(gw.address, "GET", "/bad/x")
    assert response.status == status
    assert response.json() == {"error": error}
    assert b"secret" not in response.body
    assert b"Traceback" not in response.body
    lines = [r.getMessage() for r in caplog.records if "hook failed" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "api=bad" in lines[0]
    assert name in lines[0]
    assert f"stage={'auth' if stage == 'auth_check' else stage}" in lines[0]
    # The gateway keeps serving.
    assert (await fetch(gw.address, "GET", "/fine/x")).status == 200


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_store_data_and_get_data_use_the_gateways_store(
    nursery: trio.Nursery, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    config = GatewayConfig()
    redis: RedisServer | None = None
    if store == "redis":
        redis = request.getfixturevalue("redis_db")
        assert redis is not None
        config = GatewayConfig(
            storage=StorageConfig(type="redis", host=redis.host, port=redis.port)
        )
    folder = plugin_folder(tmp_path)
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {"store": {"custom_middleware": hooks(("pre", "Store"), folder=folder)}},
        config=config,
    )
    seen = upstream_saw(
        await fetch(gw.address, "GET", "/store/x", [("X-Key", "colour"), ("X-Value", "blue")])
    )
    assert seen["x-got"] == "blue"
    assert seen["x-missing"] == "b''"  # Tyk answers empty bytes for a missing key
    if redis is not None:
        # Where Tyk keeps it, with its TTL.
        assert redis.command("GET", "coprocess-data:colour") == b"$4\r\nblue\r\n"
        ttl = int(redis.command("TTL", "coprocess-data:colour")[1:].strip())
        assert 0 < ttl <= 60


SLEEPER = """
import time
from tyk.decorators import *

@Hook
def Sleep(request, session, spec):
    time.sleep(0.1)
    request.add_header("X-Slept", "1")
    return request, session
"""


async def test_eight_sleeping_hooks_run_concurrently(nursery: trio.Nursery, tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    mw = {"driver": "python", "pre": [{"name": "Sleep", "path": str(tmp_path / "sleeper.py")}]}
    gw, _ = await serve_apis(nursery, tmp_path, {"sleep": {"custom_middleware": mw}})
    # Warm up: connections, the thread cache.
    assert upstream_saw(await fetch(gw.address, "GET", "/sleep/x"))["x-slept"] == "1"
    answers: list[RawResponse] = []

    async def one() -> None:
        answers.append(await fetch(gw.address, "GET", "/sleep/x"))

    start = trio.current_time()
    async with trio.open_nursery() as group:
        for _ in range(8):
            group.start_soon(one)
    elapsed = trio.current_time() - start
    assert [a.status for a in answers] == [200] * 8
    # One after the other they would take 0.8 s (Tyk's global Python lock).
    assert elapsed < 0.4, elapsed


async def test_a_tyk_style_bundle_with_custom_auth_from_the_manifest_alone(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    s.server.files["tyk-auth.zip"] = make_bundle(
        {"middleware.py": MIDDLEWARE.encode(), "helpers.py": HELPERS.encode()},
        middleware={
            "driver": "python",
            "auth_check": {"name": "MyAuth"},
            "pre": [{"name": "AddHeader"}],
        },
    )
    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id="bundled",
        listen_path="/bundled/",
        target_url=s.upstream_url,
        use_keyless=False,
        custom_plugin_auth_enabled=True,
        custom_middleware_bundle="tyk-auth.zip",
    )
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    assert (await fetch(gw.address, "GET", "/bundled/x")).status == 403
    ok = await fetch(gw.address, "GET", "/bundled/x", [("Authorization", "secret-token")])
    seen = upstream_saw(ok)
    assert seen["x-tyk-style"] == "bundled-helped"
    assert seen["x-auth-plugin"] == "called"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("NoSuchHook", "has no function 'NoSuchHook'"),
        ("Legacy", "legacy @Pre decorator"),
        ("TwoArgs", "takes 2 positional parameters"),
    ],
)
async def test_hooks_tyk_cannot_call_fail_their_api_at_load(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    reason: str,
) -> None:
    plugin = tmp_path / "plugins" / "bad.py"
    plugin.parent.mkdir()
    plugin.write_text(
        textwrap.dedent(
            """
            from tyk.decorators import *

            @Pre
            def Legacy(request, session, spec):
                return request, session

            @Hook
            def TwoArgs(request, session):
                return request, session
            """
        )
    )
    mw = {"driver": "python", "pre": [{"name": name, "path": str(plugin)}]}
    gw, _ = await serve_apis(nursery, tmp_path, {"broken": {"custom_middleware": mw}, "ok": {}})
    assert (await fetch(gw.address, "GET", "/broken/x")).status == 503
    assert (await fetch(gw.address, "GET", "/ok/x")).status == 200
    lines = [r.getMessage() for r in caplog.records if "will answer 503" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "broken" in lines[0]
    assert reason in lines[0]
    assert f"hook pre[0] {name}" in lines[0]
    if name == "NoSuchHook":
        assert str(plugin) in lines[0]


# -- the examples -------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_tyk_style_examples_behave_like_the_native_ones(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import shutil

    upstream = await start_upstream(nursery)
    shutil.copytree(EXAMPLES / "tyk-python", tmp_path / "tyk-python")
    apps = tmp_path / "tyk-python" / "apps"
    for source in apps.glob("*.json"):
        doc = json.loads(source.read_text())
        doc["proxy"]["target_url"] = upstream.url
        source.write_text(json.dumps(doc))
    gw = await start_gateway(nursery, apps)
    addr = gw.address

    seen = upstream_saw(
        await fetch(addr, "GET", "/tyk-python/headers/x", [("X-Internal-Debug", "1")])
    )
    assert seen["x-gateway"] == "example-gateway"
    assert seen["x-api-id"] == "tyk-python-add-headers"
    assert "x-internal-debug" not in seen

    bad = await fetch(addr, "POST", "/tyk-python/orders/", body=b'{"item": "tea"}')
    assert bad.status == 400
    assert bad.header("content-type") == b"application/json"
    assert bad.json() == {"error": "quantity must be a positive integer"}
    assert (await fetch(addr, "POST", "/tyk-python/orders/", body=b"nope")).json() == {
        "error": "body must be JSON"
    }
    good = await fetch(addr, "POST", "/tyk-python/orders/", body=b'{"item": "tea", "quantity": 2}')
    assert good.status == 200

    rewritten = await fetch(addr, "GET", "/tyk-python/rewrite/a")
    assert rewritten.status == 200
    assert rewritten.header("x-rewritten-by") == b"trio-gateway"
    doc = rewritten.json()
    assert doc["api"] == "tyk-python-rewrite-response"
    assert doc["status"] == 200
    assert doc["data"]["target"] == "/a"

    refused = await fetch(addr, "GET", "/tyk-python/auth/me")
    assert refused.status == 403
    assert refused.json() == {"error": "Key not authorised"}
    token = [("Authorization", "Bearer secret-token-ann")]
    for visit in ("1", "2"):
        seen = upstream_saw(await fetch(addr, "GET", "/tyk-python/auth/me", token))
        assert seen["x-user"] == "ann"
        assert seen["x-visits"] == visit
        assert "authorization" not in seen


async def test_the_tyk_style_example_builds_into_a_bundle_that_serves(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import shutil

    from trio_gateway._cli import main
    from trio_gateway._config.model import BundlesConfig

    source = tmp_path / "tyk-python"
    shutil.copytree(EXAMPLES / "tyk-python", source)
    served = tmp_path / "served"
    served.mkdir()
    output = served / "tyk-python-v1.zip"
    assert (
        main(["bundle", "build", "-y", "-m", str(source / "manifest.json"), "-o", str(output)]) == 0
    )
    upstream = await start_upstream(nursery)
    doc = json.loads((EXAMPLES / "bundles" / "apps" / "tyk-python-bundle.json").read_text())
    doc["proxy"]["target_url"] = upstream.url
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "api.json").write_text(json.dumps(doc))
    config = GatewayConfig(
        bundles=BundlesConfig(
            enable_downloader=True,
            base_url=served.as_uri(),
            middleware_path=str(tmp_path / "middleware"),
        )
    )
    gw = await start_gateway(nursery, apps, config=config)
    path = doc["proxy"]["listen_path"] + "orders"
    assert (await fetch(gw.address, "POST", path, body=b"{}")).status == 403
    token = [("Authorization", "Bearer secret-token-ann")]
    bad = await fetch(gw.address, "POST", path, token, b'{"item": "tea"}')
    assert (bad.status, bad.json()) == (400, {"error": "quantity must be a positive integer"})
    ok = await fetch(gw.address, "POST", path, token, b'{"item": "tea", "quantity": 1}')
    assert ok.status == 200
    envelope = ok.json()
    assert envelope["api"] == doc["api_id"]
    headers = {k.lower(): v for k, v in envelope["data"]["headers"]}
    assert (headers["x-user"], headers["x-gateway"]) == ("ann", "bundle-gateway")


async def test_a_one_file_bundle_uses_that_file_as_its_entry(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Tyk's Python loader: middleware.py, except when file_list has exactly one entry.
    s = await setup(nursery, tmp_path)
    plugin = b"""
from tyk.decorators import *

@Hook
def Single(request, session, spec):
    request.add_header("X-Single", "yes")
    return request, session
"""
    s.server.files["single.zip"] = make_bundle(
        {"my_plugin.py": plugin}, middleware={"driver": "python", "pre": [{"name": "Single"}]}
    )
    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id="single",
        listen_path="/single/",
        target_url=s.upstream_url,
        custom_middleware_bundle="single.zip",
    )
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    assert upstream_saw(await fetch(gw.address, "GET", "/single/x"))["x-single"] == "yes"


async def test_a_reload_imports_a_local_plugin_folder_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    gw, _ = await serve_apis(
        nursery,
        tmp_path,
        {"hot": {"custom_middleware": hooks(("pre", "AddHeader"), folder=folder)}},
        config=GatewayConfig(secret="s3cret"),
    )
    assert upstream_saw(await fetch(gw.address, "GET", "/hot/x"))["x-tyk-style"] == "hot-helped"
    (folder / "helpers.py").write_text('def suffix():\n    return "-edited"\n')
    reply = await fetch(
        gw.address, "GET", "/tyk/reload?block=true", [("X-Tyk-Authorization", "s3cret")]
    )
    assert reply.status == 200
    assert upstream_saw(await fetch(gw.address, "GET", "/hot/x"))["x-tyk-style"] == "hot-edited"
    # The old namespace is released once the old plugins close: one namespace's helpers remain.
    helpers = [
        name
        for name, module in list(sys.modules.items())
        if str(getattr(module, "__file__", "")) == str(folder / "helpers.py")
    ]
    assert len(helpers) == 1, helpers
