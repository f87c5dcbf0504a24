"""The conformance runner finds differences: a plugin that behaves otherwise fails exactly the
vectors it breaks, each with what was expected and what happened; bad input is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from grpc_example_server import EXAMPLES

from trio_gateway.testing.conformance import (
    ConformanceSetupError,
    definition_from_file,
    load_vectors,
    run_conformance,
)


def native_plugin(tmp_path: Path, name: str, source: str) -> dict[str, Any]:
    """A native Python hook ``name`` written to a file, as a ``custom_middleware`` part."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return {"custom_middleware": {"driver": "python", "pre": [{"name": name, "path": str(path)}]}}


def failed(report: Any) -> dict[str, tuple[str, ...]]:
    return {outcome.vector.name: outcome.differences for outcome in report.failures}


async def test_a_header_left_in_place_fails_its_vector_with_the_difference(
    tmp_path: Path,
) -> None:
    forgetful = native_plugin(
        tmp_path,
        "add_headers",
        "async def add_headers(ctx):\n"
        "    ctx.request.set_header('X-Gateway', ctx.api.config_data['gateway_name'])\n"
        "    ctx.request.set_header('X-Api-Id', ctx.api.api_id)\n",
    )
    report = await run_conformance({"add_headers": forgetful})
    assert failed(report) == {
        "add-headers/removes-x-internal-debug": (
            "upstream header X-Internal-Debug: expected none, got ['1']",
        )
    }
    assert len(report.outcomes) == len(load_vectors().for_plugin("add_headers"))
    with pytest.raises(AssertionError, match="FAIL add-headers/removes-x-internal-debug"):
        report.assert_conforms()


async def test_a_validation_that_lets_everything_through_is_caught(tmp_path: Path) -> None:
    lax = native_plugin(tmp_path, "validate_order", "async def validate_order(ctx):\n    pass\n")
    report = await run_conformance({"validate_order": lax})
    differences = failed(report)
    refusals = [v.name for v in load_vectors().for_plugin("validate_order") if v.upstream is None]
    assert sorted(differences) == sorted(refusals)
    assert differences["validate-order/refuses-a-zero-quantity"][:2] == (
        "upstream: expected no request, got 1",
        "response status: expected 400, got 200",
    )


async def test_a_different_answer_is_a_difference(tmp_path: Path) -> None:
    rude = tmp_path / "rude.py"
    rude.write_text(
        "from trio_gateway.hooks import Respond\n"
        "async def authenticate(ctx):\n"
        "    return Respond(status=403, headers={'Content-Type': 'application/json'},\n"
        '                   body=\'{"error": "go away"}\')\n'
    )
    middleware = {"driver": "python", "auth_check": {"name": "authenticate", "path": str(rude)}}
    report = await run_conformance({"token_auth": {"custom_middleware": middleware}})
    differences = failed(report)
    assert differences["token-auth/refuses-an-unknown-token"] == (
        "response JSON: expected {'error': 'Key not authorised'}, got {'error': 'go away'}",
    )
    assert differences["token-auth/lets-ann-in-and-tags-the-user"][:2] == (
        "upstream: expected one request, got 0",
        "response status: expected 200, got 403",
    )


@pytest.mark.slow
async def test_a_gateway_that_does_not_answer_in_time_is_reported_per_vector(
    tmp_path: Path,
) -> None:
    # The hook's own deadline (1 s by default) is far beyond the runner's bound per request.
    stuck = native_plugin(
        tmp_path,
        "add_headers",
        "import trio\nasync def add_headers(ctx):\n    await trio.sleep_forever()\n",
    )
    report = await run_conformance({"add_headers": stuck}, request_timeout=0.05)
    assert len(report.failures) == len(load_vectors().for_plugin("add_headers"))
    assert {outcome.differences for outcome in report.failures} == {("no response within 0.05 s",)}


async def test_plugins_without_a_definition_are_reported_not_run() -> None:
    native = definition_from_file(EXAMPLES / "apps-plugins" / "add-headers.json")
    report = await run_conformance({"add_headers": native})
    assert report.ok
    assert set(report.not_covered) == {"validate_order", "rewrite_response", "token_auth"}
    assert {outcome.vector.plugin for outcome in report.outcomes} == {"add_headers"}
    assert "not run (no definition given): validate_order" in report.format()


async def test_an_unknown_plugin_or_a_refused_definition_is_a_setup_error() -> None:
    with pytest.raises(ConformanceSetupError, match="no conformance plugin named nope"):
        await run_conformance({"nope": {}})
    with pytest.raises(ConformanceSetupError, match="refused"):
        await run_conformance({"add_headers": {"custom_middleware": "not an object"}})


async def test_a_definition_that_is_not_an_object_is_a_setup_error() -> None:
    with pytest.raises(ConformanceSetupError, match="add_headers: expected an object"):
        await run_conformance({"add_headers": ["custom_middleware"]})  # type: ignore[dict-item]


def test_definition_paths_resolve_from_the_file(tmp_path: Path) -> None:
    definition = definition_from_file(EXAMPLES / "apps-plugins" / "token-auth.json")
    middleware = definition["custom_middleware"]
    expected = str((EXAMPLES / "plugins" / "token_auth.py").resolve())
    assert middleware["auth_check"]["path"] == expected
    assert middleware["post"][0]["path"] == expected


def shipped() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (
            Path(__file__).resolve().parents[2] / "trio_gateway/testing/conformance_vectors.json"
        ).read_text()
    )
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["vectors"][0].pop("upstream"), "upstream"),
        (lambda d: d["vectors"][0]["request"].update(path="/x\r\nEvil: 1"), "line break"),
        (lambda d: d["vectors"][1].update(name=d["vectors"][0]["name"]), "unique"),
        (lambda d: d["vectors"][0].update(plugin="ghost"), "no plugin named 'ghost'"),
        (lambda d: d["vectors"][0]["response"].update(status="200"), "status"),
    ],
)
def test_bad_vectors_are_refused_with_where(change: Any, message: str) -> None:
    document = shipped()
    change(document)
    with pytest.raises(ConformanceSetupError, match=message):
        load_vectors(document)


def test_the_shipped_vectors_cover_every_plugin_both_ways() -> None:
    vectors = load_vectors()
    assert set(vectors.plugins) == {
        "add_headers",
        "validate_order",
        "rewrite_response",
        "token_auth",
    }
    for plugin in vectors.plugins:
        mine = vectors.for_plugin(plugin)
        assert mine, plugin
    # Where a plugin may stop a request, the vectors show both: stopped and let through.
    for plugin in ("validate_order", "token_auth"):
        called = {v.upstream is not None for v in vectors.for_plugin(plugin)}
        assert called == {True, False}, plugin
