"""Running a whole gateway: load definitions, build the snapshot, serve, shut down cleanly."""

from __future__ import annotations

import importlib.resources
import logging
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack, ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from ._accesslog import AccessLog, BufferedAccessLog, LoggingAccessLog
from ._admin.control import ControlPlane, make_control_plane
from ._apidef.source import LoadReport, load_api_definitions
from ._auth import AuthServices
from ._config.model import DEMO_PORT, GatewayConfig
from ._demo import DEMO_HOST, demo_handler
from ._gateway import Gateway, build_snapshot, driver_settings, make_ssl_context
from ._listen import GATEWAY_LISTENER, start_listening
from ._logsummary import run_failure_log_sweeper
from ._observe import make_observability
from ._reload import Reloader
from ._server import HttpServer, ServerLimits
from ._session.open import open_session_store
from ._session.store import SessionStore
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
    #: Reloads, the admin API and its own listener (``control.admin_address``).
    control: ControlPlane | None = None

    def shutdown(self) -> None:
        self.server.shutdown()


async def serve_gateway(
    config: GatewayConfig,
    *,
    apps_dir: Path | None = None,
    demo_upstream: bool = False,
    handle_signals: bool = False,
    access_log: AccessLog | None = None,
    session_store: SessionStore | None = None,
    wall_clock: Callable[[], float] = time.time,
    watch_interval: float | None = None,
    task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled, or until SIGTERM/SIGINT (with ``handle_signals``) drains it.

    The session store is opened from ``config.storage`` unless ``session_store`` is given (the
    caller then owns it); ``wall_clock`` is the time keys expire and limits count by (tests
    inject their own). ``watch_interval`` set: poll the APIs folder that often and reload
    when it changes (``--watch``).
    """
    async with AsyncExitStack() as stack:
        # Resources shared by every API's driver (one gRPC channel per gateway, as in Tyk),
        # opened before the APIs load so that their drivers get them; only when configured, so
        # a gateway without gRPC plugins never imports the drivers.
        driver_shared: Mapping[str, Any] = {}
        if config.coprocess.grpc_server or config.coprocess.enable:
            from plugin_drivers import open_shared

            driver_shared = await stack.enter_async_context(
                open_shared(driver_settings(config))
            )
        folder = apps_dir or (Path(config.app_path) if config.app_path else None)
        demo_address: tuple[str, int] | None = None
        if demo_upstream:
            demo_address = await _start_demo(stack, config)
        if folder is None:
            folder = bundled_apps_dir(stack)
            # Workers other than the one running the demo follow its configured address (a
            # port 0 there is known only to that worker).
            target = demo_address or (config.demo_listen.host, config.demo_listen.port)
            if target != (DEMO_HOST, DEMO_PORT) and target[1] != 0:
                folder = _retarget_bundled_apps(stack, folder, target)
        report = load_api_definitions(folder)
        log_report(report)
        limits = config.limits
        pool = UpstreamPool(
            ssl_context=make_ssl_context(config),
            connect_timeout=config.upstream.connect_timeout,
            max_idle_per_host=config.upstream.max_idle_per_host,
            idle_timeout=config.upstream.idle_timeout,
        )
        if session_store is None:
            session_store = await stack.enter_async_context(open_session_store(config.storage))
        # Before the snapshot: its pipelines count hook outcomes into these metrics.
        observability = make_observability(config, wall_clock=wall_clock)
        auth = AuthServices(
            store=observability.time_store(session_store),
            clock=wall_clock,
            headers_from_rate_limit=config.rate_limit_response_headers == "rate_limits",
        )
        snapshot = await build_snapshot(
            report.apis, config, auth=auth, driver_shared=driver_shared
        )
        gateway = Gateway(
            config=config, snapshot=snapshot, pool=pool, auth=auth, driver_shared=driver_shared
        )
        server_limits = ServerLimits(
            max_header_bytes=limits.max_header_bytes,
            max_request_body_bytes=limits.max_request_body_bytes,
            header_read_timeout=limits.header_read_timeout,
            keepalive_timeout=limits.keepalive_timeout,
            body_read_timeout=limits.body_read_timeout,
            send_timeout=limits.send_timeout,
            shutdown_timeout=limits.shutdown_timeout,
        )
        control = make_control_plane(
            config,
            gateway,
            session_store,
            folder=folder,
            writable=apps_dir is not None or config.app_path is not None,
            limits=server_limits,
            ready=lambda: not server.draining,
            now=wall_clock,
        )
        control.wrap_admin = observability.wrap_control
        observability.attach_reloader(control.reloader)
        server = HttpServer(
            handler=observability.wrap_main(control.main_handler(gateway.handle)),
            access_log=observability.access_log(
                access_log if access_log is not None else LoggingAccessLog(), gateway
            ),
            limits=server_limits,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(observability.run)  # the analytics writer, if on
                await nursery.start(partial(control.serve, watch_interval=watch_interval))
                if handle_signals:
                    await nursery.start(_watch_signals, server, control.reloader)
                if isinstance(access_log, BufferedAccessLog):
                    nursery.start_soon(access_log.run_flusher)
                # Reports the counts of repeated failures once they stop (_logsummary.py).
                nursery.start_soon(run_failure_log_sweeper)
                address = await start_listening(
                    nursery,
                    server.serve,
                    config.listen.host,
                    config.listen.port,
                    GATEWAY_LISTENER,
                )
                log.info("trio-gateway listening on http://%s:%d", *address)
                if not config.secret:
                    log.info("admin API off: no secret configured")
                task_status.started(
                    RunningGateway(gateway, server, address, report, demo_address, control)
                )
                # server.serve returns after a drain; then stop the helpers (demo, signals).
                await _wait_drained(server)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await pool.aclose()
                await gateway.snapshot.aclose()
            log.info("trio-gateway stopped")


async def _start_demo(stack: AsyncExitStack, config: GatewayConfig) -> tuple[str, int]:
    """Start the demo upstream in a nursery the stack owns (it stops when the gateway does).

    It starts before the API definitions load, so that the bundled ones can be pointed at the
    address it got (port 0 picks a free one).
    """
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)  # unwound before the nursery waits for it
    demo = HttpServer(handler=demo_handler, log_requests=False)
    listen = config.demo_listen
    address = await start_listening(
        nursery,
        demo.serve,
        listen.host,
        listen.port,
        "the demo upstream (demo_listen; --demo-listen)",
    )
    log.info("demo upstream on http://%s:%d", *address)
    return address


def _retarget_bundled_apps(
    stack: ExitStack | AsyncExitStack, folder: Path, address: tuple[str, int]
) -> Path:
    """A copy of the bundled example APIs pointed at the demo upstream's actual address.

    A copy on disk rather than edited definitions, so that a reload reads the same targets.
    """
    copy = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trio-gateway-demo-")))
    host, port = address
    shown = f"[{host}]" if ":" in host else host
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        text = text.replace(f"http://{DEMO_HOST}:{DEMO_PORT}", f"http://{shown}:{port}")
        (copy / path.name).write_text(text, encoding="utf-8")
    return copy


async def _wait_drained(server: HttpServer) -> None:
    await server.stopped.wait()


async def _watch_signals(
    server: HttpServer,
    reloader: Reloader,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading API definitions")
                reloader.request_reload()
                continue
            log.info("%s: draining (in-flight requests may finish)", signal.Signals(signum).name)
            server.shutdown()
