"""From finished requests to stored analytics records, off the request's critical path.

The request path pays for one bounded list append (:meth:`AnalyticsRecorder.record`); a full
buffer drops the hit and counts it. One writer task (:meth:`AnalyticsRecorder.run`, in the
gateway's root nursery) wakes every ``flush_interval`` seconds, or at once when a batch's worth
is waiting (as Tyk flushes every 200 ms or when a buffer fills), builds the records, runs the
APIs' analytics plugins over them, and hands the batch to the sink. A failed write drops the
batch and counts it: a Redis outage never slows a request, and recovery needs nothing (the next
batch tries again; the Redis client backs off by itself). Cancelling the writer flushes what is
buffered, bounded by ``shutdown_timeout``.
"""

from __future__ import annotations

import logging
import time
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from .._exchange import Headers, Request
from .._logsummary import FailureLog
from .._session.store import hash_key
from .plugins import AnalyticsPlugin, AnalyticsPluginError, load_analytics_plugin, run_plugin
from .record import AnalyticsRecord, ApiEncoder, Latency, coerce_types
from .sinks import Sink, SinkError

if TYPE_CHECKING:
    from plugin_drivers.python.namespace import ModuleNamespace

    from .._apidef.model import ApiDefinition

__all__ = ["AnalyticsRecorder", "AnalyticsStatistics", "Hit"]

log = logging.getLogger("trio_gateway.analytics")
_sink_failures = FailureLog(log)

#: What Tyk records for an API without versions.
_API_VERSION = "Non Versioned"
#: Go's ``SetExpiry(0)``: records of APIs without ``expire_analytics_after`` live 100 years.
_HUNDRED_YEARS = 100 * 365 * 24 * 3600

#: What the request path hands over: the API, then the request's method, path, headers,
#: Content-Length, client address, key, key alias and upstream seconds, then its status, its
#: duration (seconds) and the wall-clock time it finished. A tuple: the cheapest thing to build
#: per request; it holds no reference to the request or the response, so a waiting record never
#: keeps a body alive.
#: The last element is the raw request and response for detailed recording (else None).
Hit = tuple[
    "ApiDefinition",
    str,
    str,
    Headers,
    int | None,
    str,
    str,
    str,
    float,
    int,
    float,
    float,
    "tuple[bytes, bytes] | None",
]


def _wire_head(start: bytes, headers: Headers) -> bytes:
    return start + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"


def raw_exchange(request: Request, status: int, limit: int) -> tuple[bytes, bytes]:
    """The request and the response in HTTP/1.1 wire form for a detailed record, each cut at
    ``limit`` bytes (as Pump trims raw data): heads as they were, bodies only when the gateway
    held them in memory (a streamed body passed through unread)."""
    target = request.path + ("?" + request.query if request.query else "")
    start = f"{request.method} {target} HTTP/{request.http_version}\r\n".encode("latin-1")
    raw_request = _wire_head(start, request.headers) + (request.body_bytes or b"")[:limit]
    response = request.response
    if response is None:
        raw_response = f"HTTP/1.1 {status}\r\n\r\n".encode("ascii")
    else:
        reason = b" " + response.reason if response.reason else b""
        head = _wire_head(b"HTTP/1.1 %d%s\r\n" % (response.status, reason), response.headers)
        raw_response = head + (response.body_bytes or b"")[:limit]
    return raw_request[:limit], raw_response[:limit]


def release_namespaces(namespaces: dict[str, ModuleNamespace]) -> None:
    for namespace in namespaces.values():
        namespace.release()
    namespaces.clear()


@attrs.frozen
class AnalyticsStatistics:
    buffered: int
    written: int
    #: Dropped because the buffer was full, or the sink failed.
    dropped_full: int
    dropped_sink: int
    #: Records analytics plugins chose to drop (returned False).
    plugin_dropped: int
    #: Plugin batches by outcome ("ok", "error", "timeout").
    plugin_batches: Mapping[str, int]


@attrs.define(eq=False)
class _ApiPlan:
    """What every record of one API shares, worked out once per API definition."""

    api: ApiDefinition
    listen_path: str
    tags: tuple[str, ...]
    expire_after: int
    plugin: AnalyticsPlugin | None
    plugin_timeout: float
    #: Tyk's msgpack with this API's constant fields packed once.
    encoder: ApiEncoder
    #: The module namespaces the plugin was imported in (released when the plan is replaced).
    namespaces: dict[str, ModuleNamespace]


@attrs.define(eq=False)
class AnalyticsRecorder:
    sink: Sink
    hash_keys: bool = False
    #: Hits waiting at most (beyond: dropped and counted).
    max_buffered: int = 10_000
    #: A batch this large wakes the writer before the interval is up.
    batch_size: int = 1000
    flush_interval: float = 0.2
    shutdown_timeout: float = 2.0
    plugin_timeout: float = 1.0
    plugin_concurrency: int = 4
    #: Bound on each of a detailed record's raw request and raw response.
    detailed_max_bytes: int = 65536
    #: Seconds since the epoch (tests inject their own).
    wall_clock: Callable[[], float] = time.time
    _pending: list[Hit] = attrs.field(init=False, factory=list)
    _wakeup: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Set (and replaced) after every batch the writer finished with (tests wait on it).
    _progress: trio.Event = attrs.field(init=False, factory=trio.Event)
    _plans: dict[str, _ApiPlan] = attrs.field(init=False, factory=dict)
    _moment_second: int = attrs.field(init=False, default=-1)
    _moment: time.struct_time = attrs.field(init=False, default=time.localtime(0))
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    written: int = attrs.field(init=False, default=0)
    dropped_full: int = attrs.field(init=False, default=0)
    dropped_sink: int = attrs.field(init=False, default=0)
    plugin_dropped: int = attrs.field(init=False, default=0)
    plugin_batches: dict[str, int] = attrs.field(
        init=False, factory=lambda: {"ok": 0, "error": 0, "timeout": 0}
    )

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.plugin_concurrency)

    # -- the request path ----------------------------------------------------------------------

    def record(self, api: ApiDefinition, request: Request, status: int, duration: float) -> None:
        """Queue one finished request (never blocks; a full buffer drops it, counted)."""
        pending = self._pending
        if len(pending) >= self.max_buffered:
            self.dropped_full += 1
            return
        pending.append(
            (
                api,
                request.method,
                request.path,
                request.headers,
                request.content_length,
                request.client_addr,
                request.api_key,
                request.key_alias,
                request.upstream_latency,
                status,
                duration,
                self.wall_clock(),
                raw_exchange(request, status, self.detailed_max_bytes)
                if request.record_detail
                else None,
            )
        )
        if len(pending) == self.batch_size:
            self._wakeup.set()

    async def wait_until(self, predicate: Callable[[AnalyticsStatistics], bool]) -> None:
        """Return once ``predicate(statistics())`` holds (re-checked after each batch; the
        caller bounds the wait)."""
        while not predicate(self.statistics()):
            await self._progress.wait()

    def statistics(self) -> AnalyticsStatistics:
        return AnalyticsStatistics(
            buffered=len(self._pending),
            written=self.written,
            dropped_full=self.dropped_full,
            dropped_sink=self.dropped_sink,
            plugin_dropped=self.plugin_dropped,
            plugin_batches=dict(self.plugin_batches),
        )

    # -- the writer task -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; then flush what is left, bounded in time."""
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.flush_interval):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self.flush()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.shutdown_timeout
                await self.flush()
            if scope.cancelled_caught:
                lost = len(self._pending)
                self._pending.clear()
                self.dropped_sink += lost
                log.warning("analytics: shutdown flush timed out; %d record(s) dropped", lost)
            await self.sink.aclose()
            for plan in self._plans.values():
                release_namespaces(plan.namespaces)

    async def flush(self) -> None:
        """Build, filter and store everything buffered now."""
        while self._pending:
            hits, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            try:
                records = await self._build_batch(hits)
            except trio.Cancelled:
                self.dropped_sink += len(hits)
                raise
            try:
                await self.sink.write(records)
            except SinkError as exc:
                self.dropped_sink += len(records)
                _sink_failures.warning(("sink",), "analytics: records dropped", exc)
            else:
                self.written += len(records)
            self._progress.set()
            self._progress = trio.Event()

    async def _build_batch(self, hits: Sequence[Hit]) -> list[bytes]:
        """The batch's records, built, run through the plugins and encoded for the sink."""
        by_api: dict[str, list[Hit]] = {}
        for hit in hits:
            by_api.setdefault(hit[0].api_id, []).append(hit)
        out: list[bytes] = []
        plugged: list[tuple[_ApiPlan, list[Hit]]] = []
        encode = self.sink.encode
        for api_hits in by_api.values():
            plan = await self._plan_for(api_hits[-1][0])
            if plan.plugin is None:
                if self.sink.msgpack:
                    encode_fast = plan.encoder.encode
                    out.extend(encode_fast(self._build(plan, hit)) for hit in api_hits)
                else:
                    out.extend(encode(self._build(plan, hit)) for hit in api_hits)
            else:
                plugged.append((plan, api_hits))
        if plugged:
            results: list[list[AnalyticsRecord]] = []

            async def one(plan: _ApiPlan, api_hits: list[Hit]) -> None:
                assert plan.plugin is not None
                records = [self._build(plan, hit) for hit in api_hits]
                outcome = await run_plugin(
                    plan.plugin,
                    plan.api.api_id,
                    records,
                    deadline=plan.plugin_timeout,
                    limiter=self._limiter,
                )
                self.plugin_batches[outcome.outcome] += 1
                if outcome.records is None:
                    # The plugin may have changed them part way (or still be at it in a thread):
                    # store records built afresh.
                    results.append([self._build(plan, hit) for hit in api_hits])
                else:
                    self.plugin_dropped += len(records) - len(outcome.records)
                    for record in outcome.records:
                        coerce_types(record)
                    results.append(outcome.records)

            async with trio.open_nursery() as nursery:
                for plan, api_hits in plugged:
                    nursery.start_soon(one, plan, api_hits)
            for kept in results:
                out.extend(encode(record) for record in kept)
        return out

    async def _plan_for(self, api: ApiDefinition) -> _ApiPlan:
        plan = self._plans.get(api.api_id)
        if plan is not None and plan.api is api:
            return plan
        if plan is not None:
            release_namespaces(plan.namespaces)  # the API was reloaded: drop the old modules
        plugin: AnalyticsPlugin | None = None
        namespaces: dict[str, ModuleNamespace] = {}
        spec = api.analytics_plugin
        if spec is not None:
            try:
                plugin = await trio.to_thread.run_sync(
                    load_analytics_plugin, spec.path, spec.function_name, api.source, namespaces
                )
            except AnalyticsPluginError as exc:
                log.error("API %s: %s; its records are stored without it", api.api_id, exc)
        plan = _ApiPlan(
            api=api,
            listen_path=api.listen_path,
            tags=api.tags,
            expire_after=api.expire_analytics_after,
            plugin=plugin,
            plugin_timeout=(
                spec.timeout if spec is not None and spec.timeout else self.plugin_timeout
            ),
            encoder=ApiEncoder(
                AnalyticsRecord(
                    api_version=_API_VERSION,
                    api_name=api.name,
                    api_id=api.api_id,
                    org_id=api.org_id,
                    listen_path=api.listen_path,
                )
            ),
            namespaces=namespaces,
        )
        self._plans[api.api_id] = plan
        return plan

    def _build(self, plan: _ApiPlan, hit: Hit) -> AnalyticsRecord:
        (
            api,
            method,
            path,
            headers,
            content_length,
            client,
            key,
            alias,
            upstream_seconds,
            status,
            duration,
            now,
            raw,
        ) = hit
        second = int(now)
        if second != self._moment_second:  # one localtime() per second, not per record
            self._moment_second, self._moment = second, time.localtime(second)
        moment = self._moment
        if key and self.hash_keys:
            key = hash_key(key)
        tags = list(plan.tags)
        if key:
            tags.append("key-" + key)
        if api.org_id:
            tags.append("org-" + api.org_id)
        tags.append("api-" + api.api_id)
        total = int(duration * 1000)
        upstream = int(upstream_seconds * 1000) if upstream_seconds > 0 else 0
        original = path
        if api.strip_listen_path and plan.listen_path and plan.listen_path != "/":
            prefix = plan.listen_path.rstrip("/")
            if path.startswith(prefix):
                path = path[len(prefix) :] or "/"
        user_agent = host = None
        for name, value in headers:
            lowered = name.lower()
            if user_agent is None and lowered == b"user-agent":
                user_agent = value
            elif host is None and lowered == b"host":
                host = value
        return AnalyticsRecord(
            method=method,
            host=host.decode("latin-1") if host else "",
            path=path,
            raw_path=path,
            content_length=content_length or 0,
            user_agent=user_agent.decode("latin-1") if user_agent else "",
            day=moment.tm_mday,
            month=moment.tm_mon,
            year=moment.tm_year,
            hour=moment.tm_hour,
            response_code=status,
            api_key=key,
            timestamp=now,
            api_version=_API_VERSION,
            api_name=api.name,
            api_id=api.api_id,
            org_id=api.org_id,
            request_time=total,
            alias=alias,
            raw_request=b64encode(raw[0]).decode("ascii") if raw else "",
            raw_response=b64encode(raw[1]).decode("ascii") if raw else "",
            ip_address=client,
            latency=Latency(total=total, upstream=upstream, gateway=max(total - upstream, 0)),
            tags=tags,
            expireAt=now + (plan.expire_after if plan.expire_after > 0 else _HUNDRED_YEARS),
            original_path=original,
            listen_path=plan.listen_path,
        )
