"""How a check runs: one gateway for all examples, Hypothesis in a thread beside the Trio loop.

Loading plugins costs far more than a request, so a check loads the API once: ``trio.run`` opens
the harness, then runs Hypothesis in a worker thread; each example goes back into the loop with
``trio.from_thread.run``. The loop's clock is a :class:`trio.testing.MockClock` running at real
speed; once the plugins are loaded and when every hook runs inline (async hooks), it also jumps
ahead whenever everything waits, so a hook that sleeps past its deadline costs no wall time. Hooks
that run in worker threads keep the real clock (a jump would fire their deadline while they
work).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .._apidef.model import ApiDefinition
from .._config.model import GatewayConfig
from .._session.model import Session
from ._model import ClientRequest, HookCall, format_trace
from .harness import Harness, open_harness

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class PluginTarget:
    """The plugin(s) under test: an API definition and where to find its plugins.

    ``credentials`` are values that custom auth accepts (put where the API's auth settings say),
    so that the checks also reach the hooks after auth.
    """

    source: Mapping[str, Any] | str
    api_id: str | None = None
    base_dir: str | None = None
    credentials: tuple[str, ...] = ()
    #: The gRPC plugin server for APIs on the ``grpc`` driver (``tcp://host:port``).
    grpc_server: str | None = None
    #: A command that starts that server (the harness starts it, waits for it, stops it).
    grpc_command: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": dict(self.source) if isinstance(self.source, Mapping) else self.source,
            "api_id": self.api_id,
            "base_dir": self.base_dir,
            "credentials": list(self.credentials),
            "grpc_server": self.grpc_server,
            "grpc_command": list(self.grpc_command) if self.grpc_command else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluginTarget:
        return cls(
            source=data["source"],
            api_id=data["api_id"],
            base_dir=data["base_dir"],
            credentials=tuple(data["credentials"]),
            grpc_server=data.get("grpc_server"),
            grpc_command=tuple(data["grpc_command"]) if data.get("grpc_command") else None,
        )


def make_target(
    source: Mapping[str, Any] | str | os.PathLike[str],
    *,
    api_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    credentials: Sequence[str] = (),
    grpc_server: str | None = None,
    grpc_command: Sequence[str] | None = None,
) -> PluginTarget:
    return PluginTarget(
        source=source if isinstance(source, Mapping) else os.fspath(source),
        api_id=api_id,
        base_dir=os.fspath(base_dir) if base_dir is not None else None,
        credentials=tuple(credentials),
        grpc_server=grpc_server,
        grpc_command=tuple(grpc_command) if grpc_command is not None else None,
    )


class Violation(AssertionError):
    """One example broke a check: what broke, the request(s), and the hooks that ran."""

    def __init__(
        self, message: str, requests: Sequence[ClientRequest], trace: Sequence[HookCall]
    ) -> None:
        super().__init__(message)
        self.message = message
        self.requests = tuple(requests)
        self.trace = tuple(trace)

    def report(self) -> str:
        lines = [self.message, "smallest example found:"]
        lines += [f"  {_describe(r)}" for r in self.requests]
        lines += ["hook trace:", format_trace(self.trace)]
        return "\n".join(lines)


def _describe(request: ClientRequest) -> str:
    body = request.body if len(request.body) <= 120 else request.body[:120] + b"..."
    extra = f" ({len(request.body)} bytes)" if len(request.body) > 120 else ""
    return (
        f"{request.method} {request.target} headers={list(request.headers)!r} body={body!r}{extra}"
    )


def uses_token_auth(api: ApiDefinition) -> bool:
    """Whether the gateway's own key check authenticates the API (not keyless, no custom auth)."""
    return not api.use_keyless and not (
        api.custom_plugin_auth and api.middleware.auth_check is not None
    )


def token_sessions(api: ApiDefinition, now: float) -> dict[str, Session]:
    """The keys the battery stores for token-auth APIs: a valid one (so checks reach the hooks
    after auth) and an expired one (so hooks see what the gateway does with it)."""
    return {
        "kit-valid-key": Session(org_id=api.org_id, meta_data={"kit": "valid"}),
        "kit-expired-key": Session(org_id=api.org_id, expires=int(now) - 3600),
    }


def _inline_hooks_only(harness: Harness) -> bool:
    """Whether every hook of the API runs inline on the event loop (so the clock may jump)."""
    if harness.api.middleware.driver != "python":
        return False
    pipeline = harness._gateway.snapshot.runtimes[harness.api.api_id].pipeline
    driver = getattr(pipeline, "driver", None)
    stats = getattr(getattr(driver, "inner", None), "statistics", None)
    return stats is not None and not stats().threads_by_plugin


def default_settings() -> settings:
    """The loaded Hypothesis profile, without the per-example deadline (the checks time the
    hooks themselves) and without the health checks that a gateway round trip trips."""
    return settings(
        settings.default,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


Example = Callable[[Harness, Any], Awaitable[None]]

#: Seconds spent shrinking a failure before the smallest example found so far is reported.
SHRINK_BUDGET = 10.0


def run_property(
    target: PluginTarget,
    strategy: st.SearchStrategy[Any],
    example: Example,
    *,
    hypothesis_settings: settings | None = None,
    config: GatewayConfig | None = None,
    on_example: Callable[[Any], None] | None = None,
    shrink_budget: float | None = None,
) -> None:
    """Run ``example(harness, value)`` for values of ``strategy`` against one gateway serving
    ``target``; raises the :class:`Violation` of the smallest failing value."""
    clock = trio.testing.MockClock(rate=1.0)
    budget = SHRINK_BUDGET if shrink_budget is None else shrink_budget

    async def main() -> None:
        async with open_harness(
            target.source,
            api_id=target.api_id,
            base_dir=target.base_dir,
            config=config,
            grpc_server=target.grpc_server,
            grpc_command=target.grpc_command,
        ) as harness:
            if harness.broken is not None:
                raise Violation(f"the API does not load: {harness.broken}", [], [])
            if _inline_hooks_only(harness):
                clock.autojump_threshold = 0
            if uses_token_auth(harness.api):
                for key, session in token_sessions(harness.api, time.time()).items():
                    await harness.put_session(key, session)
            token = trio.lowlevel.current_trio_token()
            # Shrinking a failure whose examples each take real time (a hook that blocks for
            # a moment) could go on for minutes. Past ``shrink_budget`` seconds after the first
            # failure, examples not yet known to fail pass unrun: Hypothesis then stops at the
            # smallest failure found so far, which (known) fails again when it is replayed.
            failures: dict[str, Violation] = {}
            first_failure: list[float] = []

            @given(strategy)
            def prop(value: Any) -> None:
                key = repr(value)
                known = failures.get(key)
                if known is not None:
                    raise known
                if first_failure and time.perf_counter() - first_failure[0] > budget:
                    return
                if on_example is not None:
                    on_example(value)
                try:
                    trio.from_thread.run(example, harness, value, trio_token=token)
                except Violation as violation:
                    failures[key] = violation
                    if not first_failure:
                        first_failure.append(time.perf_counter())
                    raise

            prop = (hypothesis_settings or default_settings())(prop)
            await trio.to_thread.run_sync(prop)

    try:
        trio.run(main, clock=clock)
    except BaseExceptionGroup as group:
        # The harness's nursery wraps what the example raised.
        violation = _find_violation(group)
        if violation is None:
            raise
        raise violation from None


def _find_violation(exc: BaseException) -> Violation | None:
    if isinstance(exc, Violation):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_violation(inner)
            if found is not None:
                return found
    return None


def live_threads() -> set[threading.Thread]:
    """Threads a plugin may have started (not Trio's worker threads, which it keeps for reuse)."""
    return {
        t
        for t in threading.enumerate()
        # Trio names its idle workers "Trio thread N" and busy ones "<function> from <task>".
        if t.is_alive() and not t.name.startswith("Trio thread") and " from " not in t.name
    }
