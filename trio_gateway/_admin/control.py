"""Assembles the control plane of one gateway: reloader, group reload, admin front, listeners.

``serve_gateway`` builds one :class:`ControlPlane` and runs :meth:`ControlPlane.serve` in its root
nursery, which then owns every task here: the reloader (and the tasks retiring old snapshots),
the group-reload subscriber, the ``--watch`` poller and the ``control_api_port`` listener.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import trio

from .._apidef.model import ApiDefinition
from .._config.model import GatewayConfig
from .._exchange import Request, Response
from .._gateway import ApiSnapshot, Gateway, build_snapshot
from .._listen import start_listening
from .._reload import Reloader, watch_folder
from .._server import Handler, HttpServer, ServerLimits
from .._session.store import SessionStore
from .app import AdminFront, mount
from .group import GroupReload, LocalGroupReload, RedisGroupReload
from .routes import AdminRoutes, status_message

__all__ = ["ControlPlane", "make_control_plane"]

log = logging.getLogger("trio_gateway")


@attrs.define(eq=False)
class ControlPlane:
    config: GatewayConfig
    reloader: Reloader
    group: GroupReload
    front: AdminFront
    limits: ServerLimits
    #: Set once the ``control_api_port`` listener is up.
    admin_address: tuple[str, int] | None = None
    admin_server: HttpServer | None = None
    #: Wraps the control port's handler (the gateway puts /metrics there: _observe.py).
    wrap_admin: Callable[[Handler], Handler] = lambda handler: handler

    def main_handler(self, gateway_handler: Handler) -> Handler:
        """The main listener's handler: health (and, without ``control_api_port``, the admin
        API) matched before API routing."""
        if self.config.control_api_port is None:
            return mount(self.front, gateway_handler)
        health_only = AdminFront(secret="", routes=None, ready=self.front.ready)
        return mount(health_only, gateway_handler)

    async def serve(
        self,
        *,
        watch_interval: float | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled; reports started once everything listens/subscribes."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.reloader.serve)
            await nursery.start(self.group.serve)
            if watch_interval is not None:
                await nursery.start(watch_folder, self.reloader, watch_interval)
                log.info("watching %s for changes", self.reloader.folder)
            port = self.config.control_api_port
            if port is not None and self.front.routes is not None:
                self.admin_server = HttpServer(
                    handler=self.wrap_admin(mount(self.front, _not_found)), limits=self.limits
                )
                self.admin_address = await start_listening(
                    nursery,
                    self.admin_server.serve,
                    self.config.listen.host,
                    port,
                    "the control API (control_api_port)",
                )
                log.info("admin API on http://%s:%d", *self.admin_address)
            task_status.started()


async def _not_found(request: Request) -> Response:
    return status_message(404, "Not found")


def make_control_plane(
    config: GatewayConfig,
    gateway: Gateway,
    store: SessionStore,
    *,
    folder: Path,
    writable: bool,
    limits: ServerLimits,
    ready: Callable[[], bool],
    now: Callable[[], float] = time.time,
) -> ControlPlane:
    """``folder`` is what reloads read; ``writable`` says whether ``/tyk/apis`` may change it."""

    async def build(apis: Sequence[ApiDefinition]) -> ApiSnapshot:
        return await build_snapshot(
            apis, config, auth=gateway.auth, driver_shared=gateway.driver_shared
        )

    reloader = Reloader(
        gateway=gateway, folder=folder, build=build, drain_timeout=config.proxy_default_timeout
    )
    group: GroupReload
    if config.storage.type == "redis":
        group = RedisGroupReload(reloader=reloader, storage=config.storage)
    else:
        group = LocalGroupReload(reloader=reloader)
    routes = None
    if config.secret:
        routes = AdminRoutes(
            store=store,
            reloader=reloader,
            group=group,
            api_folder=folder if writable else None,
            now=now,
        )
    front = AdminFront(secret=config.secret, routes=routes, ready=ready)
    return ControlPlane(config=config, reloader=reloader, group=group, front=front, limits=limits)
