"""``GET /metrics`` and W3C trace context end to end: a real gateway and upstream on 127.0.0.1
sockets, native Python hooks that succeed, fail (open) and time out; the scrape is parsed with
prometheus_client's own parser."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.client import open_client
from tests.helpers.upstream import RawUpstream, start_upstream
from tests.redis_server import free_port
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, ListenConfig, MetricsConfig
from trio_gateway._tracecontext import parse_traceparent

HOOKS = """
import trio


async def fine(ctx):
    trace = ctx.trace
    ctx.request.set_header("X-Trace-Seen", trace.trace_id if trace else "none")


async def boom(ctx):
    raise RuntimeError("boom")


async def slow(ctx):
    await trio.sleep(5)
"""

#: In a file of its own: each API loads its plugin files anew, and the test must find the one
#: module the "held" API runs.
HELD = """
import trio

held_started = trio.Event()
held_finished = trio.Event()


async def held(ctx):
    held_started.set()
    try:
        await trio.sleep(30)
    finally:
        held_finished.set()
"""

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def api(api_id: str, target: str, **middleware: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": "o",
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": f"/{api_id}/", "target_url": target, "strip_listen_path": True},
    }
    if middleware:
        doc["custom_middleware"] = {"driver": "python", **middleware}
    return doc


def hook(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": "../plugins/hooks.py", **extra}


async def start(
    nursery: trio.Nursery, tmp_path: Path, **config: Any
) -> tuple[RunningGateway, RawUpstream]:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    apps.mkdir(parents=True)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "hooks.py").write_text(HOOKS)
    (tmp_path / "plugins" / "held.py").write_text(HELD)
    docs = [
        api("plain", upstream.url),
        api("hooked", upstream.url, pre=[hook("fine")]),
        api("failing", upstream.url, pre=[hook("boom", failure_mode="open")]),
        api("slow", upstream.url, pre=[hook("slow", timeout=0.2)]),
        api("nowhere", f"http://127.0.0.1:{free_port()}/"),
        api(
            "held",
            upstream.url,
            pre=[{"name": "held", "path": "../plugins/held.py", "timeout": 60}],
        ),
        {**api("keyed", upstream.url), "use_keyless": False, "use_standard_auth": True},
    ]
    for doc in docs:
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))
    settings = GatewayConfig(listen=ListenConfig(host="127.0.0.1", port=0), **config)
    gateway: RunningGateway = await nursery.start(
        lambda task_status: serve_gateway(settings, apps_dir=apps, task_status=task_status)
    )
    return gateway, upstream


async def get(
    address: tuple[str, int], path: str, headers: list[tuple[str, str]] | None = None
) -> tuple[int, bytes]:
    async with open_client(address) as client:
        response = await client.request("GET", path, headers or [])
    return response.status, response.body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def hook_outcome(scraped: dict[Any, float], api_id: str, outcome: str) -> float:
    for (name, labels), value in scraped.items():
        found = dict(labels)
        if (
            name == "trio_gateway_hook_outcomes_total"
            and found["api"] == api_id
            and found["outcome"] == outcome
        ):
            return value
    return 0.0


async def test_metrics_count_requests_and_every_hook_outcome(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path)
    address = gateway.address
    before = samples((await get(address, "/metrics"))[1].decode())
    assert hook_outcome(before, "hooked", "ok") == 0
    assert (await get(address, "/plain/a"))[0] == 200
    assert (await get(address, "/plain/b"))[0] == 200
    assert (await get(address, "/plain/missing-api-is-still-plain"))[0] == 200
    assert (await get(address, "/hooked/a"))[0] == 200
    assert (await get(address, "/failing/a"))[0] == 200  # fail open: the upstream answers
    slow_status, _ = await get(address, "/slow/a")
    assert slow_status >= 500
    assert (await get(address, "/keyed/a", [("Authorization", "unknown-key")]))[0] == 403
    assert (await get(address, "/nowhere/a"))[0] == 502  # nothing listens there
    status, body = await get(address, "/metrics")
    assert status == 200
    scraped = samples(body.decode())

    assert (
        scraped[("trio_gateway_requests_total", (("api", "plain"), ("status_class", "2xx")))] == 3
    )
    assert scraped[("trio_gateway_requests_total", (("api", "slow"), ("status_class", "5xx")))] == 1
    count = ("trio_gateway_request_duration_seconds_count", (("api", "plain"), ("part", "total")))
    assert scraped[count] == 3
    upstream = (
        "trio_gateway_request_duration_seconds_count",
        (("api", "plain"), ("part", "upstream")),
    )
    assert scraped[upstream] == 3

    assert hook_outcome(scraped, "hooked", "ok") == 1
    assert hook_outcome(scraped, "failing", "error") == 1
    assert hook_outcome(scraped, "failing", "failed_open") == 1
    assert hook_outcome(scraped, "slow", "timeout") == 1
    assert hook_outcome(scraped, "slow", "ok") == 0
    labels = (
        ("api", "hooked"),
        ("driver", "python"),
        ("hook", "pre[0] fine"),
        ("stage", "pre"),
    )
    assert scraped[("trio_gateway_hook_duration_seconds_count", labels)] == 1
    assert scraped[("trio_gateway_requests_in_flight", ())] == 0
    assert scraped[("trio_gateway_upstream_connect_errors_total", ())] == 1
    assert scraped[("trio_gateway_upstream_connections_opened_total", ())] >= 1
    store = (
        "trio_gateway_session_store_duration_seconds_count",
        (("operation", "get_session"),),
    )
    assert scraped[store] >= 1
    errors = ("trio_gateway_session_store_errors_total", (("operation", "get_session"),))
    assert scraped[errors] == 0
    # No raw path ever becomes a label value.
    assert not any("missing-api" in value for _, lbls in scraped for _, value in lbls)


async def test_metrics_can_be_turned_off_or_need_the_secret(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    off, _ = await start(nursery, tmp_path / "off", metrics=MetricsConfig(enable=False))
    assert (await get(off.address, "/metrics"))[0] == 404
    guarded, _ = await start(
        nursery, tmp_path / "on", secret="s3cret", metrics=MetricsConfig(require_secret=True)
    )
    assert (await get(guarded.address, "/metrics"))[0] == 403
    status, body = await get(guarded.address, "/metrics", [("X-Tyk-Authorization", "s3cret")])
    assert status == 200
    assert b"trio_gateway_requests_in_flight" in body


async def test_metrics_move_to_the_control_port(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port()
    gateway, _ = await start(nursery, tmp_path, secret="s3cret", control_api_port=port)
    assert (await get(gateway.address, "/metrics"))[0] == 404
    status, body = await get(("127.0.0.1", port), "/metrics")
    assert status == 200
    assert b"trio_gateway_requests_in_flight" in body


def upstream_header(upstream: RawUpstream, name: bytes) -> list[bytes]:
    return [v for k, v in upstream.requests[-1].headers if k.lower() == name]


async def test_trace_context_is_kept_started_or_replaced(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_gateway.access")
    gateway, upstream = await start(nursery, tmp_path)
    address = gateway.address

    headers = [("traceparent", VALID), ("tracestate", "vendor=1")]
    assert (await get(address, "/hooked/kept", headers))[0] == 200
    assert upstream_header(upstream, b"traceparent") == [VALID.encode()]
    assert upstream_header(upstream, b"tracestate") == [b"vendor=1"]
    # A native hook reads it from its context.
    assert upstream_header(upstream, b"x-trace-seen") == [b"4bf92f3577b34da6a3ce929d0e0e4736"]

    assert (await get(address, "/plain/started"))[0] == 200
    (started,) = upstream_header(upstream, b"traceparent")
    context = parse_traceparent(started)
    assert context is not None
    assert context.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"

    bad = [("traceparent", "00-xyz-00f067aa0ba902b7-01"), ("tracestate", "vendor=2")]
    assert (await get(address, "/plain/replaced", bad))[0] == 200
    (replaced,) = upstream_header(upstream, b"traceparent")
    assert parse_traceparent(replaced) is not None
    assert upstream_header(upstream, b"tracestate") == []

    lines = [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "trio_gateway.access"
    ]
    by_path = {line["path"]: line for line in lines}
    assert by_path["/hooked/kept"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert by_path["/plain/started"]["trace_id"] == context.trace_id
    assert by_path["/plain/started"]["upstream_ms"] >= 0
    # Per-stage timings: the hooked API's Pre stage is timed; a hook-less request has none.
    assert set(by_path["/hooked/kept"]["stages_ms"]) == {"pre"}
    assert by_path["/hooked/kept"]["stages_ms"]["pre"] >= 0
    assert "stages_ms" not in by_path["/plain/started"]


async def test_a_hook_cut_short_by_the_client_leaving_counts_as_cancelled(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    gateway, _ = await start(nursery, tmp_path)
    stream = await trio.open_tcp_stream(*gateway.address)
    await stream.send_all(b"GET /held/x HTTP/1.1\r\nHost: t\r\n\r\n")
    (module,) = [
        m
        for m in list(sys.modules.values())
        if hasattr(m, "held_finished") and str(tmp_path) in str(getattr(m, "__file__", ""))
    ]
    with trio.fail_after(10):
        await module.held_started.wait()
        await stream.aclose()  # the client leaves while the hook runs
        await module.held_finished.wait()
    scraped = samples((await get(gateway.address, "/metrics"))[1].decode())
    assert hook_outcome(scraped, "held", "cancelled") == 1
    assert hook_outcome(scraped, "held", "timeout") == 0
