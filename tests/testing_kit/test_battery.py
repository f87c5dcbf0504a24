"""The battery flags one deliberately buggy plugin per kind, with a shrunk example, and passes
its fixed version (plugins/buggy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.testing_kit.conftest import CI
from trio_gateway.testing._runner import make_target
from trio_gateway.testing.battery import CHECKS, PluginCheckError, check_plugin, run_check

HERE = Path(__file__).parent


STAGE = {
    "stage_writes": "response",
    "response_consistency": "response",
}


def definition(kind: str, version: str) -> dict[str, Any]:
    stage = STAGE.get(kind, "pre")
    hook = {"name": f"{version}_{kind}", "path": "plugins/buggy.py"}
    middleware: dict[str, Any] = {"driver": "python", "pre": [], "response": []}
    doc: dict[str, Any] = {
        "api_id": f"{version}-{kind}",
        "org_id": "org",
        "use_keyless": True,
        "proxy": {"listen_path": "/k/", "target_url": "http://up.invalid/"},
        "custom_middleware": middleware,
    }
    if kind == "custom_auth":
        middleware["auth_check"] = hook
        doc["use_keyless"] = False
        doc["custom_plugin_auth_enabled"] = True
    else:
        middleware[stage] = [hook]
    if kind == "determinism":
        doc["config_data"] = {"deterministic": True}
    return doc


def credentials(kind: str) -> tuple[str, ...]:
    return ("Bearer good-token",) if kind == "custom_auth" else ()


@pytest.mark.parametrize("kind", list(CHECKS))
def test_battery_flags_the_buggy_plugin_with_a_shrunk_example(kind: str) -> None:
    target = make_target(definition(kind, "bug"), base_dir=HERE, credentials=credentials(kind))
    result = run_check(kind, target, hypothesis_settings=CI)
    assert result.status == "failed", result
    assert "smallest example found:" in result.details
    assert f"{'bug_' + kind}" in result.details  # the hook trace names the hook


@pytest.mark.parametrize("kind", list(CHECKS))
def test_battery_passes_the_fixed_plugin(kind: str) -> None:
    target = make_target(definition(kind, "fixed"), base_dir=HERE, credentials=credentials(kind))
    result = run_check(kind, target, hypothesis_settings=CI)
    assert result.status == "passed", result.details


def test_the_shrunk_example_is_the_smallest_one() -> None:
    target = make_target(definition("no_errors", "bug"), base_dir=HERE)
    result = run_check("no_errors", target, hypothesis_settings=CI)
    # Shrinking leaves the simplest request that lacks the header: a GET with nothing else.
    assert "GET /k/ headers=[] body=b''" in result.details
    assert "AttributeError" in result.details


def test_check_functions_raise_an_assertion_error_with_the_report() -> None:
    from trio_gateway.testing.battery import check_no_errors

    with pytest.raises(PluginCheckError, match="smallest example found"):
        check_no_errors(definition("no_errors", "bug"), base_dir=HERE, settings=CI)
    check_no_errors(definition("no_errors", "fixed"), base_dir=HERE, settings=CI)


def test_a_hook_that_never_yields_is_a_deadline_overrun_not_a_hang() -> None:
    doc = definition("never_yields", "bug")
    report = check_plugin(
        doc,
        base_dir=HERE,
        checks=["no_errors", "stage_writes"],
        max_examples=25,
        watchdog=4.0,
        raise_on_failure=False,
    )
    first, second = report.results
    assert first.status == "failed"
    assert "deadline overrun" in first.details
    assert "example that was running:\n  GET" not in first.details  # GETs pass; not one ran
    # The watchdog started a new child for the checks that were left.
    assert second.name == "stage_writes"
    assert "deadline overrun" in second.details or second.status == "passed"


def test_an_invalid_value_a_hook_set_is_reported_against_that_hook() -> None:
    bad = run_check(
        "no_errors",
        make_target(definition("invalid_value", "bug"), base_dir=HERE),
        hypothesis_settings=CI,
    )
    assert bad.status == "failed"
    assert "pre[0] bug_invalid_value: error" in bad.details
    assert "invalid header value" in bad.details  # refused, never sent
    good = run_check(
        "no_errors",
        make_target(definition("invalid_value", "fixed"), base_dir=HERE),
        hypothesis_settings=CI,
    )
    assert good.status == "passed", good.details


def test_token_auth_apis_get_stored_keys_so_hooks_after_auth_are_reached() -> None:
    def token_api(version: str) -> dict[str, Any]:
        doc = definition("session_meta", version)
        doc["use_keyless"] = False
        mw = doc["custom_middleware"]
        mw["post_key_auth"], mw["pre"] = mw["pre"], []
        return doc

    bad = run_check(
        "no_errors", make_target(token_api("bug"), base_dir=HERE), hypothesis_settings=CI
    )
    assert bad.status == "failed"
    assert "post_auth[0] bug_session_meta: error" in bad.details
    assert "KeyError" in bad.details
    assert "kit-valid-key" in bad.details  # the stored key the example authenticated with
    good = run_check(
        "no_errors", make_target(token_api("fixed"), base_dir=HERE), hypothesis_settings=CI
    )
    assert good.status == "passed", good.details


@pytest.mark.parametrize(
    ("hook", "found"),
    [("leaves_task", "tasks outlived"), ("leaves_thread", "threads outlived")],
)
def test_work_a_hook_leaves_behind_is_found(hook: str, found: str) -> None:
    bad = run_check(
        "cancellation", make_target(definition(hook, "bug"), base_dir=HERE), hypothesis_settings=CI
    )
    assert bad.status == "failed"
    assert found in bad.details
    good = run_check(
        "cancellation",
        make_target(definition("leaves_task", "fixed"), base_dir=HERE),
        hypothesis_settings=CI,
    )
    assert good.status == "passed", good.details


def test_a_result_of_the_wrong_shape_is_a_stage_violation() -> None:
    bad = run_check(
        "stage_writes",
        make_target(definition("wrong_shape", "bug"), base_dir=HERE),
        hypothesis_settings=CI,
    )
    assert bad.status == "failed"
    assert "returned what its stage cannot take" in bad.details
    good = run_check(
        "stage_writes",
        make_target(definition("wrong_shape", "fixed"), base_dir=HERE),
        hypothesis_settings=CI,
    )
    assert good.status == "passed", good.details
