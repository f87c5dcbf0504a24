"""The walk: order, responds, failures × policies, deadlines, cancellation, no task left behind."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing
from pipeline_support import exchange_for, make_api, make_pipeline, make_request, noop

from trio_gateway._apidef.model import FailureMode, MiddlewareConfig, PluginRef
from trio_gateway._exchange import Response
from trio_gateway._pipeline import HookDefaults, build_pipeline
from trio_gateway.errors import HookTimeout, PluginDriverError
from trio_gateway.hooks import HookContext, Respond, Session

ALL_STAGES = dict(
    pre=["pre1", "pre2"],
    auth="auth",
    post_auth=["pa"],
    endpoints=[("/things", "GET", "ep")],
    post=["post"],
    response=["resp"],
)


async def auth_ok(ctx: HookContext) -> None:
    ctx.set_session("key-1", Session(meta_data={"user": "ann"}))


def recorder(seen: list[str]) -> Any:
    async def hook(ctx: HookContext) -> None:
        seen.append(ctx.hook_name)

    return hook


async def test_walk_runs_every_stage_in_order() -> None:
    api = make_api(keyless=False, **ALL_STAGES)  # type: ignore[arg-type]
    pipeline, driver = await make_pipeline(
        api, dict.fromkeys(["pre1", "pre2", "pa", "ep", "post", "resp"], noop) | {"auth": auth_ok}
    )
    assert pipeline.has_request_hooks
    assert pipeline.has_response_hooks
    exchange = exchange_for(api)
    request = make_request()
    assert await pipeline.run_request(request, exchange) is None
    upstream = Response(status=200, headers=[], body_bytes=b"x")
    assert await pipeline.run_response(request, upstream, exchange) is upstream
    assert driver.calls == ["pre1", "pre2", "auth", "pa", "ep", "post", "resp"]
    assert exchange.session is not None
    assert exchange.session_key == "key-1"
    assert pipeline.statistics().calls == 7


async def test_keyless_skips_post_auth_but_runs_post() -> None:
    api = make_api(keyless=True, **ALL_STAGES)  # type: ignore[arg-type]
    pipeline, driver = await make_pipeline(api, dict.fromkeys(driver_names(), noop))
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert driver.calls == ["pre1", "pre2", "ep", "post"]


def driver_names() -> list[str]:
    return ["pre1", "pre2", "auth", "pa", "ep", "post", "resp"]


async def test_endpoint_hook_only_on_matching_path_and_method() -> None:
    api = make_api(endpoints=[("/things", "GET", "ep")])
    pipeline, driver = await make_pipeline(api, {"ep": noop})
    await pipeline.run_request(make_request(method="POST"), exchange_for(api))
    await pipeline.run_request(make_request(path="/api/other"), exchange_for(api))
    assert driver.calls == []
    await pipeline.run_request(make_request(), exchange_for(api))
    assert driver.calls == ["ep"]


@pytest.mark.parametrize("responder", ["pre1", "auth", "pa", "ep", "post"])
async def test_respond_stops_the_walk(responder: str) -> None:
    api = make_api(keyless=False, **ALL_STAGES)  # type: ignore[arg-type]

    async def respond(ctx: HookContext) -> Respond:
        return ctx.respond(418, b"teapot", {"x-by": ctx.hook_name})

    functions = dict.fromkeys(driver_names(), noop) | {"auth": auth_ok, responder: respond}
    pipeline, driver = await make_pipeline(api, functions)
    answer = await pipeline.run_request(make_request(), exchange_for(api))
    assert answer is not None
    assert (answer.status, answer.body_bytes) == (418, b"teapot")
    assert answer.headers == [(b"x-by", responder.encode())]
    order = driver_names()
    assert driver.calls == order[: order.index(responder) + 1]
    assert pipeline.statistics().responded == 1


async def test_custom_auth_without_session_is_forbidden() -> None:
    api = make_api(keyless=False, auth="auth", post_auth=["pa"])
    pipeline, driver = await make_pipeline(api, {"auth": noop, "pa": noop})
    answer = await pipeline.run_request(make_request(), exchange_for(api))
    assert answer is not None
    assert answer.status == 403
    assert b"Forbidden" in (answer.body_bytes or b"")
    assert driver.calls == ["auth"]


async def test_meta_data_changes_are_flagged_for_the_store() -> None:
    api = make_api(keyless=False, auth="auth", post=["post"])

    async def tag(ctx: HookContext) -> None:
        assert ctx.session is not None
        ctx.session.meta_data["seen"] = True

    pipeline, _ = await make_pipeline(api, {"auth": auth_ok, "post": tag})
    exchange = exchange_for(api)
    await pipeline.run_request(make_request(), exchange)
    assert exchange.session is not None
    assert exchange.session.meta_data == {"user": "ann", "seen": True}
    assert exchange.meta_data_changed
    assert exchange.session_created


async def test_response_hooks_edit_or_replace_the_response() -> None:
    api = make_api(response=["edit", "replace", "never"])

    async def edit(ctx: HookContext) -> None:
        assert ctx.response is not None
        ctx.response.set_header("x-edited", "1")

    async def replace(ctx: HookContext) -> Respond:
        assert ctx.response is not None
        return ctx.respond(202, ctx.response.get_header("x-edited") or "")

    pipeline, driver = await make_pipeline(api, {"edit": edit, "replace": replace, "never": noop})
    upstream = Response(status=200, headers=[], body_bytes=b"x")
    answer = await pipeline.run_response(make_request(), upstream, exchange_for(api))
    assert (answer.status, answer.body_bytes) == (202, b"1")
    assert driver.calls == ["edit", "replace"]


# -- failures × policies -------------------------------------------------------------------


async def raises(ctx: HookContext) -> None:
    raise RuntimeError("secret internal detail")


async def unavailable(ctx: HookContext) -> None:
    raise PluginDriverError("server down: secret internal detail")


async def remote_timeout(ctx: HookContext) -> None:
    raise HookTimeout("deadline exceeded: secret internal detail")


async def overstays(ctx: HookContext) -> None:
    await trio.sleep_forever()


FAILING = {
    "error": (raises, 500, "Middleware error"),
    "unavailable": (unavailable, 500, "Middleware error"),
    # docs/tyk-differences.md: a hook timeout reads as Tyk's gateway timeout, at every stage.
    "timeout": (overstays, 504, '"error": "Upstream service reached hard timeout."'),
    "remote-timeout": (remote_timeout, 504, '"error": "Upstream service reached hard timeout."'),
}


@pytest.mark.parametrize("kind", list(FAILING))
@pytest.mark.parametrize("stage", ["pre", "post_auth", "post", "response"])
async def test_fail_closed(
    kind: str, stage: str, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fn, status, message = FAILING[kind]
    api = make_api(keyless=False, auth="auth", **{stage: ["bad", "after"]})  # type: ignore[arg-type]
    pipeline, driver = await make_pipeline(api, {"auth": auth_ok, "bad": fn, "after": noop})
    exchange, request = exchange_for(api), make_request()
    start = trio.current_time()
    if stage == "response":
        answer: Response | None = await pipeline.run_response(
            request, Response(status=200, headers=[]), exchange
        )
    else:
        answer = await pipeline.run_request(request, exchange)
    assert answer is not None
    assert answer.status == status
    assert message.encode() in (answer.body_bytes or b"")
    assert b"secret" not in (answer.body_bytes or b"")
    assert "after" not in driver.calls
    assert trio.current_time() - start <= 1.0  # the default timeout
    records = [r for r in caplog.records if r.name == "trio_gateway.pipeline"]
    assert len(records) == 1
    assert "api=api-1" in records[0].getMessage()
    assert f"stage={'post_auth' if stage == 'post_auth' else stage}" in records[0].getMessage()
    assert "bad" in records[0].getMessage()
    stats = pipeline.statistics()
    key = {"remote-timeout": "timeouts", "timeout": "timeouts"}.get(kind, kind + "s")
    key = "unavailable" if kind == "unavailable" else key
    assert getattr(stats, key) == 1
    assert stats.failed_open == 0


@pytest.mark.parametrize("kind", list(FAILING))
async def test_custom_auth_fails_closed_with_key_not_authorised(
    kind: str, autojump_clock: trio.testing.MockClock
) -> None:
    fn, status, _ = FAILING[kind]
    api = make_api(keyless=False, auth="auth")
    pipeline, _ = await make_pipeline(api, {"auth": fn})
    answer = await pipeline.run_request(make_request(), exchange_for(api))
    assert answer is not None
    if status == 504:
        assert answer.status == 504
    else:
        assert answer.status == 403
        assert b"Key not authorised" in (answer.body_bytes or b"")


@pytest.mark.parametrize("kind", list(FAILING))
@pytest.mark.parametrize("stage", ["pre", "post", "response"])
async def test_fail_open_skips_exactly_the_failing_hook(
    kind: str, stage: str, autojump_clock: trio.testing.MockClock
) -> None:
    fn = FAILING[kind][0]
    api = make_api(**{stage: ["before", "bad", "after"]}, failure_mode=FailureMode.OPEN)  # type: ignore[arg-type]
    seen: list[str] = []
    functions = {"before": recorder(seen), "bad": fn, "after": recorder(seen)}
    pipeline, driver = await make_pipeline(api, functions)
    if stage == "response":
        upstream = Response(status=200, headers=[])
        assert await pipeline.run_response(make_request(), upstream, exchange_for(api)) is upstream
    else:
        assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert driver.calls == ["before", "bad", "after"]
    assert seen == ["before", "after"]
    stats = pipeline.statistics()
    assert stats.failed_open == 1
    assert stats.failures_by_hook == {f"{stage}[1] bad": 1}


# -- deadlines -----------------------------------------------------------------------------


async def test_hook_deadline_is_its_timeout(autojump_clock: trio.testing.MockClock) -> None:
    mw = MiddlewareConfig(driver="x", pre=(PluginRef(name="slow", timeout=0.25),))
    api = make_api()
    api = _with_middleware(api, mw)
    pipeline, _ = await make_pipeline(api, {"slow": overstays})
    start = trio.current_time()
    answer = await pipeline.run_request(make_request(), exchange_for(api))
    assert answer is not None
    assert answer.status == 504
    assert trio.current_time() - start == pytest.approx(0.25)


async def test_request_deadline_bounds_every_hook(autojump_clock: trio.testing.MockClock) -> None:
    api = make_api(pre=["slow"])
    pipeline, _ = await make_pipeline(api, {"slow": overstays}, HookDefaults(timeout=30))
    start = trio.current_time()
    answer = await pipeline.run_request(make_request(), exchange_for(api, deadline=start + 0.1))
    assert answer is not None
    assert answer.status == 504
    assert trio.current_time() - start == pytest.approx(0.1)


async def test_deadline_moves_per_hook(autojump_clock: trio.testing.MockClock) -> None:
    # Three hooks each using 0.75 s of a 1 s timeout: fine, though the total exceeds 1 s.
    async def busy(ctx: HookContext) -> None:
        await trio.sleep(0.75)

    api = make_api(pre=["a", "b", "c"])
    pipeline, driver = await make_pipeline(api, dict.fromkeys("abc", busy))
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert driver.calls == ["a", "b", "c"]


async def test_hook_that_never_checkpoints_past_its_deadline_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hogs(ctx: HookContext) -> None:
        autojump_clock.jump(5)  # as if it computed for 5 s without yielding

    api = make_api(pre=["hog", "after"])
    pipeline, driver = await make_pipeline(api, {"hog": hogs, "after": noop})
    answer = await pipeline.run_request(make_request(), exchange_for(api))
    assert answer is not None
    assert answer.status == 504
    assert driver.calls == ["hog"]


async def test_hook_that_swallows_its_cancel_still_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def swallows(ctx: HookContext) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            pass  # a buggy plugin

    api = make_api(pre=["bad", "after"], failure_mode=FailureMode.OPEN)
    pipeline, driver = await make_pipeline(api, {"bad": swallows, "after": noop})
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert driver.calls == ["bad", "after"]  # "after" ran in a fresh, uncancelled scope
    assert pipeline.statistics().timeouts == 1


# -- cancellation and tasks ----------------------------------------------------------------


class TaskCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.alive: set[trio.lowlevel.Task] = set()
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.alive.add(task)
        self.spawned += 1

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.discard(task)


async def spawner(ctx: HookContext) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(trio.sleep_forever)
        await trio.sleep_forever()


@pytest.mark.parametrize("mode", [FailureMode.CLOSED, FailureMode.OPEN])
async def test_timeout_leaves_no_task_behind(
    mode: FailureMode, autojump_clock: trio.testing.MockClock
) -> None:
    api = make_api(pre=["spawner"], failure_mode=mode)
    pipeline, _ = await make_pipeline(api, {"spawner": spawner})
    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        await pipeline.run_request(make_request(), exchange_for(api))
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert counter.spawned == 3
    assert counter.alive == set()


async def test_client_disconnect_cancels_hook_and_its_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = make_api(pre=["spawner"])
    pipeline, _ = await make_pipeline(api, {"spawner": spawner}, HookDefaults(timeout=60))
    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        with trio.move_on_after(1) as request_scope:  # the server's per-request scope
            await pipeline.run_request(make_request(), exchange_for(api))
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert request_scope.cancelled_caught  # the cancel propagated, it was not turned into a 504
    assert counter.spawned == 3
    assert counter.alive == set()
    stats = pipeline.statistics()
    assert (stats.timeouts, stats.errors) == (0, 0)  # a disconnect is not a plugin failure


# -- building ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "match"),
    [
        ("goplugin", "driver 'goplugin' is not available"),
        ("lua", "driver 'lua' is not available"),
        ("nope", "no plugin driver named 'nope'"),
        ("", "names no driver"),
    ],
)
async def test_unknown_drivers_fail_to_load_naming_the_api(driver: str, match: str) -> None:
    api = _with_middleware(make_api(), MiddlewareConfig(driver=driver, pre=(PluginRef(name="a"),)))
    with pytest.raises(PluginDriverError, match=f"API 'api-1': .*{match}"):
        await build_pipeline(api, HookDefaults())


async def test_no_hooks_needs_no_driver() -> None:
    api = _with_middleware(make_api(), MiddlewareConfig(driver="lua"))
    pipeline = await build_pipeline(api, HookDefaults())
    assert not pipeline.has_request_hooks
    assert not pipeline.has_response_hooks
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    await pipeline.aclose()


async def test_load_failure_closes_the_driver() -> None:
    from pipeline_support import ScriptedDriver

    class Broken(ScriptedDriver):
        async def load(self, api: Any, hooks: Any) -> None:
            raise ValueError("bad file")

    broken = Broken({})
    api = make_api(pre=["a"])
    with pytest.raises(PluginDriverError, match="API 'api-1': driver failed to load: bad file"):
        await build_pipeline(api, HookDefaults(), driver_factory=lambda name: broken)
    assert broken.closed


async def test_builtins_slot_runs_between_post_auth_and_endpoint() -> None:
    api = make_api(keyless=False, auth="auth", post_auth=["pa"], post=["post"])
    order: list[str] = []

    async def builtin(request: Any, exchange: Any) -> Response | None:
        order.append("builtin")
        return Response(status=429, headers=[]) if exchange.session_key == "blocked" else None

    functions = {"auth": auth_ok, "pa": recorder(order), "post": recorder(order)}
    from pipeline_support import ScriptedDriver

    driver = ScriptedDriver(functions)
    pipeline = await build_pipeline(
        api, HookDefaults(), builtins=[builtin], driver_factory=lambda n: driver
    )
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert order == ["pa", "builtin", "post"]


def _with_middleware(api: Any, mw: MiddlewareConfig) -> Any:
    import attrs

    return attrs.evolve(api, middleware=mw)


async def test_failure_is_one_warning_line_with_type_and_message_traceback_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = make_api(post=["bad"])
    pipeline, _ = await make_pipeline(api, {"bad": raises})
    caplog.set_level(logging.WARNING)
    await pipeline.run_request(make_request(), exchange_for(api))
    (record,) = [r for r in caplog.records if r.name == "trio_gateway.pipeline"]
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert record.getMessage().endswith("RuntimeError: secret internal detail")

    caplog.clear()
    caplog.set_level(logging.DEBUG)
    other = make_api(post=["bad"])
    other = _with_middleware(attrs.evolve(other, api_id="api-2"), other.middleware)
    pipeline, _ = await make_pipeline(other, {"bad": raises})
    await pipeline.run_request(make_request(), exchange_for(other))
    debug, warning = [r for r in caplog.records if r.name == "trio_gateway.pipeline"]
    assert debug.levelno == logging.DEBUG
    assert debug.exc_info is not None  # the traceback, at debug only
    assert warning.levelno == logging.WARNING
    assert warning.exc_info is None


async def test_repeated_failures_are_summarised_per_api_and_cause(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.WARNING)
    api = make_api(post=["bad"])
    pipeline, _ = await make_pipeline(api, {"bad": raises})
    for _ in range(1000):  # an outage: every request fails the same way for 5 s
        answer = await pipeline.run_request(make_request(), exchange_for(api))
        assert answer is not None
        assert answer.status == 500
        await trio.sleep(0.005)
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_gateway.pipeline"]
    assert len(lines) == 1
    assert lines[0].endswith("RuntimeError: secret internal detail")
    await trio.sleep(10)  # after the interval the next failure reports the count
    await pipeline.run_request(make_request(), exchange_for(api))
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_gateway.pipeline"]
    assert len(lines) == 2
    assert lines[1].endswith("RuntimeError: secret internal detail (1000 times in the last 15 s)")
    assert pipeline.statistics().errors == 1001  # counted, every one


async def test_builtins_alone_need_no_driver_and_are_bounded_by_the_request_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow_store(request: Any, exchange: Any) -> Response | None:
        await trio.sleep(10)
        return None

    api = make_api()
    pipeline = await build_pipeline(api, HookDefaults(), builtins=[slow_store])
    assert pipeline.driver is None
    assert pipeline.has_request_hooks
    start = trio.current_time()
    answer = await pipeline.run_request(make_request(), exchange_for(api, deadline=start + 2))
    assert answer is not None
    assert answer.status == 504
    assert trio.current_time() - start == pytest.approx(2)


# -- deadlines moved only for hooks that wait ------------------------------------------------


async def test_hook_that_waits_after_an_instant_one_gets_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The walk moves its scope's deadline only for a hook that waits; the next hook that waits
    must not inherit an earlier hook's (already close) deadline."""

    async def nearly_overstays(ctx: HookContext) -> None:
        await trio.sleep(0.9)

    async def waits(ctx: HookContext) -> None:
        await trio.sleep(0.75)  # ends 1.65 s in: past the first hook's deadline (1.0 s)

    api = make_api(pre=["a", "b", "c"])
    hooks = {"a": nearly_overstays, "b": noop, "c": waits}
    pipeline, driver = await make_pipeline(api, hooks, HookDefaults(timeout=1.0))
    assert await pipeline.run_request(make_request(), exchange_for(api)) is None
    assert driver.calls == ["a", "b", "c"]
    assert pipeline.statistics().timeouts == 0


class FakeUpstream:
    """The walk's upstream step, answering with ``respond()``."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond

    async def call(self, request: Any, runtime: Any, host_header: Any, exchange: Any) -> Response:
        response: Response = await self.respond()
        return response

    @staticmethod
    def failed(runtime: Any, exc: Exception) -> Response:
        raise AssertionError("the fake upstream never fails")


async def test_upstream_step_runs_under_the_request_deadline_not_a_hooks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def waits(ctx: HookContext) -> None:
        await trio.sleep(0.1)

    api = make_api(pre=["w"])
    pipeline, _ = await make_pipeline(api, {"w": waits}, HookDefaults(timeout=0.5))
    start = trio.current_time()

    async def upstream() -> Response:
        await trio.sleep(2)  # longer than the hook's timeout, within the request's
        return Response(status=200, headers=[])

    exchange = exchange_for(api, deadline=start + 5)
    runtime: Any = SimpleNamespace(api=api, timeout=5.0)
    upstream_step = cast(Any, FakeUpstream(upstream))
    answer = await pipeline.run(make_request(), exchange, upstream_step, runtime)
    assert answer.status == 200


@pytest.mark.parametrize("pre", [[], ["instant"], ["waits"]])
async def test_upstream_step_past_the_request_deadline_answers_504(
    pre: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    async def waits(ctx: HookContext) -> None:
        await trio.sleep(0.1)

    api = make_api(pre=pre)
    pipeline, _ = await make_pipeline(api, {"instant": noop, "waits": waits})
    start = trio.current_time()

    async def upstream() -> Response:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    runtime: Any = SimpleNamespace(api=api, timeout=3.0)
    answer = await pipeline.run(
        make_request(), exchange_for(api, deadline=start + 3), cast(Any, FakeUpstream(upstream)),
        runtime,
    )
    assert answer.status == 504
    assert trio.current_time() - start == pytest.approx(3)
    assert pipeline.statistics().timeouts == 0  # the request's deadline, not a hook's


async def test_request_deadline_in_a_builtin_is_the_requests_504(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Built-ins have no deadline of their own: when the request's passes in one (a slow store),
    # the client gets the request's 504 and the log says the request timed out, as for an API
    # without built-ins; it is not a hook failure.
    async def slow_store(request: Any, exchange: Any) -> Response | None:
        await trio.sleep(10)
        return None

    api = make_api()
    pipeline = await build_pipeline(api, HookDefaults(), builtins=[slow_store])
    start = trio.current_time()

    async def upstream() -> Response:
        raise AssertionError("the walk never gets this far")

    runtime: Any = SimpleNamespace(api=api, timeout=3.0)
    exchange = exchange_for(api, deadline=start + 3)
    with caplog.at_level(logging.WARNING):
        answer = await pipeline.run(
            make_request(), exchange, cast(Any, FakeUpstream(upstream)), runtime
        )
    assert answer.status == 504
    assert trio.current_time() - start == pytest.approx(3)
    assert pipeline.statistics().timeouts == 0
    assert f"request to API {api.api_id} timed out after 3.0s" in caplog.text
    assert "hook failed" not in caplog.text
