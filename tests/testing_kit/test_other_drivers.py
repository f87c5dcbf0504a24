"""The battery on drivers it was not written for: Tyk-style Python (``@Hook``) and JavaScript
(Tyk JSVM). The kit builds the driver the definition names through the registry and traces it
by wrapping it, so a planted bug is found and its fix passes with no driver-specific code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.testing_kit.conftest import CI
from trio_gateway.testing._runner import make_target
from trio_gateway.testing.battery import run_check

PLUGINS = Path(__file__).parent / "plugins"


def definition(driver: str, path: str, stage: str, name: str) -> dict[str, Any]:
    middleware: dict[str, Any] = {"driver": driver}
    doc: dict[str, Any] = {
        "api_id": f"{driver}-{name}",
        "org_id": "org",
        "use_keyless": True,
        "proxy": {"listen_path": "/d/", "target_url": "http://up.invalid/"},
        "custom_middleware": middleware,
    }
    hook = {"name": name, "path": str(PLUGINS / path)}
    if stage == "auth":
        middleware["auth_check"] = hook
        doc["use_keyless"] = False
        doc["custom_plugin_auth_enabled"] = True
    else:
        middleware[stage] = [hook]
    return doc


CASES = [
    ("python", "tyk_style/buggy_tyk.py", "pre", "no_errors", "bug_no_errors", "fixed_no_errors"),
    (
        "python",
        "tyk_style/buggy_tyk.py",
        "pre",
        "state_isolation",
        "bug_state_isolation",
        "fixed_state_isolation",
    ),
    ("otto", "js/buggy.js", "pre", "no_errors", "bugNoErrors", "fixedNoErrors"),
    ("otto", "js/buggy.js", "auth", "custom_auth", "bugCustomAuth", "fixedCustomAuth"),
]


@pytest.mark.parametrize(("driver", "path", "stage", "check", "bug", "fixed"), CASES)
def test_the_battery_covers_drivers_it_does_not_know(
    driver: str, path: str, stage: str, check: str, bug: str, fixed: str
) -> None:
    creds = ("Bearer good-token",) if check == "custom_auth" else ()
    bad = run_check(
        check,
        make_target(definition(driver, path, stage, bug), credentials=creds),
        hypothesis_settings=CI,
    )
    assert bad.status == "failed", bad
    assert "smallest example found:" in bad.details
    assert f"{stage}[0] {bug}" in bad.details
    good = run_check(
        check,
        make_target(definition(driver, path, stage, fixed), credentials=creds),
        hypothesis_settings=CI,
    )
    assert good.status == "passed", good.details
