from __future__ import annotations

import attrs
import pytest
from pipeline_support import make_api

from trio_gateway._apidef.model import FailureMode, MiddlewareConfig, PluginRef, Stage
from trio_gateway._pipeline import HookDefaults, build_chain
from trio_gateway.errors import PluginDriverError


def names(hooks: tuple[object, ...]) -> list[str]:
    return [h.name for h in hooks]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("keyless", "expected"),
    [
        # Tyk: no auth chain on keyless APIs, so no custom auth and no post-auth; Post still runs.
        (True, ["p1", "p2", "e1", "post1", "r1"]),
        (False, ["p1", "p2", "auth", "pa1", "e1", "post1", "r1"]),
    ],
)
def test_chain_order_and_keyless(keyless: bool, expected: list[str]) -> None:
    api = make_api(
        keyless=keyless,
        pre=["p1", "p2"],
        auth="auth",
        post_auth=["pa1"],
        post=["post1"],
        response=["r1"],
        endpoints=[("/things", "GET", "e1")],
    )
    chain = build_chain(api, HookDefaults())
    assert names(chain.hooks) == expected
    stages = [h.stage for h in chain.hooks]
    assert stages == sorted(stages, key=list(Stage).index)


def test_disabled_hooks_are_omitted_and_indexes_kept() -> None:
    api = make_api(pre=["a"])
    mw = MiddlewareConfig(
        driver="python",
        pre=(PluginRef(name="a", disabled=True), PluginRef(name="b")),
        post=(PluginRef(name="c", disabled=True),),
    )
    chain = build_chain(attrs.evolve(api, middleware=mw), HookDefaults())
    assert names(chain.pre) == ["b"]
    assert chain.pre[0].label == "pre[1] b"
    assert chain.post == ()
    assert not chain.has_response_hooks


def test_timeout_and_mode_resolution_hook_then_api_then_gateway() -> None:
    mw = MiddlewareConfig(
        driver="python",
        timeout=3.0,
        pre=(
            PluginRef(name="own", timeout=0.5, failure_mode=FailureMode.OPEN),
            PluginRef(name="d"),
        ),
    )
    api = make_api()
    api = attrs.evolve(api, middleware=mw)
    chain = build_chain(api, HookDefaults(timeout=9.0, failure_mode=FailureMode.CLOSED))
    own, default = chain.pre
    assert (own.timeout, own.failure_mode) == (0.5, FailureMode.OPEN)
    assert (default.timeout, default.failure_mode) == (3.0, FailureMode.CLOSED)
    bare = build_chain(make_api(pre=["x"]), HookDefaults(timeout=9.0))
    assert bare.pre[0].timeout == 9.0


def test_thread_limit_comes_from_the_api_else_the_gateway() -> None:
    own = attrs.evolve(
        make_api(pre=["x"]),
        middleware=MiddlewareConfig(driver="python", pre=(PluginRef(name="x"),), thread_limit=3),
    )
    assert build_chain(own, HookDefaults(thread_limit=40)).pre[0].thread_limit == 3
    bare = build_chain(make_api(pre=["x"]), HookDefaults(thread_limit=40))
    assert bare.pre[0].thread_limit == 40
    assert build_chain(make_api(pre=["x"]), HookDefaults()).pre[0].thread_limit == 16


def test_open_custom_auth_is_refused() -> None:
    mw = MiddlewareConfig(
        driver="python", auth_check=PluginRef(name="auth", failure_mode=FailureMode.OPEN)
    )
    api = make_api(keyless=False, auth="auth")
    api = attrs.evolve(api, middleware=mw)
    with pytest.raises(PluginDriverError, match=r"api-1.*auth\[0\] auth.*open"):
        build_chain(api, HookDefaults())


def test_open_default_never_applies_to_custom_auth() -> None:
    api = make_api(keyless=False, auth="auth", pre=["p"])
    chain = build_chain(api, HookDefaults(failure_mode=FailureMode.OPEN))
    assert chain.auth[0].failure_mode is FailureMode.CLOSED
    assert chain.pre[0].failure_mode is FailureMode.OPEN


@pytest.mark.parametrize(
    ("plugin", "match"),
    [
        (PluginRef(name="x", path="plugin.so"), "Go plugins"),
        (PluginRef(name="x", timeout=0), "timeout must be a positive"),
    ],
)
def test_bad_entries_are_load_errors(plugin: PluginRef, match: str) -> None:
    api = make_api()
    api = attrs.evolve(api, middleware=MiddlewareConfig(driver="python", post=(plugin,)))
    with pytest.raises(PluginDriverError, match=match):
        build_chain(api, HookDefaults())


@pytest.mark.parametrize(
    ("method", "path", "hit"),
    [
        ("GET", "/api/users/42", "by_id"),
        ("GET", "/api/users/42/", "by_id"),
        ("POST", "/api/users/42", None),
        ("GET", "/api/users/42/x", None),
        ("GET", "/users/42", None),  # the listen path is part of the path hooks match on
        ("DELETE", "/api/any", "any_method"),
    ],
)
def test_endpoint_matching(method: str, path: str, hit: str | None) -> None:
    api = make_api(endpoints=[("/users/{id}", "GET", "by_id"), ("/any", "", "any_method")])
    chain = build_chain(api, HookDefaults())
    hook = chain.match_endpoint(method, path)
    assert (hook.name if hook else None) == hit
