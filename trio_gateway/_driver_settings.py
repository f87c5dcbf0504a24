"""What the gateway hands a plugin driver when it builds one (pure: attrs only, no Trio).

Settings flow gateway config → API definition → hook entry: the gateway-wide values are here
(:class:`DriverSettings`, one per gateway and driver name), the per-API and per-hook ones are
resolved into each :class:`~trio_gateway.hooks.HookRef` (``timeout``, ``failure_mode``,
``thread_limit``). Re-exported by the public driver SDK, :mod:`trio_gateway.drivers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, final

import attrs

from ._config.model import DEFAULT_THREAD_LIMIT, GRPC_DEFAULT_RECV_MAX_SIZE
from ._session.model import Session

__all__ = [
    "DEFAULT_BLOCKING_THRESHOLD",
    "DriverSettings",
    "DriverStore",
    "GrpcSettings",
    "JsSettings",
]

#: Seconds one step of an async native hook may hold the event loop before it is reported.
DEFAULT_BLOCKING_THRESHOLD: Final = 0.1


class DriverStore(Protocol):
    """What a driver may do with the gateway's store (Redis or in-memory): read sessions (JS
    ``TykGetKeyData``) and keep plugin data (Tyk's ``tyk.store_data`` / ``tyk.get_data``, under
    ``coprocess-data:<key>`` as in Tyk). All raise ``SessionStoreError`` when the store is down;
    Tyk's plugins then see an empty answer."""

    async def get_session(self, key: str) -> Session | None:
        """The session stored for ``key`` (as the client sent it), or None."""
        ...

    async def put_session(self, key: str, session: Session, *, reset_quota: bool = True) -> None:
        """Store ``session`` under ``key`` (JS ``TykSetKeyData``); ``reset_quota=False`` keeps the
        key's quota counters (Tyk's ``suppress_reset``)."""
        ...

    async def store_data(self, key: str, value: bytes, ttl: int) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (0 or less: no expiry)."""
        ...

    async def get_data(self, key: str) -> bytes | None:
        """What :meth:`store_data` kept under ``key`` (None: nothing, or expired)."""
        ...


@final
@attrs.frozen(kw_only=True)
class GrpcSettings:
    """Tyk's ``coprocess_options`` as the ``grpc`` driver needs them (docs/configuration.md)."""

    #: ``coprocess_options.enable_coprocess``.
    enable: bool = False
    #: ``coprocess_grpc_server`` (``""``: none; APIs may still name their own server).
    server: str = ""
    authority: str = ""
    tls: bool = False
    ca_file: str | None = None
    recv_max_size: int = GRPC_DEFAULT_RECV_MAX_SIZE
    #: 0 means unlimited.
    send_max_size: int = 0
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 5.0

    @property
    def wanted(self) -> bool:
        """Whether the gateway opens the gRPC channels at all."""
        return self.enable or bool(self.server)


@final
@attrs.frozen(kw_only=True)
class JsSettings:
    """Tyk's JSVM settings as the ``otto`` driver needs them (docs/javascript.md)."""

    #: ``enable_jsvm``.
    enable: bool = False
    #: ``jsvm_timeout``: seconds per JS call (the hook's deadline, when smaller, wins).
    timeout: float = 5.0
    #: ``tyk_js_path``: user globals loaded before each API's files ("": none).
    tyk_js_path: str = ""
    #: ``javascript.memory_limit``: bytes per API's VM.
    memory_limit: int = 64 * 1024 * 1024
    #: ``javascript.underscore_path`` ("": the copy an installed package ships).
    underscore_path: str = ""
    #: ``disable_virtual_path_blobs``: virtual endpoints with a ``blob`` source are refused.
    disable_virtual_path_blobs: bool = False
    #: ``middleware_path``: directory-loaded middleware lives in ``<middleware_path>/<api_id>/``.
    middleware_path: str = "middleware"
    #: The upstream TLS settings, which ``TykMakeHttpRequest`` uses as Tyk uses the API's.
    ssl_insecure_skip_verify: bool = False
    ca_file: str | None = None


@final
@attrs.frozen(kw_only=True, eq=False)
class DriverSettings:
    """The gateway-wide settings a driver is built with (``factory(settings)``).

    Every field comes from the gateway's configuration files (docs/configuration.md names the
    keys); per-API and per-hook values (timeout, failure mode, thread limit) are on each
    :class:`~trio_gateway.hooks.HookRef` instead, already resolved.
    """

    #: ``hooks.timeout``: the default deadline of a hook (seconds).
    timeout: float = 1.0
    #: ``hooks.failure_mode``: the default failure policy.
    failure_mode: Literal["closed", "open"] = "closed"
    #: ``hooks.thread_limit``: the default worker threads per plugin function.
    thread_limit: int = DEFAULT_THREAD_LIMIT
    #: ``hooks.max_body_bytes``: the largest body a hook reads whole (0: unbounded).
    max_body_bytes: int = 8 * 1024 * 1024
    #: ``hooks.blocking_threshold``: an async step holding the loop longer is reported.
    blocking_threshold: float = DEFAULT_BLOCKING_THRESHOLD
    #: ``coprocess_options``: the gRPC plugin server.
    grpc: GrpcSettings = GrpcSettings()
    #: Tyk's JSVM settings (the ``otto`` / ``javascript`` driver).
    javascript: JsSettings = JsSettings()
    #: The gateway's store (None when the driver is built outside a gateway).
    store: DriverStore | None = None
    #: What each driver's shared-resource opener yielded, by driver name (the ``grpc`` driver:
    #: its channels), opened once per gateway in its root nursery (``plugin_drivers.open_shared``);
    #: a driver finds no entry when it has none or the configuration does not ask for it.
    shared: Mapping[str, Any] = attrs.field(factory=dict)
