"""Running a whole gateway: load definitions, build the snapshot, serve, shut down cleanly."""

from __future__ import annotations

import importlib.resources
import logging
import signal
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import attrs
import trio

from ._apidef.source import LoadReport, load_api_definitions
from ._config.model import GatewayConfig
from ._demo import DEMO_HOST, DEMO_PORT, demo_handler
from ._gateway import Gateway, build_snapshot, make_ssl_context
from ._server import HttpServer, ServerLimits
from ._upstream.connection import UpstreamPool

log = logging.getLogger("trio_gateway")


def bundled_apps_dir(stack: ExitStack | AsyncExitStack) -> Path:
    """The example API definitions shipped inside the package (work from an installed wheel)."""
    resource = importlib.resources.files("trio_gateway") / "_examples" / "apps"
    return stack.enter_context(importlib.resources.as_file(resource))


def log_report(report: LoadReport) -> None:
    for warning in report.warnings:
        log.warning("%s", warning)
    for error in report.errors:
        log.error("%s", error)
    log.info("loaded %d API definition(s), %d refused", len(report.apis), len(report.errors))


@attrs.define(eq=False)
class RunningGateway:
    """Handles to a gateway started by :func:`serve_gateway` (tests and embedders use them)."""

    gateway: Gateway
    server: HttpServer
    address: tuple[str, int]
    report: LoadReport
    demo_address: tuple[str, int] | None = None

    def shutdown(self) -> None:
        self.server.shutdown()


async def serve_gateway(
    config: GatewayConfig,
    *,
    apps_dir: Path | None = None,
    demo_upstream: bool = False,
    handle_signals: bool = False,
    task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled, or until SIGTERM/SIGINT (with ``handle_signals``) drains it."""
    async with AsyncExitStack() as stack:
        coprocess = config.coprocess
        if coprocess.grpc_server:
            # One gRPC channel per gateway, as in Tyk; APIs with driver "grpc" share it. It is
            # opened before the APIs load so that their drivers find it.
            from plugin_drivers.grpc.driver import open_shared_grpc_channel

            await stack.enter_async_context(
                open_shared_grpc_channel(
                    coprocess.grpc_server,
                    authority=coprocess.grpc_authority,
                    recv_max=coprocess.grpc_recv_max_size,
                    send_max=coprocess.grpc_send_max_size,
                )
            )
        folder = apps_dir or (Path(config.app_path) if config.app_path else None)
        if folder is None:
            folder = bundled_apps_dir(stack)
        report = load_api_definitions(folder)
        log_report(report)
        limits = config.limits
        pool = UpstreamPool(
            ssl_context=make_ssl_context(config),
            connect_timeout=config.upstream.connect_timeout,
            max_idle_per_host=config.upstream.max_idle_per_host,
            idle_timeout=config.upstream.idle_timeout,
        )
        snapshot = await build_snapshot(report.apis, config)
        gateway = Gateway(config=config, snapshot=snapshot, pool=pool)
        server = HttpServer(
            handler=gateway.handle,
            limits=ServerLimits(
                max_header_bytes=limits.max_header_bytes,
                max_request_body_bytes=limits.max_request_body_bytes,
                header_read_timeout=limits.header_read_timeout,
                keepalive_timeout=limits.keepalive_timeout,
                body_read_timeout=limits.body_read_timeout,
                shutdown_timeout=limits.shutdown_timeout,
            ),
        )
        try:
            async with trio.open_nursery() as nursery:
                demo_address: tuple[str, int] | None = None
                if demo_upstream:
                    demo = HttpServer(handler=demo_handler, log_requests=False)
                    demo_address = await nursery.start(demo.serve, DEMO_HOST, DEMO_PORT)
                    log.info("demo upstream on http://%s:%d", *demo_address)
                if handle_signals:
                    await nursery.start(_watch_signals, server)
                address = await nursery.start(server.serve, config.listen.host, config.listen.port)
                log.info("trio-gateway listening on http://%s:%d", *address)
                if not config.secret:
                    log.info("admin API off: no secret configured")
                task_status.started(
                    RunningGateway(gateway, server, address, report, demo_address)
                )
                # server.serve returns after a drain; then stop the helpers (demo, signals).
                await _wait_drained(server)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await pool.aclose()
                await gateway.snapshot.aclose()
            log.info("trio-gateway stopped")


async def _wait_drained(server: HttpServer) -> None:
    await server.stopped.wait()


async def _watch_signals(
    server: HttpServer, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("%s: draining (in-flight requests may finish)", signal.Signals(signum).name)
            server.shutdown()
