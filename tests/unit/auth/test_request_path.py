"""The glue on the pipeline, without sockets: slot order, skipping custom auth, store failures."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from trio_gateway._apidef.model import (
    ApiDefinition,
    IdExtractor,
    MiddlewareConfig,
    PluginRef,
    RateLimit,
)
from trio_gateway._auth import AuthServices, build_api_auth
from trio_gateway._auth.id_extractor import session_id
from trio_gateway._auth.meta_data import MetaDataWriter
from trio_gateway._exchange import Request, Response
from trio_gateway._pipeline import Exchange, HookDefaults, build_pipeline
from trio_gateway._ratelimit import LimitResult, Limits
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session
from trio_gateway._session.store import SessionStoreError
from trio_gateway.errors import PluginDriverError
from trio_gateway.hooks import CONTINUE, Decision, HookContext, HookRef

T0 = 1_700_000_000.0


@attrs.define(eq=False)
class Driver:
    calls: list[str] = attrs.field(factory=list)

    async def load(self, api: ApiDefinition, hooks: Any) -> None:
        return None

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        self.calls.append(hook.name)
        if hook.name == "auth":
            ctx.set_session("tok", Session(quota_max=5, meta_data={"token": "tok"}))
        elif hook.name == "post":
            assert ctx.session is not None
            ctx.session.meta_data["seen"] = True
        return CONTINUE

    async def aclose(self) -> None:
        return None


@attrs.define(eq=False)
class DownStore(MemorySessionStore):
    """A store whose every call fails as an unreachable Redis does."""

    async def get_session(self, key: str, *, shared: bool = False) -> Session | None:
        raise SessionStoreError("down")

    async def consume(self, key: str, limits: Limits, *, now: float) -> LimitResult:
        raise SessionStoreError("down")

    async def update_meta_data(self, key: str, meta_data: dict[str, Any]) -> bool:
        raise SessionStoreError("down")


def api(**fields: Any) -> ApiDefinition:
    base: dict[str, Any] = {
        "api_id": "a1",
        "org_id": "org",
        "listen_path": "/a/",
        "target_url": "http://127.0.0.1:1/",
        "use_keyless": False,
    }
    base.update(fields)
    return ApiDefinition(**base)


def request(**headers: str) -> Request:
    return Request(
        method="GET",
        path="/a/x",
        query="",
        headers=[(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    )


async def walk(
    definition: ApiDefinition, services: AuthServices, req: Request
) -> tuple[Response | None, Exchange, Driver]:
    driver = Driver()
    auth = build_api_auth(definition, services, "/a")
    pipeline = await build_pipeline(
        definition,
        HookDefaults(),
        builtins=auth.builtins,
        authenticate=auth.authenticate,
        finish=auth.finish,
        driver_factory=lambda name: driver,
    )
    exchange = Exchange(api=definition)
    return await pipeline.run_request(req, exchange), exchange, driver


def custom(**middleware: Any) -> ApiDefinition:
    return api(
        custom_plugin_auth=True,
        middleware=MiddlewareConfig(
            driver="python",
            auth_check=PluginRef(name="auth"),
            post=(PluginRef(name="post"),),
            **middleware,
        ),
    )


async def test_keyless_without_global_limit_has_no_built_ins() -> None:
    services = AuthServices(store=MemorySessionStore())
    assert build_api_auth(api(use_keyless=True), services, "/a").is_empty()


async def test_token_auth_runs_before_post_hooks_and_meta_data_is_saved() -> None:
    store = MemorySessionStore()
    await store.put_session("k", Session())
    services = AuthServices(store=store, clock=lambda: T0)
    definition = api(middleware=MiddlewareConfig(driver="python", post=(PluginRef(name="post"),)))
    answer, exchange, driver = await walk(definition, services, request(authorization="k"))
    assert answer is None
    assert exchange.session_key == "k"
    assert driver.calls == ["post"]
    saved = await store.get_session("k")
    assert saved is not None
    assert saved.meta_data == {"seen": True}


async def test_custom_session_is_stored_under_the_extractor_id_and_then_skips_the_hook() -> None:
    store = MemorySessionStore()
    clock = [T0]
    services = AuthServices(store=store, clock=lambda: clock[0])
    definition = custom(
        id_extractor=IdExtractor(extract_from="header", extract_with="value", header_name="X-Id")
    )
    answer, exchange, driver = await walk(definition, services, request(x_id="v"))
    assert answer is None
    assert driver.calls == ["auth", "post"]
    sid = session_id("org", "v")
    assert exchange.session_key == sid
    stored = await store.get_session(sid)
    assert stored is not None
    assert stored.org_id == "org"
    assert stored.meta_data == {"token": "tok", "seen": True}
    assert stored.quota_remaining == 4
    # No deadline was set by the plugin: it keeps being called.
    _, _, driver = await walk(definition, services, request(x_id="v"))
    assert driver.calls == ["auth", "post"]
    stored.id_extractor_deadline = int(T0) + 5
    await store.put_session(sid, stored, reset_quota=False)
    _, exchange, driver = await walk(definition, services, request(x_id="v"))
    assert driver.calls == ["post"]
    assert exchange.session is not None
    assert (b"x-ratelimit-remaining", b"2") in [
        (name.lower(), value) for name, value in exchange.response_headers
    ]


async def test_custom_session_without_extractor_is_stored_under_its_token() -> None:
    store = MemorySessionStore()
    answer, _, _ = await walk(custom(), AuthServices(store=store), request())
    assert answer is None
    assert await store.get_session("tok") is not None


async def test_bad_extractor_regex_breaks_only_that_api() -> None:
    definition = custom(
        id_extractor=IdExtractor(extract_from="header", extract_with="regex", regex_expression="(")
    )
    with pytest.raises(PluginDriverError, match="id_extractor"):
        build_api_auth(definition, AuthServices(store=MemorySessionStore()), "/a")


@pytest.mark.parametrize(
    "definition", [api(), custom(), api(use_keyless=True, global_rate_limit=RateLimit())]
)
async def test_store_down_answers_503(definition: ApiDefinition) -> None:
    if definition.use_keyless:
        definition = attrs.evolve(definition, global_rate_limit=RateLimit(rate=1, per=1))
    answer, _, _ = await walk(
        definition, AuthServices(store=DownStore()), request(authorization="k")
    )
    assert answer is not None
    assert answer.status == 503


async def test_lost_meta_data_write_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    writer = MetaDataWriter(api_id="a1", services=AuthServices(store=DownStore()))
    exchange = Exchange(api=api(), session=Session(), session_key="k", meta_data_changed=True)
    await writer(exchange)
    assert "meta_data change not saved" in caplog.text
