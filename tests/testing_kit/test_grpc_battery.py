"""The battery on gRPC plugins: a real grpcio Dispatcher per buggy and fixed plugin, for the
kinds that apply to a plugin server: all but 3 (event loop) and 4 (cancellation), which are about
code on the gateway's event loop, not in another process."""

from __future__ import annotations

import hashlib
import itertools
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from tests.plugin_drivers.grpc.grpc_dispatcher_server import start_server
from tests.redis_server import free_port
from tests.testing_kit.conftest import CI
from trio_gateway.errors import PluginDriverError
from trio_gateway.testing import open_harness
from trio_gateway.testing._runner import make_target
from trio_gateway.testing.battery import check_plugin, run_check

Handler = Callable[[pb.Object, Any], pb.Object]
#: The echo Dispatcher as a program (``python grpc_dispatcher_server.py PORT``).
SERVER_SCRIPT = Path(__file__).parents[1] / "plugin_drivers" / "grpc" / "grpc_dispatcher_server.py"


@pytest.fixture(autouse=True)
def _shrink_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests show each driver's bug is found and reported, not how small its example
    shrinks (test_battery.py checks that): half a second of shrinking keeps them fast."""
    monkeypatch.setattr("trio_gateway.testing._runner.SHRINK_BUDGET", 0.5)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    servers: list[Any] = []

    def start(handler: Handler) -> str:
        server, port = start_server("127.0.0.1:0", handler)
        servers.append(server)
        return f"tcp://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(grace=None)


def definition(stage: str) -> dict[str, Any]:
    middleware: dict[str, Any] = {"driver": "grpc"}
    doc: dict[str, Any] = {
        "api_id": "grpc-kit",
        "org_id": "org",
        "use_keyless": True,
        "proxy": {"listen_path": "/g/", "target_url": "http://up.invalid/"},
        "custom_middleware": middleware,
    }
    if stage == "auth":
        middleware["auth_check"] = {"name": "auth"}
        doc["use_keyless"] = False
        doc["custom_plugin_auth_enabled"] = True
    else:
        middleware[stage] = [{"name": stage}]
    return doc


# 1. the server fails on a missing or unusual header (a User-Agent without a "/")
def bug_no_errors(o: pb.Object, context: Any) -> pb.Object:
    o.request.set_headers["X-Client-Version"] = o.request.headers["User-Agent"].split("/")[1]
    return o


def fixed_no_errors(o: pb.Object, context: Any) -> pb.Object:
    version = o.request.headers.get("User-Agent", "").partition("/")[2]
    o.request.set_headers["X-Client-Version"] = version
    return o


# 2. a slow path on the server (long URLs) overruns the hook's deadline (1 s)
def bug_deadlines(o: pb.Object, context: Any) -> pb.Object:
    if len(o.request.url) > 12:
        time.sleep(1.5)
    return o


def fixed_deadlines(o: pb.Object, context: Any) -> pb.Object:
    return o


# 5. the server remembers the last user and hands it to the next request
_LAST: dict[str, str] = {}


def bug_state_isolation(o: pb.Object, context: Any) -> pb.Object:
    user = o.request.headers.get("X-User")
    if user:
        _LAST["user"] = user
    elif "user" in _LAST:
        o.request.set_headers["X-User"] = _LAST["user"]
    return o


def fixed_state_isolation(o: pb.Object, context: Any) -> pb.Object:
    return o


# 7. custom auth that accepts any Authorization value
def _session(o: pb.Object, token: str) -> None:
    o.session.rate = 100
    o.session.per = 60
    o.metadata["token"] = token


def bug_custom_auth(o: pb.Object, context: Any) -> pb.Object:
    token = o.request.headers.get("Authorization")
    if token is not None:
        _session(o, token or "anonymous")
    return o


def fixed_custom_auth(o: pb.Object, context: Any) -> pb.Object:
    if o.request.headers.get("Authorization") == "Bearer good-token":
        _session(o, "good-token")
    return o


# 6. the wrong shape: a Response hook that builds a new response and forgets to echo the status
def bug_stage_writes(o: pb.Object, context: Any) -> pb.Object:
    o.response.Clear()  # status_code 0 now: the gateway cannot use it
    o.response.raw_body = b"{}"
    o.response.headers["X-Served"] = "yes"
    return o


def fixed_stage_writes(o: pb.Object, context: Any) -> pb.Object:
    o.response.headers["X-Served"] = "yes"
    return o


# 8. a Response hook that replaces the body and keeps the upstream's Content-Encoding (the
# driver sets Content-Length, as Tyk does; the coding is the plugin's word)
def bug_response_consistency(o: pb.Object, context: Any) -> pb.Object:
    o.response.raw_body = b'{"wrapped": true}'
    return o


def fixed_response_consistency(o: pb.Object, context: Any) -> pb.Object:
    o.response.raw_body = b'{"wrapped": true}'
    for name in [k for k in o.response.headers if k.lower() == "content-encoding"]:
        del o.response.headers[name]
    o.response.ClearField("multivalue_headers")  # headers is the whole set now
    return o


# 9. declared deterministic, but the server counts
_COUNTER = itertools.count()


def bug_determinism(o: pb.Object, context: Any) -> pb.Object:
    o.request.set_headers["X-Shard"] = str(next(_COUNTER) % 4)
    return o


def fixed_determinism(o: pb.Object, context: Any) -> pb.Object:
    o.request.set_headers["X-Shard"] = str(hashlib.sha256(o.request.url.encode()).digest()[0] % 4)
    return o


# 10. a module-level "current request" another server thread overwrites while this one waits
_CURRENT: dict[str, str | None] = {}


def bug_concurrency(o: pb.Object, context: Any) -> pb.Object:
    _CURRENT["user"] = o.request.headers.get("X-User")
    time.sleep(0.01)
    user = _CURRENT["user"]
    if user:
        o.request.set_headers["X-Seen-User"] = user
    return o


def fixed_concurrency(o: pb.Object, context: Any) -> pb.Object:
    user = o.request.headers.get("X-User")
    time.sleep(0.01)
    if user:
        o.request.set_headers["X-Seen-User"] = user
    return o


CASES = {
    "no_errors": ("pre", bug_no_errors, fixed_no_errors),
    "deadlines": ("pre", bug_deadlines, fixed_deadlines),
    "state_isolation": ("pre", bug_state_isolation, fixed_state_isolation),
    "stage_writes": ("response", bug_stage_writes, fixed_stage_writes),
    "custom_auth": ("auth", bug_custom_auth, fixed_custom_auth),
    "response_consistency": ("response", bug_response_consistency, fixed_response_consistency),
    "determinism": ("pre", bug_determinism, fixed_determinism),
    "concurrency": ("pre", bug_concurrency, fixed_concurrency),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_battery_flags_the_buggy_grpc_plugin_and_passes_the_fixed_one(
    kind: str, serve: Callable[[Handler], str]
) -> None:
    stage, bug, fixed = CASES[kind]
    creds = ("Bearer good-token",) if kind == "custom_auth" else ()
    doc = definition(stage)
    if kind == "determinism":
        doc["config_data"] = {"deterministic": True}
    bad = run_check(
        kind,
        make_target(doc, credentials=creds, grpc_server=serve(bug)),
        hypothesis_settings=CI,
    )
    assert bad.status == "failed", bad
    assert "smallest example found:" in bad.details
    assert f"{stage}[0]" in bad.details  # the hook trace names the gRPC hook
    good = run_check(
        kind,
        make_target(doc, credentials=creds, grpc_server=serve(fixed)),
        hypothesis_settings=CI,
    )
    assert good.status == "passed", good.details


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_the_harness_starts_the_plugin_server_waits_for_it_and_stops_it() -> None:
    port = free_port()
    command = [sys.executable, str(SERVER_SCRIPT), str(port)]
    async with open_harness(
        definition("pre"), grpc_server=f"tcp://127.0.0.1:{port}", grpc_command=command
    ) as h:
        r = await h.request()
        assert r.status == 200
        assert [(c.label, c.outcome) for c in r.trace] == [("pre[0] pre", "continue")]
    assert not _port_open(port)  # stopped with the harness


def test_check_plugin_starts_the_server_once_and_names_a_command_that_fails() -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    report = check_plugin(
        definition("pre"),
        checks=["no_errors", "state_isolation"],
        max_examples=10,
        grpc_server=address,
        grpc_command=[sys.executable, str(SERVER_SCRIPT), str(port)],
    )
    assert [r.status for r in report.results] == ["passed", "passed"]
    assert not _port_open(port)
    with pytest.raises(PluginDriverError, match="exited"):
        check_plugin(
            definition("pre"),
            grpc_server=address,
            grpc_command=[sys.executable, "-c", "raise SystemExit(3)"],
        )
