"""Analytics records end to end: a real gateway, a real upstream and a real redis-server, all on
127.0.0.1 sockets. Records are read back from Tyk Pump's Redis list and decoded with the msgpack
binding, field by field; analytics plugins (mask, drop, raise, hang) run on them; a Redis outage
costs records, counted, never requests.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import msgpack
import pytest
import trio

from tests.helpers.upstream import RawUpstream, start_upstream
from tests.redis_server import RedisServer
from trio_gateway._analytics.recorder import AnalyticsRecorder, AnalyticsStatistics
from trio_gateway._analytics.sinks import ANALYTICS_KEY
from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import (
    AnalyticsConfig,
    GatewayConfig,
    ListenConfig,
    StorageConfig,
)
from trio_gateway._metrics import current_metrics
from trio_gateway._redis.client import RedisClient
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway._session.model import Session
from trio_gateway._session.store import hash_key

T0 = 1_700_000_000.25
ORG = "org9"

PLUGINS = """
import asyncio, threading

release = threading.Event()


def mask_key(record):
    record.api_key = "****" + record.api_key[-4:]
    record.tags.append("masked")


async def drop_health(record):
    if record.path == "/health":
        return False
    record.tags.append("kept")


def explode(record):
    record.api_key = "half-done"
    raise RuntimeError("boom")


def hang(record):
    record.api_key = "changed-before-hanging"
    release.wait()
"""


@attrs.define
class WallClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def api_doc(api_id: str, listen_path: str, target: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": f"{api_id} API",
        "api_id": api_id,
        "org_id": ORG,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": True},
    }
    doc.update(extra)
    return doc


def plugin(func: str, **extra: Any) -> dict[str, Any]:
    return {
        "analytics_plugin": {
            "enable": True,
            "plugin_path": "../plugins/analytics.py",
            "func_name": func,
            **extra,
        }
    }


def write_apis(apps: Path, target: str) -> None:
    apps.mkdir()
    (apps.parent / "plugins").mkdir()
    (apps.parent / "plugins" / "analytics.py").write_text(PLUGINS)
    docs = [
        api_doc(
            "keyed",
            "/keyed/",
            target,
            use_keyless=False,
            use_standard_auth=True,
            tags=["team-a"],
            expire_analytics_after=3600,
        ),
        api_doc("open", "/open/", target),
        api_doc("detailed", "/detailed/", target, enable_detailed_recording=True),
        api_doc("quiet", "/quiet/", target, do_not_track=True),
        api_doc("masked", "/masked/", target, use_keyless=False, **plugin("mask_key")),
        api_doc("dropping", "/dropping/", target, **plugin("drop_health")),
        api_doc("exploding", "/exploding/", target, use_keyless=False, **plugin("explode")),
        api_doc("hanging", "/hanging/", target, use_keyless=False, **plugin("hang", timeout=0.3)),
    ]
    for doc in docs:
        (apps / f"{doc['api_id']}.json").write_text(json.dumps(doc))


@attrs.define
class Setup:
    gateway: RunningGateway
    store: MemorySessionStore
    redis: RedisClient
    recorder: AnalyticsRecorder
    upstream: RawUpstream
    #: Set once the gateway has stopped (its analytics writer flushed and closed).
    stopped: trio.Event

    async def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(*self.gateway.address)
            async with stream:
                lines = [f"GET {path} HTTP/1.1", "Host: gw.test", "Connection: close"]
                lines += ["User-Agent: analytics-test/1.0"]
                lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
                await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
                data = b""
                while chunk := await stream.receive_some():
                    data += chunk
        return int(data.split(b" ", 2)[1])

    async def wait(self, predicate: Callable[[AnalyticsStatistics], bool]) -> None:
        with trio.fail_after(15):
            await self.recorder.wait_until(predicate)

    async def records(self) -> list[dict[str, Any]]:
        raw = await self.redis.execute("LRANGE", ANALYTICS_KEY, 0, -1)
        return [msgpack.unpackb(item, raw=False) for item in raw]


async def start(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis: RedisServer,
    *,
    hash_keys: bool = False,
    flush_interval: float = 0.05,
    jsonl_path: str = "",
) -> Setup:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    write_apis(apps, upstream.url)
    config = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        storage=StorageConfig(host=redis.host, port=redis.port, hash_keys=hash_keys),
        analytics=AnalyticsConfig(
            enable=True,
            flush_interval=flush_interval,
            sink="jsonl" if jsonl_path else "redis",
            jsonl_path=jsonl_path,
        ),
    )
    store = MemorySessionStore(hash_keys=hash_keys)
    stopped = trio.Event()

    async def serve(task_status: trio.TaskStatus[RunningGateway]) -> None:
        try:
            await serve_gateway(
                config,
                apps_dir=apps,
                session_store=store,
                wall_clock=WallClock(),
                task_status=task_status,
            )
        finally:
            stopped.set()

    gateway: RunningGateway = await nursery.start(serve)
    metrics = current_metrics()
    assert metrics is not None
    assert metrics.analytics is not None
    client = RedisClient(host=redis.host, port=redis.port)
    nursery.start_soon(_close_at_end, client)
    return Setup(gateway, store, client, metrics.analytics, upstream, stopped)


async def _close_at_end(client: RedisClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


@pytest.mark.parametrize("hash_keys", [False, True])
async def test_records_in_redis_carry_tyk_pumps_fields(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer, hash_keys: bool
) -> None:
    gw = await start(nursery, tmp_path, redis_db, hash_keys=hash_keys)
    await gw.store.put_session("key-1234", Session(org_id=ORG, alias="ann"))
    assert await gw.get("/keyed/items/7?x=1", {"Authorization": "key-1234"}) == 200
    await gw.wait(lambda s: s.written >= 1)

    (record,) = await gw.records()
    key = hash_key("key-1234") if hash_keys else "key-1234"
    moment = time.localtime(T0)
    assert record["Method"] == "GET"
    assert record["Host"] == "gw.test"
    assert record["Path"] == "/items/7"
    assert record["RawPath"] == "/items/7"
    assert record["OriginalPath"] == "/keyed/items/7"
    assert record["ListenPath"] == "/keyed/"
    assert record["ContentLength"] == 0
    assert record["UserAgent"] == "analytics-test/1.0"
    assert (record["Day"], record["Month"], record["Year"], record["Hour"]) == (
        moment.tm_mday,
        moment.tm_mon,
        moment.tm_year,
        moment.tm_hour,
    )
    assert record["ResponseCode"] == 200
    assert record["APIKey"] == key
    # Go's time.Time through vmihailenco/msgpack.v2: [unix seconds, nanoseconds].
    assert record["TimeStamp"] == [1_700_000_000, 250_000_000]
    assert record["ExpireAt"] == [1_700_003_600, 250_000_000]
    assert record["APIVersion"] == "Non Versioned"
    assert (record["APIName"], record["APIID"], record["OrgID"]) == ("keyed API", "keyed", ORG)
    assert record["IPAddress"] == "127.0.0.1"
    assert record["Tags"] == ["team-a", f"key-{key}", f"org-{ORG}", "api-keyed"]
    latency = record["Latency"]
    assert set(latency) == {"Total", "Upstream", "Gateway"}
    assert latency["Total"] >= latency["Upstream"] >= 0
    assert latency["Total"] == latency["Upstream"] + latency["Gateway"]
    assert record["RequestTime"] == latency["Total"]
    assert record["RawRequest"] == record["RawResponse"] == ""
    assert record["TrackPath"] is False
    assert record["Alias"] == "ann"
    assert record["Geo"]["Country"] == {"ISOCode": ""}
    # Tyk fills Network only in its per-second records for TCP/TLS-protocol APIs; an HTTP
    # request's record carries it zeroed, field by field (docs/observability.md).
    assert record["Network"] == {
        "OpenConnections": 0,
        "ClosedConnection": 0,
        "BytesIn": 0,
        "BytesOut": 0,
    }


async def test_do_not_track_and_rejections(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer
) -> None:
    gw = await start(nursery, tmp_path, redis_db)
    assert await gw.get("/quiet/a") == 200
    assert await gw.get("/keyed/a") == 401  # no key: recorded, as Tyk records errors
    assert await gw.get("/open/b") == 200
    await gw.wait(lambda s: s.written >= 2)
    records = await gw.records()
    assert [(r["APIID"], r["ResponseCode"]) for r in records] == [("keyed", 401), ("open", 200)]


async def test_analytics_plugins_mask_drop_fail_and_time_out(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer
) -> None:
    gw = await start(nursery, tmp_path, redis_db)
    for key in ("secret-key-9876", "other-key-5555", "third-key-1111"):
        await gw.store.put_session(key, Session(org_id=ORG))
    try:
        assert await gw.get("/masked/x", {"Authorization": "secret-key-9876"}) == 200
        await gw.wait(lambda s: s.written >= 1)
        assert await gw.get("/dropping/health") == 200
        assert await gw.get("/dropping/other") == 200
        await gw.wait(lambda s: s.written >= 2 and s.plugin_dropped >= 1)
        assert await gw.get("/exploding/x", {"Authorization": "other-key-5555"}) == 200
        await gw.wait(lambda s: s.written >= 3)
        assert await gw.get("/hanging/x", {"Authorization": "third-key-1111"}) == 200
        await gw.wait(lambda s: s.written >= 4)
    finally:
        for module in list(sys.modules.values()):
            if isinstance(getattr(module, "release", None), threading.Event):
                module.release.set()  # let the abandoned thread end
    by_api = {r["APIID"]: r for r in await gw.records()}
    # The masking plugin changed the record in place.
    assert by_api["masked"]["APIKey"] == "****9876"
    assert "masked" in by_api["masked"]["Tags"]
    # The dropping plugin returned False for /health: only /other is stored.
    assert by_api["dropping"]["Path"] == "/other"
    assert "kept" in by_api["dropping"]["Tags"]
    assert len([r for r in await gw.records() if r["APIID"] == "dropping"]) == 1
    # A plugin that raised, and one that hung past its deadline: the original records.
    assert by_api["exploding"]["APIKey"] == "other-key-5555"
    assert by_api["hanging"]["APIKey"] == "third-key-1111"
    stats = gw.recorder.statistics()
    assert stats.plugin_batches["error"] == 1
    assert stats.plugin_batches["timeout"] == 1
    assert stats.plugin_batches["ok"] >= 2  # masked, dropping (its two hits may share a batch)


async def test_redis_outage_drops_and_counts_records_and_recovers(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    redis = redis_server_factory()
    gw = await start(nursery, tmp_path, redis)
    assert await gw.get("/open/before") == 200
    await gw.wait(lambda s: s.written >= 1)
    redis.stop()
    with trio.fail_after(10):  # requests are not held up by the outage
        for _ in range(5):
            assert await gw.get("/open/during") == 200
    await gw.wait(lambda s: s.dropped_sink >= 5)
    assert gw.recorder.statistics().written == 1
    again = RedisServer(port=redis.port)
    again.start()
    try:
        # Recovery needs nothing: the client's backoff window passes and batches go through.
        with trio.fail_after(15):
            while gw.recorder.statistics().written < 2:
                before = s_total(gw)
                assert await gw.get("/open/after") == 200
                await gw.wait(lambda s, n=before: s.written + s.dropped_sink > n)
        paths = [r["Path"] for r in await gw.records()]
        assert "/after" in paths
        assert "/during" not in paths
    finally:
        again.stop()


def s_total(gw: Setup) -> int:
    stats = gw.recorder.statistics()
    return stats.written + stats.dropped_sink


async def test_json_lines_sink_writes_pumps_json_names(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer
) -> None:
    out = tmp_path / "analytics.jsonl"
    gw = await start(nursery, tmp_path, redis_db, jsonl_path=str(out))
    assert await gw.get("/open/one") == 200
    assert await gw.get("/open/two") == 200
    await gw.wait(lambda s: s.written >= 2)
    gw.gateway.shutdown()  # stopping closes the sink, which writes out what its thread holds
    with trio.fail_after(10):
        await gw.stopped.wait()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["path"] for line in lines] == ["/one", "/two"]
    assert lines[0]["api_id"] == "open"
    assert lines[0]["timestamp"] == "2023-11-14T22:13:20.250000Z"
    assert await gw.records() == []  # nothing went to Redis
    assert gw.recorder.statistics().dropped_sink == 0


async def test_detailed_recording_keeps_the_raw_request_and_response(
    nursery: trio.Nursery, tmp_path: Path, redis_db: RedisServer
) -> None:
    gw = await start(nursery, tmp_path, redis_db)
    assert await gw.get("/detailed/raw?q=1", {"X-Marker": "m1"}) == 200
    assert await gw.get("/open/plain") == 200
    await gw.wait(lambda s: s.written >= 2)
    detailed, plain = await gw.records()
    raw_request = base64.b64decode(detailed["RawRequest"])
    assert raw_request.startswith(b"GET /detailed/raw?q=1 HTTP/1.1\r\n")
    assert b"X-Marker: m1\r\n" in raw_request
    raw_response = base64.b64decode(detailed["RawResponse"])
    assert raw_response.startswith(b"HTTP/1.1 200")
    assert b"content-type: application/json" in raw_response.lower()
    assert plain["RawRequest"] == plain["RawResponse"] == ""
