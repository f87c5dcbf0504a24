"""Analytics, metrics and /metrics, wired into one gateway (``_app.serve_gateway``).

The request path reaches this module in one place: each finished request passes through
the server's access-log call, :class:`ObservedAccessLog` (the access log, the metrics, the
analytics), or the metrics' own ``record`` when they are all there is to do. Hook outcomes
are counted by the pipeline runner itself (``ApiPipeline.metrics``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ._accesslog import AccessLog, NoAccessLog
from ._admin.app import secret_matches
from ._analytics.recorder import AnalyticsRecorder
from ._analytics.sinks import JsonLinesSink, RedisListSink, Sink
from ._config.model import GatewayConfig
from ._exchange import Request, Response
from ._logwriter import LogWriter
from ._metrics import GatewayMetrics, set_current_metrics
from ._server import Handler
from ._session.open import redis_client_for
from ._session.store import SessionStore
from ._session.timed import StoreTimings, timed_store

if TYPE_CHECKING:
    from ._gateway import Gateway
    from ._reload import Reloader

__all__ = ["Observability", "ObservedAccessLog", "make_observability"]

log = logging.getLogger("trio_gateway")


@attrs.define(eq=False, slots=True)
class ObservedAccessLog:
    """The server's per-request call: the access log, then metrics and analytics."""

    inner: AccessLog | None
    gateway: Gateway
    metrics: GatewayMetrics | None
    recorder: AnalyticsRecorder | None

    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        if self.inner is not None:
            self.inner.record(request, status, sent, duration)
        if self.metrics is not None:
            self.metrics.record(request, status, sent, duration)
        recorder = self.recorder
        if recorder is not None and request.api_id:
            runtime = self.gateway.snapshot.runtimes.get(request.api_id)
            if runtime is not None and not runtime.api.do_not_track:
                recorder.record(runtime.api, request, status, duration)


def _open_sink(config: GatewayConfig) -> Sink:
    analytics = config.analytics
    if analytics.sink == "jsonl":
        if analytics.jsonl_path:
            fd = os.open(analytics.jsonl_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        else:
            fd = os.dup(1)  # the writer closes its own descriptor, never stdout itself
        writer = LogWriter(fd, name="analytics")
        writer.start()
        return JsonLinesSink(writer)
    return RedisListSink(
        redis_client_for(config.storage, pool_size=2),
        multiple_keys=analytics.multiple_keys,
        key_ttl=analytics.storage_expiration_time,
    )


@attrs.define(eq=False)
class Observability:
    config: GatewayConfig
    metrics: GatewayMetrics | None
    recorder: AnalyticsRecorder | None

    def access_log(self, inner: AccessLog | None, gateway: Gateway) -> AccessLog | None:
        """The server's per-request call: the fewest layers that do what is switched on."""
        if self.metrics is not None:
            self.metrics.gateway = gateway
        if isinstance(inner, NoAccessLog):
            inner = None
        if self.recorder is None:
            if self.metrics is None:
                return inner
            if inner is None:
                return self.metrics  # the metrics alone: their own call, nothing around it
        return ObservedAccessLog(inner, gateway, self.metrics, self.recorder)

    def _serves_on_control_port(self) -> bool:
        config = self.config
        has_control = config.control_api_port is not None and config.admin_enabled
        where = config.metrics.listener
        return has_control and where != "main"

    def wrap_main(self, handler: Handler) -> Handler:
        """The main listener's handler, with /metrics in front unless it is on the control port
        (there, loopback clients only unless ``metrics.allow_remote``)."""
        if self._serves_on_control_port():
            return handler
        return self._with_metrics(handler, loopback_only=not self.config.metrics.allow_remote)

    def wrap_control(self, handler: Handler) -> Handler:
        """The control API listener's handler, with /metrics in front when it lives there."""
        if not self._serves_on_control_port():
            return handler
        return self._with_metrics(handler, loopback_only=False)

    def _with_metrics(self, handler: Handler, *, loopback_only: bool) -> Handler:
        if self.metrics is None:
            return handler
        settings = self.config.metrics
        return serve_metrics(
            self.metrics,
            handler,
            path=settings.path,
            loopback_only=loopback_only,
            secret=self.config.secret if settings.require_secret else None,
        )

    def time_store(self, store: SessionStore) -> SessionStore:
        """``store`` timed for /metrics (unchanged when metrics are off)."""
        if self.metrics is None:
            return store
        self.metrics.store = StoreTimings()
        return timed_store(store, self.metrics.store)

    def attach_reloader(self, reloader: Reloader) -> None:
        if self.metrics is not None:
            self.metrics.reloader = reloader

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The analytics writer (until cancelled; then it flushes, bounded)."""
        if self.recorder is None:
            task_status.started()
            return
        await self.recorder.run(task_status=task_status)


def make_observability(
    config: GatewayConfig, *, wall_clock: Callable[[], float] | None = None
) -> Observability:
    """Build what ``config`` turns on; metrics become this Trio run's (pipelines find them)."""
    metrics = GatewayMetrics() if config.metrics.enable else None
    set_current_metrics(metrics)
    recorder: AnalyticsRecorder | None = None
    analytics = config.analytics
    if analytics.enable:
        recorder = AnalyticsRecorder(
            sink=_open_sink(config),
            hash_keys=config.storage.hash_keys,
            max_buffered=analytics.buffer_size,
            batch_size=analytics.batch_size,
            flush_interval=analytics.flush_interval,
            shutdown_timeout=analytics.shutdown_timeout,
            plugin_timeout=analytics.plugin_timeout,
            plugin_concurrency=analytics.plugin_concurrency,
            detailed_max_bytes=analytics.detailed_max_bytes,
        )
        if wall_clock is not None:
            recorder.wall_clock = wall_clock
        if metrics is not None:
            metrics.analytics = recorder
    return Observability(config=config, metrics=metrics, recorder=recorder)


_LOOPBACK_V6 = frozenset({"::1", "::ffff:127.0.0.1"})


def is_loopback(client: str) -> bool:
    return client.startswith("127.") or client in _LOOPBACK_V6


def serve_metrics(
    metrics: GatewayMetrics,
    handler: Callable[[Request], Any],
    *,
    path: str,
    loopback_only: bool,
    secret: str | None,
) -> Callable[[Request], Any]:
    """``handler`` with ``GET <path>`` answered from ``metrics`` in front of it."""
    content_type = CONTENT_TYPE_LATEST.encode("ascii")

    # Not ``async`` (as _admin.app.mount): a request for another path gets the next handler's
    # own awaitable, without a coroutine of this front's around it.
    def handle(request: Request) -> Awaitable[Response]:
        if request.path != path or (loopback_only and not is_loopback(request.client_addr)):
            return handler(request)  # type: ignore[no-any-return]
        return answer(request)

    async def answer(request: Request) -> Response:
        if secret is not None and not secret_matches(
            secret, request.header(b"x-tyk-authorization")
        ):
            return Response(
                status=403, headers=[(b"Content-Type", b"text/plain")], body_bytes=b"Forbidden\n"
            )
        if request.method not in ("GET", "HEAD"):
            return Response(status=405, headers=[(b"Allow", b"GET, HEAD")], body_bytes=b"")
        body = metrics.render()
        return Response(status=200, headers=[(b"Content-Type", content_type)], body_bytes=body)

    return handle
