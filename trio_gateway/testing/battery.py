"""The default battery: checks that find plugin bugs before traffic does.

.. versionadded:: 0.1

Each check is a plain function (``check_no_errors(source, ...)``): it loads the API with its
plugins once, throws Hypothesis-generated requests at it through the real pipeline, and raises
:class:`PluginCheckError` (an ``AssertionError``, so pytest shows it as a failed assertion) with
the smallest failing example and the hook trace. A check that does not apply to the API (no
custom auth, no Response hooks, not declared deterministic) passes.

:func:`check_plugin` runs them all in a child process under a watchdog, so a hook that never
gives control back (a sync loop, a regex holding the interpreter lock) is reported as a deadline
overrun instead of hanging the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from hypothesis import settings as Settings

from ._checks import CHECKS
from ._isolate import describe_value, emit
from ._runner import (
    PluginTarget,
    Violation,
    default_settings,
    make_target,
    run_property,
)
from .harness import ApiSource

__all__ = [
    "CHECKS",
    "BatteryReport",
    "CheckResult",
    "PluginCheckError",
    "check_cancellation",
    "check_concurrency",
    "check_custom_auth",
    "check_deadlines",
    "check_determinism",
    "check_event_loop",
    "check_no_errors",
    "check_plugin",
    "check_response_consistency",
    "check_stage_writes",
    "check_state_isolation",
]


class PluginCheckError(AssertionError):
    """A check found a bug; the message is the report (example, hook trace)."""


# --------------------------------------------------------------------------------------------
# Running them


@attrs.frozen(kw_only=True)
class CheckResult:
    """How one check went: ``status`` is ``passed``, ``failed`` or ``not applicable``."""

    name: str
    kind: int
    status: str
    seconds: float
    #: The report of a failure (the message, the smallest example, the hook trace), or why the
    #: check does not apply.
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class BatteryReport:
    """The results of :func:`check_plugin`, one per check, in order."""

    api_id: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    def format(self) -> str:
        lines = [f"API {self.api_id}:"]
        for r in self.results:
            lines.append(f"  [{r.status:^14}] {r.kind:>2}. {r.name} ({r.seconds:.1f} s)")
            if r.status == "not applicable":
                lines[-1] += f": {r.details}"
            elif r.details:
                lines += ["      " + line for line in r.details.splitlines()]
        return "\n".join(lines)


def run_check(
    name: str,
    target: PluginTarget,
    *,
    hypothesis_settings: Settings | None = None,
    on_example: Callable[[Any], None] | None = None,
) -> CheckResult:
    """Run one check in this process and return how it went (never raises for a finding)."""
    from .harness import load_apis

    check = CHECKS[name]
    started = time.perf_counter()
    apis = load_apis(target.source, base_dir=target.base_dir)
    api = next((a for a in apis if target.api_id in (None, a.api_id)), apis[0])
    reason = check.not_applicable(api)
    if reason is not None:
        return CheckResult(name=name, kind=check.kind, status="not applicable", seconds=0.0,
                           details=reason)  # fmt: skip
    strategy, example = check.build(api, target)
    try:
        run_property(
            target, strategy, example, hypothesis_settings=hypothesis_settings,
            on_example=on_example,
        )  # fmt: skip
    except Violation as exc:
        return CheckResult(
            name=name,
            kind=check.kind,
            status="failed",
            seconds=time.perf_counter() - started,
            details=exc.report(),
        )
    return CheckResult(
        name=name, kind=check.kind, status="passed", seconds=time.perf_counter() - started
    )


def _check_function(name: str) -> Callable[..., None]:
    check = CHECKS[name]

    def run(
        source: ApiSource,
        *,
        api_id: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        credentials: Sequence[str] = (),
        settings: Settings | None = None,
        grpc_server: str | None = None,
        grpc_command: Sequence[str] | None = None,
    ) -> None:
        target = make_target(
            source,
            api_id=api_id,
            base_dir=base_dir,
            credentials=credentials,
            grpc_server=grpc_server,
            grpc_command=grpc_command,
        )
        result = run_check(name, target, hypothesis_settings=settings)
        if result.status == "failed":
            raise PluginCheckError(f"check {name} (kind {check.kind}) failed:\n{result.details}")

    run.__name__ = run.__qualname__ = f"check_{name}"
    run.__doc__ = (
        f"Kind {check.kind}: {check.summary}. Raises :class:`PluginCheckError` with the smallest "
        "failing example and the hook trace; passes when the check does not apply."
    )
    return run


check_no_errors = _check_function("no_errors")
check_deadlines = _check_function("deadlines")
check_event_loop = _check_function("event_loop")
check_cancellation = _check_function("cancellation")
check_state_isolation = _check_function("state_isolation")
check_stage_writes = _check_function("stage_writes")
check_custom_auth = _check_function("custom_auth")
check_response_consistency = _check_function("response_consistency")
check_determinism = _check_function("determinism")
check_concurrency = _check_function("concurrency")


def check_plugin(
    source: ApiSource,
    *,
    api_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    credentials: Sequence[str] = (),
    checks: Sequence[str] | None = None,
    max_examples: int | None = None,
    watchdog: float = 60.0,
    raise_on_failure: bool = True,
    grpc_server: str | None = None,
    grpc_command: Sequence[str] | None = None,
) -> BatteryReport:
    """Run the battery on the API's hooks, in a child process under a watchdog.

    ``checks`` picks some (names of :data:`CHECKS`; default all); ``max_examples`` overrides
    Hypothesis' (default: the loaded profile's); ``watchdog`` is the time one example may take
    before the child is stopped and the check reported as a deadline overrun (a hook that never
    gave control back). Raises :class:`PluginCheckError` with the report
    when a check fails, unless ``raise_on_failure`` is False. ``grpc_server`` is the gRPC
    plugin server (``tcp://host:port``) for APIs on the ``grpc`` driver; ``grpc_command``
    starts it (once for the whole battery: the kit waits until it listens, and stops it).
    """
    from ._isolate import run_isolated
    from ._plugin_server import running_plugin_server

    target = make_target(
        source, api_id=api_id, base_dir=base_dir, credentials=credentials, grpc_server=grpc_server
    )
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {list(CHECKS)}")
    with contextlib.ExitStack() as stack:
        if grpc_command is not None:
            if grpc_server is None:
                raise ValueError("grpc_command needs grpc_server: the address it listens on")
            stack.enter_context(running_plugin_server(grpc_command, grpc_server))
        results = run_isolated(
            target,
            names,
            kinds={n: CHECKS[n].kind for n in names},
            result_type=CheckResult,
            max_examples=max_examples,
            watchdog=watchdog,
        )
    label = api_id or _api_id_of(target)
    report = BatteryReport(api_id=label, results=tuple(results))
    if raise_on_failure and not report.ok:
        raise PluginCheckError(report.format())
    return report


def _api_id_of(target: PluginTarget) -> str:
    if isinstance(target.source, Mapping):
        return str(target.source.get("api_id", "?"))
    return os.path.basename(str(target.source))


def child_main() -> int:
    """The child: run the checks named on stdin, reporting on stdout."""
    spec = json.loads(sys.stdin.read())
    target = PluginTarget.from_dict(spec["target"])
    chosen = Settings(default_settings(), max_examples=spec["max_examples"], database=None)
    out = sys.stdout
    # Plugin output must not corrupt the protocol: the plugins' prints go to stderr.
    sys.stdout = sys.stderr
    for name in spec["checks"]:
        emit(out, event="start", check=name)

        def trying(value: Any, name: str = name) -> None:
            emit(out, event="example", check=name, text=describe_value(value)[:2000])

        result = run_check(name, target, hypothesis_settings=chosen, on_example=trying)
        emit(out, event="result", result=result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
