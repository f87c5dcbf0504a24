"""What a driver is built with: the gateway's settings, its store and the shared resources, passed
to the driver's factory (no globals, no context variables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import plugin_drivers
from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
from trio_gateway._auth import AuthServices
from trio_gateway._config.model import (
    BundlesConfig,
    CoprocessConfig,
    GatewayConfig,
    HooksConfig,
    JavascriptConfig,
    UpstreamConfig,
)
from trio_gateway._gateway import build_snapshot
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway.drivers import CONTINUE, Decision, DriverSettings, HookContext, HookRef

#: The settings the last driver was built with.
BUILT: list[DriverSettings] = []


class RecordingDriver:
    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        return None

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        return CONTINUE

    async def aclose(self) -> None:
        return None


def create(settings: DriverSettings) -> RecordingDriver:
    BUILT.append(settings)
    return RecordingDriver()


async def test_gateway_config_and_store_reach_the_driver_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(plugin_drivers.DRIVERS, "recording", f"{__name__}:create")
    config = GatewayConfig(
        hooks=HooksConfig(
            timeout=2.5, failure_mode="open", thread_limit=3, max_body_bytes=1234,
            blocking_threshold=0.7,
        ),
        coprocess=CoprocessConfig(grpc_recv_max_size=999, grpc_keepalive_interval=3.0),
        javascript=JavascriptConfig(
            enable=True, timeout=7.0, tyk_js_path="/g.js", memory_limit=1 << 20,
            underscore_path="/u.js",
        ),
        bundles=BundlesConfig(middleware_path="/mw"),
        upstream=UpstreamConfig(ssl_insecure_skip_verify=True, ca_file="/ca.pem"),
    )
    store = MemorySessionStore()
    api = ApiDefinition(
        api_id="a",
        listen_path="/a/",
        target_url="http://127.0.0.1:1/",
        middleware=MiddlewareConfig(driver="recording", pre=(PluginRef(name="x"),)),
    )
    shared: dict[str, Any] = {"recording": object()}
    BUILT.clear()
    auth = AuthServices(store=store)
    snapshot = await build_snapshot([api], config, auth=auth, driver_shared=shared)
    await snapshot.aclose()
    (settings,) = BUILT
    assert (settings.timeout, settings.failure_mode, settings.thread_limit) == (2.5, "open", 3)
    assert (settings.max_body_bytes, settings.blocking_threshold) == (1234, 0.7)
    assert settings.grpc.recv_max_size == 999
    assert settings.grpc.keepalive_interval == 3.0
    js = settings.javascript
    assert (js.enable, js.timeout, js.tyk_js_path, js.memory_limit) == (True, 7.0, "/g.js", 1 << 20)
    assert (js.underscore_path, js.middleware_path) == ("/u.js", "/mw")
    assert (js.ssl_insecure_skip_verify, js.ca_file) == (True, "/ca.pem")
    assert settings.store is store
    assert settings.shared["recording"] is shared["recording"]
    # The store is what Tyk-style drivers use for tyk.store_data / get_data.
    assert settings.store is not None
    await settings.store.store_data("k", b"v", 0)
    assert await settings.store.get_data("k") == b"v"
