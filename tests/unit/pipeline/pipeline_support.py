"""Helpers for the pipeline unit tests: a scripted driver and small builders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from trio_gateway._apidef.model import ApiDefinition, EndpointPlugin, MiddlewareConfig, PluginRef
from trio_gateway._exchange import Request
from trio_gateway._pipeline import ApiPipeline, Exchange, HookDefaults, build_pipeline
from trio_gateway.hooks import CONTINUE, Decision, HookContext, HookRef

HookFn = Callable[[HookContext], Awaitable[Decision | None]]


@attrs.define(eq=False)
class ScriptedDriver:
    """Runs the async functions it was given, by hook name; records every call."""

    functions: dict[str, HookFn]
    calls: list[str] = attrs.field(factory=list)
    loaded: list[HookRef] = attrs.field(factory=list)
    closed: bool = False

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        self.loaded.extend(hooks)

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        self.calls.append(hook.name)
        result = await self.functions[hook.name](ctx)
        return CONTINUE if result is None else result

    async def aclose(self) -> None:
        self.closed = True


async def noop(ctx: HookContext) -> None:
    return None


def make_api(
    *,
    keyless: bool = True,
    pre: Sequence[str] = (),
    auth: str | None = None,
    post_auth: Sequence[str] = (),
    post: Sequence[str] = (),
    response: Sequence[str] = (),
    endpoints: Sequence[tuple[str, str, str]] = (),
    **middleware: Any,
) -> ApiDefinition:
    def refs(names: Sequence[str]) -> tuple[PluginRef, ...]:
        return tuple(PluginRef(name=n) for n in names)

    return ApiDefinition(
        api_id="api-1",
        org_id="org-1",
        listen_path="/api/",
        target_url="http://127.0.0.1:8091/",
        use_keyless=keyless,
        custom_plugin_auth=auth is not None,
        config_data={"greeting": "hi"},
        middleware=MiddlewareConfig(
            driver="scripted",
            pre=refs(pre),
            auth_check=PluginRef(name=auth) if auth else None,
            post_key_auth=refs(post_auth),
            post=refs(post),
            response=refs(response),
            endpoints=tuple(
                EndpointPlugin(path=p, method=m, plugin=PluginRef(name=n)) for p, m, n in endpoints
            ),
            **middleware,
        ),
    )


async def make_pipeline(
    api: ApiDefinition, functions: dict[str, HookFn], defaults: HookDefaults | None = None
) -> tuple[ApiPipeline, ScriptedDriver]:
    driver = ScriptedDriver(functions)
    pipeline = await build_pipeline(
        api, defaults or HookDefaults(), driver_factory=lambda name: driver
    )
    return pipeline, driver


def make_request(path: str = "/api/things", method: str = "GET", query: str = "a=1") -> Request:
    return Request(
        method=method, path=path, query=query, headers=[(b"host", b"example"), (b"x-in", b"1")]
    )


def exchange_for(api: ApiDefinition, deadline: float = float("inf")) -> Exchange:
    return Exchange(api=api, deadline=deadline)
