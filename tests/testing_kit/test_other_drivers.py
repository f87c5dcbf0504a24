"""The battery on drivers it was not written for: Tyk-style Python (``@Hook``) and JavaScript
(Tyk JSVM). The kit builds the driver the definition names through the registry and traces it
by wrapping it, so a planted bug is found and its fix passes with no driver-specific code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.testing_kit.conftest import CI
from trio_gateway.testing._runner import PluginTarget, make_target
from trio_gateway.testing.battery import run_check

PLUGINS = Path(__file__).parent / "plugins"
#: The deadline of the deadline cases' hooks (their bugs sleep twice as long on long URLs).
DEADLINE = 0.2


@pytest.fixture(autouse=True)
def _shrink_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests show each driver's bug is found and reported, not how small its example
    shrinks (test_battery.py checks that): half a second of shrinking keeps them fast."""
    monkeypatch.setattr("trio_gateway.testing._runner.SHRINK_BUDGET", 0.5)


def definition(
    driver: str, path: str, stage: str, name: str, timeout: float | None = None
) -> dict[str, Any]:
    middleware: dict[str, Any] = {"driver": driver}
    doc: dict[str, Any] = {
        "api_id": f"{driver}-{name}",
        "org_id": "org",
        "use_keyless": True,
        "proxy": {"listen_path": "/d/", "target_url": "http://up.invalid/"},
        "custom_middleware": middleware,
    }
    hook: dict[str, Any] = {"name": name, "path": str(PLUGINS / path)}
    if timeout is not None:
        hook["timeout"] = timeout
    if stage == "auth":
        middleware["auth_check"] = hook
        doc["use_keyless"] = False
        doc["custom_plugin_auth_enabled"] = True
    else:
        middleware[stage] = [hook]
    return doc


#: The stage a kind's hooks run in (the rest: Pre).
STAGE = {"custom_auth": "auth", "response_consistency": "response"}

#: Kind -> its buggy/fixed pair, per driver. Not here, and why: 3 (event loop) and 4
#: (cancellation) are about async code on the gateway's loop, and both drivers run hooks in
#: threads; 10 (concurrency) for JavaScript, whose calls on an API's VM are serialised (two
#: requests cannot interleave inside a hook). JavaScript's 5 and 9 keep their state in a
#: closure: plain globals are put back as loaded before every call, so they cannot leak.
TYK_KINDS = (
    "no_errors",
    "deadlines",
    "state_isolation",
    "stage_writes",
    "custom_auth",
    "response_consistency",
    "determinism",
    "concurrency",
)
JS_KINDS = tuple(kind for kind in TYK_KINDS if kind != "concurrency")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


CASES = [
    *(
        pytest.param(
            "python",
            "tyk_style/buggy_tyk.py",
            kind,
            f"bug_{kind}",
            f"fixed_{kind}",
            id=f"tyk-python-{kind}",
        )
        for kind in TYK_KINDS
    ),
    *(
        pytest.param(
            "otto",
            "js/buggy.js",
            kind,
            _camel(f"bug_{kind}"),
            _camel(f"fixed_{kind}"),
            id=f"javascript-{kind}",
        )
        for kind in JS_KINDS
    ),
]


@pytest.mark.parametrize(("driver", "path", "check", "bug", "fixed"), CASES)
def test_the_battery_covers_drivers_it_does_not_know(
    driver: str, path: str, check: str, bug: str, fixed: str
) -> None:
    stage = STAGE.get(check, "pre")
    creds = ("Bearer good-token",) if check == "custom_auth" else ()

    def target(name: str) -> PluginTarget:
        # Overruns cost the real clock (the hooks run in threads): keep the deadline short.
        timeout = DEADLINE if check == "deadlines" else None
        doc = definition(driver, path, stage, name, timeout)
        if check == "determinism":
            doc["config_data"] = {"deterministic": True}
        return make_target(doc, credentials=creds)

    bad = run_check(check, target(bug), hypothesis_settings=CI)
    assert bad.status == "failed", bad
    assert "smallest example found:" in bad.details
    assert f"{stage}[0] {bug}" in bad.details
    good = run_check(check, target(fixed), hypothesis_settings=CI)
    assert good.status == "passed", good.details
