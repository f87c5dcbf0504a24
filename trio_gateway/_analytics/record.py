"""The analytics record, as Tyk Pump reads it.

:class:`AnalyticsRecord` carries Tyk Pump's ``AnalyticsRecord`` fields under their JSON names
(``api_key``, ``response_code``, ``expireAt`` ...): that is what analytics plugins see and what the
JSON-lines sink writes. :func:`to_msgpack` writes the record the way Tyk's gateway does before it
pushes it to Redis: a MessagePack map keyed by the *Go field names* (``APIKey``,
``ResponseCode``; the Go encoder ignores ``json`` tags), with times as Go's
``gopkg.in/vmihailenco/msgpack.v2`` writes ``time.Time``: a two-element array
``[unix seconds, nanoseconds]``. Sources: docs/observability.md.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import msgpack

__all__ = [
    "AnalyticsRecord",
    "ApiEncoder",
    "Latency",
    "NetworkStats",
    "coerce_types",
    "to_go_map",
    "to_json",
    "to_msgpack",
]


@attrs.define(slots=True, eq=False)
class Latency:
    """Milliseconds: the whole request, the upstream's part, and the gateway's own."""

    total: int = 0
    upstream: int = 0
    gateway: int = 0


@attrs.define(slots=True, eq=False)
class NetworkStats:
    open_connections: int = 0
    closed_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@attrs.define(slots=True, eq=False)
class AnalyticsRecord:
    """One request as Tyk Pump stores it. Attribute names are Pump's JSON names.

    ``timestamp`` and ``expireAt`` are Unix times in seconds (floats); the encoders turn them into
    what Pump expects.
    """

    method: str = ""
    host: str = ""
    path: str = ""
    raw_path: str = ""
    content_length: int = 0
    user_agent: str = ""
    day: int = 0
    month: int = 0
    year: int = 0
    hour: int = 0
    response_code: int = 0
    api_key: str = ""
    timestamp: float = 0.0
    api_version: str = ""
    api_name: str = ""
    api_id: str = ""
    org_id: str = ""
    oauth_id: str = ""
    request_time: int = 0
    raw_request: str = ""
    raw_response: str = ""
    ip_address: str = ""
    network: NetworkStats = attrs.field(factory=NetworkStats)
    latency: Latency = attrs.field(factory=Latency)
    tags: list[str] = attrs.field(factory=list)
    alias: str = ""
    track_path: bool = False
    expireAt: float = 0.0
    api_schema: str = ""
    original_path: str = ""
    listen_path: str = ""


def _go_time(seconds: float) -> list[int]:
    """``time.Time`` as vmihailenco/msgpack.v2 encodes it: ``[unix seconds, nanoseconds]``."""
    whole = math.floor(seconds)
    return [whole, round((seconds - whole) * 1e9) % 1_000_000_000]


#: Go's zero ``GeoData`` (no GeoIP database here): nested structs keyed by Go field names.
_EMPTY_GEO: dict[str, Any] = {
    "Country": {"ISOCode": ""},
    "City": {"GeoNameID": 0, "Names": None},
    "Location": {"Latitude": 0.0, "Longitude": 0.0, "TimeZone": ""},
}


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def coerce_types(record: AnalyticsRecord) -> None:
    """Give every field the type Pump decodes it as, whatever a plugin put there (a string
    for a string field, an int for an int field, a list of strings for tags...)."""
    for field in attrs.fields(AnalyticsRecord):
        value = getattr(record, field.name)
        if field.type in ("str", str):
            setattr(record, field.name, _str(value))
        elif field.type in ("int", int):
            setattr(record, field.name, _int(value))
        elif field.type in ("float", float):
            setattr(record, field.name, _float(value))
        elif field.type in ("bool", bool):
            setattr(record, field.name, bool(value))
    tags = record.tags
    record.tags = [_str(tag) for tag in tags] if isinstance(tags, list | tuple) else []
    # A plugin may have replaced the nested objects too (the annotations do not bind it).
    latency: object = record.latency
    if not isinstance(latency, Latency):
        latency = record.latency = Latency()
    latency.total, latency.upstream = _int(latency.total), _int(latency.upstream)
    latency.gateway = _int(latency.gateway)
    network: object = record.network
    if not isinstance(network, NetworkStats):
        network = record.network = NetworkStats()
    network.open_connections = _int(network.open_connections)
    network.closed_connections = _int(network.closed_connections)
    network.bytes_in, network.bytes_out = _int(network.bytes_in), _int(network.bytes_out)


def _str(value: object) -> str:
    # A plugin may have put anything in a field; what goes on the wire has the Go type.
    return value if isinstance(value, str) else str(value)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0


def _per_record(r: AnalyticsRecord) -> dict[str, Any]:
    """The Go-named fields that differ from one record of an API to the next."""
    latency = r.latency
    return {
        "Method": r.method,
        "Host": r.host,
        "Path": r.path,
        "RawPath": r.raw_path,
        "ContentLength": r.content_length,
        "UserAgent": r.user_agent,
        "Day": r.day,
        "Month": r.month,
        "Year": r.year,
        "Hour": r.hour,
        "ResponseCode": r.response_code,
        "APIKey": r.api_key,
        "TimeStamp": _go_time(r.timestamp),
        "RequestTime": r.request_time,
        "IPAddress": r.ip_address,
        "Latency": {
            "Total": latency.total,
            "Upstream": latency.upstream,
            "Gateway": latency.gateway,
        },
        "Tags": r.tags or None,
        "ExpireAt": _go_time(r.expireAt),
        "OriginalPath": r.original_path,
        "RawRequest": r.raw_request,
        "RawResponse": r.raw_response,
        "Alias": r.alias,
    }


def _per_api(r: AnalyticsRecord) -> dict[str, Any]:
    """The Go-named fields every record of one API shares (unless a plugin changes them)."""
    network = r.network
    return {
        "APIVersion": r.api_version,
        "APIName": r.api_name,
        "APIID": r.api_id,
        "OrgID": r.org_id,
        "OauthID": r.oauth_id,
        "Geo": _EMPTY_GEO,
        "Network": {
            "OpenConnections": network.open_connections,
            "ClosedConnection": network.closed_connections,
            "BytesIn": network.bytes_in,
            "BytesOut": network.bytes_out,
        },
        "TrackPath": r.track_path,
        "ApiSchema": r.api_schema,
        "ListenPath": r.listen_path,
    }


def to_go_map(r: AnalyticsRecord) -> dict[str, Any]:
    """The record as Tyk's Go encoder lays it out: a map keyed by the Go field names (Go's
    decoder matches keys by name, so their order does not matter).

    The values must have their Go types: records a plugin has seen go through
    :func:`coerce_types` first."""
    return {**_per_record(r), **_per_api(r)}


_packer = msgpack.Packer(use_bin_type=False)


def _map_header(size: int) -> bytes:
    return bytes((0x80 | size,)) if size < 16 else b"\xde" + size.to_bytes(2, "big")


class ApiEncoder:
    """:func:`to_msgpack` for records no plugin has seen, with the per-API fields packed once.

    Packing the ~20 fields that vary and splicing in the pre-packed rest halves the encoding
    cost, which the writer pays per record on the event loop's thread."""

    def __init__(self, sample: AnalyticsRecord) -> None:
        constant = _per_api(sample)
        self._constant = b"".join(_packer.pack(k) + _packer.pack(v) for k, v in constant.items())
        self._count = len(constant)

    def encode(self, r: AnalyticsRecord) -> bytes:
        variable = _per_record(r)
        body: bytes = _packer.pack(variable)
        size = len(variable)
        skip = 1 if size < 16 else 3  # the map header msgpack wrote for ``variable`` alone
        return _map_header(size + self._count) + self._constant + body[skip:]


def to_msgpack(record: AnalyticsRecord) -> bytes:
    """The bytes Tyk pushes to Redis for this record (Go strings are msgpack raw strings)."""
    packed: bytes = _packer.pack(to_go_map(record))
    return packed


def _json_time(seconds: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(float(seconds), tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def to_json(record: AnalyticsRecord) -> str:
    """One JSON line with Pump's JSON names (times as RFC 3339, as Go's ``json`` writes them)."""
    data = attrs.asdict(record)
    data["timestamp"] = _json_time(record.timestamp)
    data["expireAt"] = _json_time(record.expireAt)
    return json.dumps(data, separators=(",", ":"), default=str)
