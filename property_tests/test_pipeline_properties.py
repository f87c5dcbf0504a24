"""Hypothesis: the pipeline's invariants over random hook sets and behaviours (MockClock, fast).

Each generated API has random hooks per stage; each hook continues, edits, responds, raises, or
overstays its deadline (and starts a child task that would outlive it if cancellation leaked). A
simple model predicts the outcome; the properties compare the pipeline against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_gateway._apidef.model import (
    ApiDefinition,
    FailureMode,
    MiddlewareConfig,
    PluginRef,
    Stage,
)
from trio_gateway._exchange import Request, Response
from trio_gateway._pipeline import Exchange, HookDefaults, build_pipeline
from trio_gateway.hooks import CONTINUE, Decision, HookContext, HookRef, ReadOnlyError, Session

BEHAVIOURS = ("continue", "edit", "respond", "raise", "overstay")
TIMEOUT = 0.5
REQUEST_STAGES = (Stage.PRE, Stage.AUTH, Stage.POST_AUTH, Stage.POST)


@attrs.frozen
class HookSpec:
    name: str
    behaviour: str
    mode: FailureMode


@attrs.define
class Recorder:
    calls: list[tuple[Stage, str]] = attrs.field(factory=list)
    violations: list[str] = attrs.field(factory=list)
    finished_at: dict[str, float] = attrs.field(factory=dict)


def check_visibility(ctx: HookContext, rec: Recorder) -> None:
    stage = ctx.stage
    if (ctx.response is not None) != (stage is Stage.RESPONSE):
        rec.violations.append(f"{ctx.hook_name}: response visible in {stage}")
    if stage in (Stage.PRE, Stage.AUTH) and ctx.session is not None:
        rec.violations.append(f"{ctx.hook_name}: session visible in {stage}")
    if stage is Stage.RESPONSE:
        try:
            ctx.request.set_header("x-forbidden", "1")
            rec.violations.append(f"{ctx.hook_name}: request writable in RESPONSE")
        except ReadOnlyError:
            pass
    if ctx.session is not None:
        try:
            ctx.session.meta_data[ctx.hook_name] = 1
            if stage is Stage.RESPONSE:
                rec.violations.append(f"{ctx.hook_name}: meta_data writable in RESPONSE")
        except ReadOnlyError:
            if stage is not Stage.RESPONSE:
                rec.violations.append(f"{ctx.hook_name}: meta_data read-only in {stage}")


@attrs.define(eq=False)
class ModelDriver:
    specs: dict[str, HookSpec]
    rec: Recorder

    async def load(self, api: ApiDefinition, hooks: Sequence[HookRef]) -> None:
        return None

    async def call(self, hook: HookRef, ctx: HookContext) -> Decision:
        spec = self.specs[hook.name]
        self.rec.calls.append((hook.stage, hook.name))
        check_visibility(ctx, self.rec)
        if ctx.stage is Stage.AUTH and spec.behaviour in ("continue", "edit"):
            ctx.set_session("key", Session())
        if spec.behaviour == "edit":
            if ctx.stage is Stage.RESPONSE:
                assert ctx.response is not None
                ctx.response.set_header("x-last", hook.name)
            else:
                ctx.request.add_header("x-edit", hook.name)
        elif spec.behaviour == "respond":
            return ctx.respond(299, hook.name)
        elif spec.behaviour == "raise":
            raise RuntimeError("plugin bug")
        elif spec.behaviour == "overstay":
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                await trio.sleep(TIMEOUT * 3)
        return CONTINUE


def hook_lists(prefix: str, max_size: int = 3) -> st.SearchStrategy[list[HookSpec]]:
    spec = st.builds(
        HookSpec,
        name=st.just(""),
        behaviour=st.sampled_from(BEHAVIOURS),
        mode=st.sampled_from(FailureMode),
    )
    return st.lists(spec, max_size=max_size).map(
        lambda specs: [attrs.evolve(s, name=f"{prefix}{i}") for i, s in enumerate(specs)]
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[bool, dict[Stage, list[HookSpec]]]:
    keyless = draw(st.booleans())
    stages = {
        Stage.PRE: draw(hook_lists("pre")),
        Stage.AUTH: draw(hook_lists("auth", max_size=1)),
        Stage.POST_AUTH: draw(hook_lists("pa")),
        Stage.POST: draw(hook_lists("post")),
        Stage.RESPONSE: draw(hook_lists("resp")),
    }
    stages[Stage.AUTH] = [attrs.evolve(s, mode=FailureMode.CLOSED) for s in stages[Stage.AUTH]]
    return keyless, stages


def refs(specs: list[HookSpec]) -> tuple[PluginRef, ...]:
    return tuple(PluginRef(name=s.name, failure_mode=s.mode, timeout=TIMEOUT) for s in specs)


def expected_walk(
    keyless: bool, stages: dict[Stage, list[HookSpec]]
) -> tuple[list[str], int | None, list[str], Stage | None]:
    """The model: (calls, status of the request-phase answer or None, request edits, stage)."""
    calls: list[str] = []
    edits: list[str] = []
    for stage in REQUEST_STAGES:
        if keyless and stage in (Stage.AUTH, Stage.POST_AUTH):
            continue
        for spec in stages[stage]:
            calls.append(spec.name)
            b = spec.behaviour
            if b == "respond":
                return calls, 299, edits, stage
            failed = b in ("raise", "overstay")
            if failed and (spec.mode is FailureMode.CLOSED or stage is Stage.AUTH):
                status = 504 if b == "overstay" else (403 if stage is Stage.AUTH else 500)
                return calls, status, edits, stage
            if b == "edit":
                edits.append(spec.name)
    return calls, None, edits, None


def expected_response(specs: list[HookSpec]) -> tuple[list[str], int, str | None]:
    calls: list[str] = []
    last: str | None = None
    for spec in specs:
        calls.append(spec.name)
        b = spec.behaviour
        if b == "respond":
            return calls, 299, last
        if b in ("raise", "overstay") and spec.mode is FailureMode.CLOSED:
            return calls, 504 if b == "overstay" else 500, last
        if b == "edit":
            last = spec.name
    return calls, 200, last


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_pipeline_invariants(scenario: tuple[bool, dict[Stage, list[HookSpec]]]) -> None:
    keyless, stages = scenario
    specs = {s.name: s for specs in stages.values() for s in specs}
    rec = Recorder()
    api = ApiDefinition(
        api_id="prop",
        listen_path="/p/",
        target_url="http://127.0.0.1:8091/",
        use_keyless=keyless,
        custom_plugin_auth=bool(stages[Stage.AUTH]),
        middleware=MiddlewareConfig(
            driver="model",
            pre=refs(stages[Stage.PRE]),
            auth_check=refs(stages[Stage.AUTH])[0] if stages[Stage.AUTH] else None,
            post_key_auth=refs(stages[Stage.POST_AUTH]),
            post=refs(stages[Stage.POST]),
            response=refs(stages[Stage.RESPONSE]),
        ),
    )
    alive: set[Any] = set()

    class Tasks(trio.abc.Instrument):
        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            alive.add(task)

        def task_exited(self, task: trio.lowlevel.Task) -> None:
            alive.discard(task)

    async def main() -> None:
        pipeline = await build_pipeline(
            api, HookDefaults(), driver_factory=lambda n: ModelDriver(specs, rec)
        )
        request = Request(method="GET", path="/p/x", query="", headers=[])
        exchange = Exchange(api=api, deadline=trio.current_time() + 60)
        trio.lowlevel.add_instrument(Tasks())
        start = trio.current_time()
        answer = await pipeline.run_request(request, exchange)
        elapsed = trio.current_time() - start
        exp_calls, exp_status, exp_edits, _ = expected_walk(keyless, stages)
        # Stages in order, each hook at most once, nothing after a respond or a closed failure.
        assert [name for _, name in rec.calls] == exp_calls
        order = [list(Stage).index(stage) for stage, _ in rec.calls]
        assert order == sorted(order)
        assert len(set(exp_calls)) == len(exp_calls)
        # Every overstaying hook took exactly its timeout (within 20 ms), nothing more.
        overstays = sum(1 for n in exp_calls if specs[n].behaviour == "overstay")
        assert abs(elapsed - overstays * TIMEOUT) <= 0.02 * max(overstays, 1)
        assert not alive, "a task a hook started outlived its request"
        assert not rec.violations, rec.violations
        if exp_status is not None:
            assert answer is not None
            assert answer.status == exp_status
            return  # the upstream is never called; Response hooks never run
        assert answer is None
        # Fail-open skipped exactly the failing hooks: only editing hooks left their mark.
        assert [v.decode() for k, v in request.headers if k == b"x-edit"] == exp_edits
        rec.calls.clear()
        upstream = Response(status=200, headers=[], body_bytes=b"up")
        final = await pipeline.run_response(request, upstream, exchange)
        r_calls, r_status, r_last = expected_response(stages[Stage.RESPONSE])
        assert [name for _, name in rec.calls] == r_calls
        assert final.status == r_status
        if r_status == 200:
            # The client gets what the last writer produced.
            assert final.header(b"x-last") == (r_last.encode() if r_last else None)
        assert not alive
        assert not rec.violations, rec.violations

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
