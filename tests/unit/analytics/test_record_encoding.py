"""The record as Tyk Pump reads it: msgpack keyed by Go field names, Go times as
``[seconds, nanoseconds]``, and JSON lines with Pump's JSON names."""

from __future__ import annotations

import json

import msgpack

from trio_gateway._analytics.record import (
    AnalyticsRecord,
    Latency,
    coerce_types,
    to_json,
    to_msgpack,
)


def test_msgpack_uses_go_field_names_and_go_times() -> None:
    record = AnalyticsRecord(
        method="POST",
        path="/x",
        response_code=201,
        api_key="k",
        timestamp=1_700_000_000.5,
        expireAt=1_700_000_060.0,
        latency=Latency(total=12, upstream=10, gateway=2),
        tags=["api-a"],
        track_path=True,
    )
    decoded = msgpack.unpackb(to_msgpack(record), raw=False)
    assert decoded["Method"] == "POST"
    assert decoded["ResponseCode"] == 201
    assert decoded["APIKey"] == "k"
    assert decoded["TimeStamp"] == [1_700_000_000, 500_000_000]
    assert decoded["ExpireAt"] == [1_700_000_060, 0]
    assert decoded["Latency"] == {"Total": 12, "Upstream": 10, "Gateway": 2}
    assert decoded["Tags"] == ["api-a"]
    assert decoded["TrackPath"] is True
    assert "method" not in decoded


def test_values_a_plugin_set_with_the_wrong_type_are_coerced() -> None:
    record = AnalyticsRecord(response_code="404", api_key=7, tags=["x", 3])  # type: ignore[arg-type]
    coerce_types(record)
    decoded = msgpack.unpackb(to_msgpack(record), raw=False)
    assert decoded["ResponseCode"] == 404
    assert decoded["APIKey"] == "7"
    assert decoded["Tags"] == ["x", "3"]


def test_json_lines_use_pumps_json_names() -> None:
    line = json.loads(to_json(AnalyticsRecord(api_id="a", timestamp=0.0, expireAt=60.0)))
    assert line["api_id"] == "a"
    assert line["timestamp"] == "1970-01-01T00:00:00Z"
    assert line["expireAt"] == "1970-01-01T00:01:00Z"
    assert line["latency"] == {"total": 0, "upstream": 0, "gateway": 0}
