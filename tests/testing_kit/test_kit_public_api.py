"""The kit's public API is pinned: its names, and the signatures authors call."""

from __future__ import annotations

import inspect
import typing

import attrs

import trio_gateway.drivers
import trio_gateway.hooks
import trio_gateway.testing
import trio_gateway.testing.battery
import trio_gateway.testing.conformance
import trio_gateway.testing.strategies

KIT_NAMES = [
    "ApiSource",
    "ClientRequest",
    "ConformanceReport",
    "ConformanceSetupError",
    "FakeUpstream",
    "Harness",
    "HookCall",
    "PluginSpec",
    "ResponseExpectation",
    "Result",
    "ScriptedReply",
    "SeenRequest",
    "UpstreamExpectation",
    "UpstreamReply",
    "UpstreamScript",
    "Vector",
    "VectorOutcome",
    "VectorRequest",
    "VectorSet",
    "definition_from_file",
    "echo_upstream",
    "load_apis",
    "load_vectors",
    "open_harness",
    "run_conformance",
]

SIGNATURES = {
    trio_gateway.testing.open_harness: "(source, *, api_id=None, base_dir=None, "
    "upstream=<function echo_upstream>, sockets=False, config=None, sessions=None, "
    "request_timeout=60.0, grpc_server=None, grpc_command=None)",
    trio_gateway.testing.battery.check_plugin: "(source, *, api_id=None, base_dir=None, "
    "credentials=(), checks=None, max_examples=None, watchdog=60.0, raise_on_failure=True, "
    "grpc_server=None, grpc_command=None)",
    trio_gateway.testing.run_conformance: "(definitions, *, config=None, vectors=None, "
    "request_timeout=10.0)",
    trio_gateway.testing.battery.check_no_errors: "(source, *, api_id=None, base_dir=None, "
    "credentials=(), settings=None, grpc_server=None, grpc_command=None)",
}


def test_kit_names_are_pinned_and_sorted() -> None:
    assert trio_gateway.testing.__all__ == KIT_NAMES
    for name in KIT_NAMES:
        assert hasattr(trio_gateway.testing, name)
    # The conformance module's names are the top level's (one list to pin: KIT_NAMES).
    conformance = set(trio_gateway.testing.conformance.__all__) - {"HOOK_ENTRY_KEYS"}
    assert conformance <= set(KIT_NAMES)
    battery = trio_gateway.testing.battery.__all__
    assert len(set(battery)) == len(battery)
    assert len([n for n in battery if n.startswith("check_") and n != "check_plugin"]) == 10
    for name in trio_gateway.testing.strategies.__all__:
        assert callable(getattr(trio_gateway.testing.strategies, name))


def test_kit_signatures_are_pinned() -> None:
    for fn, expected in SIGNATURES.items():
        got = str(
            inspect.Signature(
                [p.replace(annotation=inspect.Parameter.empty)
                 for p in inspect.signature(fn).parameters.values()]
            )
        )  # fmt: skip
        got = got.replace(got[got.find(" at 0x") : got.find(">", got.find(" at 0x"))], "")
        assert got == expected, fn.__name__


def _classes_in(hint: object) -> list[type]:
    found = [hint] if isinstance(hint, type) else []
    for arg in typing.get_args(hint):
        found += _classes_in(arg)
    return found


PUBLIC_TYPES = {
    value
    for module in (trio_gateway.hooks, trio_gateway.drivers, trio_gateway.testing)
    for value in vars(module).values()
    if isinstance(value, type) and value.__name__ in module.__all__
}


def test_the_kit_hands_out_only_public_types() -> None:
    kit = trio_gateway.testing
    for cls in (kit.Harness, kit.Result, kit.HookCall, kit.SeenRequest, kit.ClientRequest):
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            if field.name.startswith("_"):
                continue
            for used in _classes_in(hints[field.name]):
                if used.__module__.startswith("trio_gateway"):
                    assert used in PUBLIC_TYPES, (cls.__name__, field.name, used)
