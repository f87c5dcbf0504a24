"""The kit's public API is pinned: its names, and the signatures authors call."""

from __future__ import annotations

import inspect

import trio_gateway.testing
import trio_gateway.testing.battery
import trio_gateway.testing.strategies

KIT_NAMES = [
    "ApiSource",
    "ClientRequest",
    "Harness",
    "HookCall",
    "Result",
    "SeenRequest",
    "UpstreamReply",
    "UpstreamScript",
    "echo_upstream",
    "load_apis",
    "open_harness",
]

SIGNATURES = {
    trio_gateway.testing.open_harness: "(source, *, api_id=None, base_dir=None, "
    "upstream=<function echo_upstream>, sockets=False, config=None, sessions=None, "
    "request_timeout=60.0, grpc_server=None)",
    trio_gateway.testing.battery.check_plugin: "(source, *, api_id=None, base_dir=None, "
    "credentials=(), checks=None, max_examples=None, watchdog=120.0, raise_on_failure=True, "
    "grpc_server=None)",
    trio_gateway.testing.battery.check_no_errors: "(source, *, api_id=None, base_dir=None, "
    "credentials=(), settings=None, grpc_server=None)",
}


def test_kit_names_are_pinned_and_sorted() -> None:
    assert trio_gateway.testing.__all__ == KIT_NAMES
    for name in KIT_NAMES:
        assert hasattr(trio_gateway.testing, name)
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
