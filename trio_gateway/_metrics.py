"""Prometheus metrics: what the gateway counts (``GET /metrics`` is served by ``_observe``).

The exposition (text format, names, escaping) is prometheus_client's (``generate_latest`` on a
registry of our own per gateway). What the request path pays is ours: plain integer and list
updates on objects cached per API and per hook (a labelled prometheus_client child costs a lock,
a dict lookup and a per-bucket scan per observation; ours costs one ``bisect``). The collector
turns them into metric families when scraped. Gauges that other parts already keep (requests in
flight, open and idle upstream connections, plugin threads, analytics counts) are read at scrape
time, so they cost requests nothing.

Label values are bounded: API ids, hook labels and drivers come from the loaded definitions;
status codes are folded into classes (``2xx``); no path or client value is ever a label.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress, repeat
from operator import floordiv, not_, sub
from typing import TYPE_CHECKING, Any

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ._exchange import Request

if TYPE_CHECKING:
    from ._analytics.recorder import AnalyticsRecorder
    from ._gateway import Gateway
    from ._reload import Reloader
    from ._session.timed import StoreTimings

__all__ = [
    "BUCKETS",
    "HOOK_OUTCOMES",
    "GatewayMetrics",
    "HookSeries",
    "bucket_of",
    "current_metrics",
]

#: Seconds. From half a millisecond (an in-process hook) to the default request deadline.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
HOOK_OUTCOMES = ("ok", "error", "timeout", "unavailable", "cancelled", "failed_open")
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: The bucket a value falls in (``le`` semantics: a value equal to a bound counts in it).
bucket_of = bisect.bisect_left


@attrs.define(slots=True, eq=False)
class Histogram:
    """Bucket counts (``le`` semantics; the last is +Inf) and the sum, filled by :meth:`observe`."""

    counts: list[int] = attrs.field(factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bucket_of(BUCKETS, seconds)] += 1
        self.total += seconds

    def observe_all(self, values: Iterable[float]) -> None:
        """Observe every value of ``values`` (a sequence), the per-value work in C."""
        counts = self.counts
        for index, count in Counter(map(bucket_of, repeat(BUCKETS), values)).items():
            counts[index] += count
        self.total += sum(values)

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=False):
            running += count
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


#: Finished requests an API's series holds before it counts them (it counts them at the latest
#: when /metrics is read, so a scrape always sees every request that finished before it).
FOLD_EVERY = 256


@attrs.define(slots=True, eq=False)
class ApiSeries:
    """One API's request counters and latency histograms.

    A finished request is only appended to :attr:`pending` (a bounded list); :meth:`fold`
    counts a batch at a time with C-level ``map``/``Counter`` passes. Counting each request on
    its own (a status class and three histogram observations) cost the keyless proxy ~2 % of
    its CPU (docs/performance.md).
    """

    by_class: list[int] = attrs.field(factory=lambda: [0] * 5)
    total: Histogram = attrs.field(factory=Histogram)
    upstream: Histogram = attrs.field(factory=Histogram)
    gateway: Histogram = attrs.field(factory=Histogram)
    #: ``(status, duration, upstream latency or -1)`` per request not yet counted.
    pending: list[tuple[int, float, float]] = attrs.field(factory=list)

    def fold(self) -> None:
        """Count the pending requests."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        statuses, durations, upstreams = zip(*pending, strict=True)
        by_class = self.by_class
        for hundreds, count in Counter(map(floordiv, statuses, repeat(100))).items():
            if 1 <= hundreds <= 5:
                by_class[hundreds - 1] += count
        self.total.observe_all(durations)
        # Requests that reached the upstream (latency >= 0) split into upstream and gateway time;
        # the others (answered by the gateway, failed before the upstream) are gateway time.
        reached = list(map((0.0).__le__, upstreams))
        upstream = list(compress(upstreams, reached))
        gateway = list(compress(durations, map(not_, reached)))
        gateway += map(max, map(sub, compress(durations, reached), upstream), repeat(0.0))
        self.upstream.observe_all(upstream)
        self.gateway.observe_all(gateway)


@attrs.define(slots=True, eq=False)
class HookSeries:
    """One hook's latency histogram and outcome counts.

    A call that went well only appends its run time to :attr:`pending_ok`; :meth:`fold` counts
    a batch of them in C (at FOLD_EVERY, and before a scrape reads the series), as
    :class:`ApiSeries` does for requests: once per hook call, on the request path.
    """

    labels: tuple[str, str, str, str]  # api, stage, hook, driver
    latency: Histogram = attrs.field(factory=Histogram)
    outcomes: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(HOOK_OUTCOMES, 0))
    #: Run times of calls that went well, not yet counted.
    pending_ok: list[float] = attrs.field(factory=list)

    def ok(self, seconds: float) -> None:
        pending = self.pending_ok
        pending.append(seconds)
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Count the pending calls that went well."""
        pending = self.pending_ok
        if pending:
            self.pending_ok = []
            self.latency.observe_all(pending)
            self.outcomes["ok"] += len(pending)

    def failed(self, outcome: str, seconds: float | None, *, failed_open: bool) -> None:
        """``outcome`` is the failure kind (error, timeout, unavailable, cancelled); a failure
        the API's policy let through also counts as ``failed_open``."""
        if seconds is not None:
            self.latency.observe(seconds)
        self.outcomes[outcome] += 1
        if failed_open:
            self.outcomes["failed_open"] += 1


@attrs.define(eq=False)
class GatewayMetrics:
    """Everything one gateway counts; :meth:`render` is the /metrics body."""

    gateway: Gateway | None = None
    analytics: AnalyticsRecorder | None = None
    reloader: Reloader | None = None
    apis: dict[str, ApiSeries] = attrs.field(factory=dict)
    hooks: dict[tuple[str, str, str, str], HookSeries] = attrs.field(factory=dict)
    #: Session store operations (``_session/timed.py``), when the gateway times its store.
    store: StoreTimings | None = None
    registry: CollectorRegistry = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # -- the request path ----------------------------------------------------------------------

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        """Count a finished request (the server's access-log call, see ``_observe``; ``sent``
        is not counted): appended to its API's pending batch (:meth:`ApiSeries.fold`)."""
        api_id = request.api_id
        series = self.apis.get(api_id)
        if series is None:
            if not api_id:
                return  # unrouted (404 before routing, admin paths): no API label to give
            series = self.apis[api_id] = ApiSeries()
        pending = series.pending
        pending.append((status, duration, request.upstream_latency))
        if len(pending) >= FOLD_EVERY:
            series.fold()

    def hook_series(self, api: str, stage: str, hook: str, driver: str) -> HookSeries:
        key = (api, stage, hook, driver)
        series = self.hooks.get(key)
        if series is None:
            series = self.hooks[key] = HookSeries(key)
        return series

    # -- scraping ------------------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "trio_gateway_requests",
            "Requests answered, by API and status class",
            labels=["api", "status_class"],
        )
        latency = HistogramMetricFamily(
            "trio_gateway_request_duration_seconds",
            "Request latency by API: total, upstream (until the upstream's answer) and gateway",
            labels=["api", "part"],
        )
        for api_id, series in self.apis.items():
            series.fold()
            for name, count in zip(_STATUS_CLASSES, series.by_class, strict=True):
                if count:
                    requests.add_metric([api_id, name], count)
            for part, histogram in (
                ("total", series.total),
                ("upstream", series.upstream),
                ("gateway", series.gateway),
            ):
                latency.add_metric([api_id, part], histogram.buckets(), histogram.total)
        yield requests
        yield latency
        hook_latency = HistogramMetricFamily(
            "trio_gateway_hook_duration_seconds",
            "Plugin hook latency",
            labels=["api", "stage", "hook", "driver"],
        )
        hook_outcomes = CounterMetricFamily(
            "trio_gateway_hook_outcomes",
            "Plugin hook calls by outcome (failed_open: a failure the policy let through)",
            labels=["api", "stage", "hook", "driver", "outcome"],
        )
        for hook in self.hooks.values():
            hook.fold()
            hook_latency.add_metric(list(hook.labels), hook.latency.buckets(), hook.latency.total)
            for outcome, count in hook.outcomes.items():
                hook_outcomes.add_metric([*hook.labels, outcome], count)
        yield hook_latency
        yield hook_outcomes
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        gateway = self.gateway
        if gateway is not None:
            snapshot = gateway.snapshot
            yield GaugeMetricFamily(
                "trio_gateway_requests_in_flight",
                "Requests being handled",
                value=snapshot.in_flight,
            )
            pool = gateway.pool
            idle = sum(len(conns) for conns in pool._idle.values())
            yield GaugeMetricFamily(
                "trio_gateway_upstream_connections_open",
                "Upstream connections open (in use or idle)",
                value=pool.open_count.value,
            )
            yield GaugeMetricFamily(
                "trio_gateway_upstream_connections_idle",
                "Idle keep-alive upstream connections",
                value=idle,
            )
            yield CounterMetricFamily(
                "trio_gateway_upstream_connections_opened",
                "Upstream connections opened",
                value=sum(pool.opened.values()),
            )
            yield CounterMetricFamily(
                "trio_gateway_upstream_connect_errors",
                "Upstream connection attempts that failed or timed out",
                value=pool.connect_errors,
            )
            yield from _hook_threads(snapshot.runtimes)
            yield _grpc_channel_states(snapshot.runtimes.values())
        if self.store is not None:
            store_latency = HistogramMetricFamily(
                "trio_gateway_session_store_duration_seconds",
                "Session store operation latency",
                labels=["operation"],
            )
            store_errors = CounterMetricFamily(
                "trio_gateway_session_store_errors",
                "Session store operations that failed (store unreachable)",
                labels=["operation"],
            )
            self.store.fold()
            for operation, histogram in self.store.latency.items():
                store_latency.add_metric([operation], histogram.buckets(), histogram.total)
                store_errors.add_metric([operation], self.store.errors[operation])
            yield store_latency
            yield store_errors
        analytics = self.analytics
        if analytics is not None:
            stats = analytics.statistics()
            yield CounterMetricFamily(
                "trio_gateway_analytics_records_written",
                "Analytics records stored",
                value=stats.written,
            )
            dropped = CounterMetricFamily(
                "trio_gateway_analytics_records_dropped",
                "Analytics records dropped (buffer full, or the sink failed)",
                labels=["reason"],
            )
            dropped.add_metric(["buffer_full"], stats.dropped_full)
            dropped.add_metric(["sink"], stats.dropped_sink)
            dropped.add_metric(["plugin"], stats.plugin_dropped)
            yield dropped
            yield GaugeMetricFamily(
                "trio_gateway_analytics_records_buffered",
                "Analytics records waiting",
                value=stats.buffered,
            )
            batches = CounterMetricFamily(
                "trio_gateway_analytics_plugin_batches",
                "Analytics plugin batches by outcome",
                labels=["outcome"],
            )
            for outcome, count in stats.plugin_batches.items():
                batches.add_metric([outcome], count)
            yield batches
        if self.reloader is not None:
            reloads = CounterMetricFamily(
                "trio_gateway_reloads", "Reloads, by result", labels=["result"]
            )
            reloads.add_metric(["ok"], self.reloader.generation)
            reloads.add_metric(["failed"], self.reloader.failures)
            yield reloads


def _hook_threads(runtimes: Mapping[str, Any]) -> Iterator[Metric]:
    """Sync plugins' worker threads abandoned since load and still alive, per plugin, read
    from the drivers that keep them (the python driver's ``threads_by_plugin``)."""
    labels = ["api", "hook", "driver"]
    abandoned = GaugeMetricFamily(
        "trio_gateway_hook_threads_abandoned",
        "Plugin threads abandoned at their deadline since the API loaded",
        labels=labels,
    )
    alive = GaugeMetricFamily(
        "trio_gateway_hook_threads_alive",
        "Plugin worker threads still running (working or abandoned)",
        labels=labels,
    )
    for api_id, runtime in runtimes.items():
        pipeline = runtime.pipeline
        stats = getattr(getattr(pipeline, "driver", None), "statistics", None)
        if not callable(stats):
            continue
        by_plugin = getattr(stats(), "threads_by_plugin", None)
        if not isinstance(by_plugin, dict):
            continue
        driver_name = str(pipeline.api.middleware.driver)
        for hook_label, threads in by_plugin.items():
            values = [api_id, str(hook_label), driver_name]
            abandoned.add_metric(values, getattr(threads, "abandoned", 0))
            alive.add_metric(values, getattr(threads, "alive", 0))
    yield abandoned
    yield alive


def _grpc_channel_states(runtimes: Iterable[Any]) -> Metric:
    """1 for each gRPC channel's current state (``connecting``, ``ready``, ``down``,
    ``closed``), by target, read from the APIs' gRPC drivers."""
    family = GaugeMetricFamily(
        "trio_gateway_grpc_channel_state",
        "gRPC plugin channel state (1 for the current one)",
        labels=["target", "state"],
    )
    seen: set[int] = set()
    for runtime in runtimes:
        channel = getattr(getattr(runtime.pipeline, "driver", None), "channel", None)
        state = getattr(channel, "state", None)
        if channel is None or state is None or id(channel) in seen:
            continue
        seen.add(id(channel))
        target = getattr(channel, "target", None)
        where = getattr(target, "path", "") or (
            f"{getattr(target, 'host', '')}:{getattr(target, 'port', '')}"
        )
        for candidate in type(state):
            family.add_metric([where, str(candidate.value)], 1.0 if candidate is state else 0.0)
    return family


@attrs.define(eq=False)
class _Collector:
    metrics: GatewayMetrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.collect()


_CURRENT: trio.lowlevel.RunVar[GatewayMetrics | None] = trio.lowlevel.RunVar(
    "trio_gateway_metrics", default=None
)


def current_metrics() -> GatewayMetrics | None:
    """The metrics of the gateway running in this Trio run (None when metrics are off)."""
    return _CURRENT.get()


def set_current_metrics(metrics: GatewayMetrics | None) -> None:
    _CURRENT.set(metrics)
