"""A folder copied from a Tyk installation starts and serves with no edits.

Real parts only: a `trio-gateway run --config tyk.conf` subprocess configured the way Tyk's
plugin demos do it (a stock tyk.conf plus ``TYK_GW_*`` overrides), an apps folder holding Tyk
Dashboard exports (a Classic API with gRPC plugins, a Tyk OAS API), a grpcio
``coprocess.Dispatcher`` written as third-party Tyk plugin servers are, a redis-server and an
upstream on loopback sockets.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import trio
from conftest import Server

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.helpers.client import fetch
from tests.helpers.upstream import RawUpstream, start_upstream
from tests.integration.test_cli_and_shutdown import GatewayProcess, gateway_process
from tests.redis_server import RedisServer, free_port

PRE, CUSTOM_KEY_CHECK, RESPONSE = 1, 4, 5

#: A tyk.conf as Tyk's docker demos ship it (keys we do not use included).
TYK_CONF: dict[str, Any] = {
    "listen_port": 8080,
    "secret": "352d20ee67be67f6340b4c0605b044b7",
    "template_path": "/opt/tyk-gateway/templates",
    "use_db_app_configs": False,
    "app_path": "./apps",
    "middleware_path": "./middleware",
    "storage": {
        "type": "redis",
        "host": "tyk-redis",
        "port": 6379,
        "username": "",
        "password": "",
        "database": 0,
        "optimisation_max_idle": 2000,
        "optimisation_max_active": 4000,
    },
    "enable_analytics": False,
    "optimisations_use_async_session_write": True,
    "enable_non_transactional_rate_limiter": True,
    "policies": {"policy_source": "file", "policy_record_name": "./policies/policies.json"},
    "hash_keys": True,
    "http_server_options": {"enable_websockets": True},
    "allow_insecure_configs": True,
    "coprocess_options": {"enable_coprocess": False, "coprocess_grpc_server": ""},
    "enable_bundle_downloader": True,
    "bundle_base_url": "",
    "global_session_lifetime": 100,
    "max_idle_connections_per_host": 500,
}


def classic_export(upstream: RawUpstream) -> dict[str, Any]:
    """The Dashboard's export of a Classic API with gRPC plugins (its usual empty defaults)."""
    definition = {
        "id": "64f0c1b2e4b0a1a2b3c4d5e6",
        "name": "Orders",
        "slug": "orders",
        "api_id": "orders",
        "org_id": "5e9d9544a1dcd60001d0ed20",
        "use_keyless": False,
        "enable_coprocess_auth": True,
        "auth": {"auth_header_name": "Authorization"},
        "definition": {"location": "header", "key": "x-api-version", "strip_path": False},
        "version_data": {
            "not_versioned": True,
            "default_version": "",
            "versions": {
                "Default": {
                    "name": "Default",
                    "expires": "",
                    "paths": {"ignored": [], "white_list": [], "black_list": []},
                    "use_extended_paths": True,
                    "extended_paths": {},
                }
            },
        },
        "proxy": {
            "preserve_host_header": False,
            "listen_path": "/orders/",
            "target_url": upstream.url,
            "strip_listen_path": True,
        },
        "custom_middleware": {
            "driver": "grpc",
            "pre": [{"name": "MyPreHook"}],
            "auth_check": {"name": "MyAuthCheck"},
            "response": [{"name": "MyResponseHook"}],
        },
        "custom_middleware_bundle": "",
        "event_handlers": {"events": {}},
        "enable_batch_request_support": False,
        "expiration": "",
        "active": True,
        "tags": [],
        "CORS": {"enable": False, "allowed_origins": []},
        "session_lifetime": 0,
        "disable_rate_limit": False,
        "disable_quota": False,
        "config_data": {},
        "response_processors": [],
        "uptime_tests": {"check_list": [], "config": {"expire_utime_after": 0}},
        "domain": "",
        "global_rate_limit": {"rate": 0, "per": 0},
    }
    return {
        "api_model": {},
        "api_definition": definition,
        "hook_references": [],
        "is_site": False,
        "sort_by": 0,
    }


def oas_export(upstream: RawUpstream) -> dict[str, Any]:
    """The Dashboard's export of a keyless Tyk OAS API (OAS document + mirrored Classic half)."""
    oas = {
        "openapi": "3.0.3",
        "info": {"title": "Status", "version": "1.0.0"},
        "paths": {},
        "x-tyk-api-gateway": {
            "info": {"id": "status", "name": "Status", "state": {"active": True}},
            "upstream": {"url": upstream.url},
            "server": {"listenPath": {"value": "/status/", "strip": True}},
        },
    }
    classic = {"api_id": "status", "name": "Status", "is_oas": True, "use_keyless": True}
    return {"api_model": {}, "api_definition": classic, "oas": oas, "hook_references": []}


def tyk_style_plugin(o: pb.Object, context: Any) -> pb.Object:
    """What third-party Tyk gRPC plugin servers do: set headers, check a token, edit responses."""
    if o.hook_type == PRE:
        o.request.set_headers["x-plugin-pre"] = "ran"
    elif o.hook_type == CUSTOM_KEY_CHECK:
        if o.request.headers.get("Authorization") == "Bearer good-token":
            o.session.rate, o.session.per = 1000, 60
            o.metadata["token"] = "good-token"
        else:
            o.request.return_overrides.response_code = 403
            o.request.return_overrides.response_error = "Denied by plugin"
    elif o.hook_type == RESPONSE:
        o.response.headers["x-plugin-response"] = "ran"
    return o


def tyk_folder(tmp_path: Path, upstream: RawUpstream) -> Path:
    folder = tmp_path / "tyk"
    (folder / "apps").mkdir(parents=True)
    (folder / "tyk.conf").write_text(json.dumps(TYK_CONF, indent=2))
    (folder / "apps" / "api-orders.json").write_text(json.dumps(classic_export(upstream)))
    (folder / "apps" / "api-status.json").write_text(json.dumps(oas_export(upstream)))
    return folder


def tyk_gateway(
    folder: Path, tyk_env: dict[str, str]
) -> AbstractAsyncContextManager[GatewayProcess]:
    """`trio-gateway run --config tyk.conf` in the folder (app_path ./apps resolves there)."""
    return gateway_process("--config", "tyk.conf", env=tyk_env, cwd=folder, free_port=False)


def demo_env(redis_server: RedisServer, server: Server | None) -> dict[str, str]:
    env = {
        "TYK_GW_LISTENPORT": str(free_port()),
        "TYK_GW_SECRET": "from-the-environment",
        "TYK_GW_STORAGE_HOST": redis_server.host,
        "TYK_GW_STORAGE_PORT": str(redis_server.port),
    }
    if server is not None:
        env["TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS"] = "true"
        env["TYK_GW_COPROCESSOPTIONS_COPROCESSGRPCSERVER"] = f"tcp://{server.target}"
    return env


async def test_a_tyk_folder_with_tyk_gw_overrides_serves_unchanged(
    nursery: trio.Nursery, tmp_path: Path, server: Server, redis_db: RedisServer
) -> None:
    server.handler = tyk_style_plugin
    upstream = await start_upstream(nursery)
    folder = tyk_folder(tmp_path, upstream)
    env = demo_env(redis_db, server)
    async with tyk_gateway(folder, env) as gateway:
        assert gateway.address[1] == int(env["TYK_GW_LISTENPORT"])
        allowed = await fetch(
            gateway.address, "GET", "/orders/list?page=2", [("Authorization", "Bearer good-token")]
        )
        denied = await fetch(gateway.address, "GET", "/orders/list")
        status = await fetch(gateway.address, "GET", "/status/health")
        admin = await fetch(
            gateway.address, "GET", "/tyk/apis", [("X-Tyk-Authorization", "from-the-environment")]
        )
        stderr = gateway.stderr.decode()

    assert allowed.status == 200, (allowed.body, stderr)
    assert (b"X-Plugin-Response", b"ran") in allowed.headers
    assert denied.status == 403
    assert json.loads(denied.body) == {"error": "Denied by plugin"}
    assert denied.header("x-generator") == b"trio-gateway"
    assert status.status == 200
    assert admin.status == 200
    assert len(admin.json()) == 2  # both exports, as the admin API lists them
    first = upstream.requests[0]
    assert first.target == b"/list?page=2"
    assert (b"X-Plugin-Pre", b"ran") in first.headers
    assert "loaded 2 API definition(s), 0 refused" in stderr
    assert "sample secret" not in stderr  # TYK_GW_SECRET replaced it


async def test_without_the_coprocess_switch_the_refusal_names_the_key_and_the_fix(
    nursery: trio.Nursery, tmp_path: Path, server: Server, redis_db: RedisServer
) -> None:
    server.handler = tyk_style_plugin
    upstream = await start_upstream(nursery)
    folder = tyk_folder(tmp_path, upstream)
    env = demo_env(redis_db, None)  # the stock tyk.conf says enable_coprocess: false
    env["TYK_GW_COPROCESSOPTIONS_COPROCESSGRPCSERVER"] = f"tcp://{server.target}"
    async with tyk_gateway(folder, env) as gateway:
        orders = await fetch(
            gateway.address, "GET", "/orders/list", [("Authorization", "Bearer good-token")]
        )
        status = await fetch(gateway.address, "GET", "/status/health")
        stderr = gateway.stderr.decode()
    assert orders.status == 503
    assert status.status == 200  # the other API serves
    assert upstream.requests[0].target == b"/health"
    assert (
        "custom_middleware.driver: 'grpc' plugins run only with coprocess_options.enable_coprocess "
        "set to true (tyk.conf; or TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS=true" in stderr
    )
