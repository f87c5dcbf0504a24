"""The gateway's own settings: one frozen attrs class per section.

Pure: no I/O, no clock. Loading (files, environment, command line) lives in ``load.py``. Every
duration is in seconds (a float), every size in bytes. Field validators check invariants only;
the converter in ``load.py`` checks the shape and the scalar types.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, Literal

import attrs

__all__ = [
    "BundlesConfig",
    "CoprocessConfig",
    "FailureMode",
    "FieldValueError",
    "GatewayConfig",
    "HooksConfig",
    "LimitsConfig",
    "ListenConfig",
    "LogLevel",
    "RateLimitHeaders",
    "StorageConfig",
    "StorageType",
    "UpstreamConfig",
]

LogLevel = Literal["debug", "info", "warning", "error"]
FailureMode = Literal["closed", "open"]
StorageType = Literal["memory", "redis"]
RateLimitHeaders = Literal["quotas", "rate_limits"]

#: The demo upstream's default port (the bundled example APIs target 127.0.0.1:8091).
DEMO_PORT: Final = 8091

#: gRPC's own default for the largest message a client accepts (Tyk's `grpc_recv_max_size: 0`).
GRPC_DEFAULT_RECV_MAX_SIZE: Final = 4 * 1024 * 1024
#: Worker threads per plugin function (``hooks.thread_limit``); chosen by measurement
#: (docs/reliability.md, "Sync hooks under concurrency").
DEFAULT_THREAD_LIMIT: Final = 16


class FieldValueError(ValueError):
    """A field value that breaks an invariant; ``field`` names the attribute for the error path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# Validators. They raise FieldValueError so that the loader can name the exact key path.


def _port(lowest: int) -> Callable[[object, attrs.Attribute[Any], int | None], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and not lowest <= value <= 65535:
            raise FieldValueError(
                attribute.name, f"must be a port number from {lowest} to 65535 (got {value})"
            )

    return check


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise FieldValueError(attribute.name, f"must be a number >= 0 (got {value})")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise FieldValueError(attribute.name, f"must be a number > 0 (got {value})")


def _not_blank(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise FieldValueError(attribute.name, "must not be empty")


@attrs.frozen(kw_only=True)
class ListenConfig:
    """Where the gateway accepts client connections (port 0 picks a free port, for tests)."""

    host: str = attrs.field(default="127.0.0.1", validator=_not_blank)
    port: int = attrs.field(default=8080, validator=_port(0))


@attrs.frozen(kw_only=True)
class LimitsConfig:
    """Bounds on what one client connection may cost us."""

    max_header_bytes: int = attrs.field(default=65536, validator=_positive)
    #: 0 means unlimited (bodies stream, so memory stays bounded anyway).
    max_request_body_bytes: int = attrs.field(default=0, validator=_non_negative)
    #: Time allowed to receive a whole request head (the slowloris bound).
    header_read_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Time an idle keep-alive connection waits for its next request.
    keepalive_timeout: float = attrs.field(default=75.0, validator=_positive)
    #: Idle time allowed between two chunks of a request body.
    body_read_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Time a client may take to accept each piece of a response (one that stops reading is
    #: disconnected).
    send_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Graceful shutdown: how long in-flight requests may take to finish.
    shutdown_timeout: float = attrs.field(default=10.0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class UpstreamConfig:
    """How the gateway talks to upstream services."""

    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    max_idle_per_host: int = attrs.field(default=100, validator=_non_negative)
    idle_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Off by default: upstream certificates are verified unless asked otherwise.
    ssl_insecure_skip_verify: bool = False
    #: Extra CA bundle (PEM) to trust for upstream TLS, besides the system's.
    ca_file: str | None = None


@attrs.frozen(kw_only=True)
class HooksConfig:
    """Global defaults for plugin hooks; an API or a single hook may override them."""

    timeout: float = attrs.field(default=1.0, validator=_positive)
    failure_mode: FailureMode = "closed"
    #: Worker threads per plugin function for drivers that run plugin code in threads (sync
    #: native hooks today). A call waits for a free thread within its hook's deadline; an
    #: abandoned thread stays counted until it returns. See docs/reliability.md.
    thread_limit: int = attrs.field(default=DEFAULT_THREAD_LIMIT, validator=_positive)
    #: Largest request body a hook may read whole (a native hook's ``read_body()``, a sync hook,
    #: a gRPC hook): beyond it the client gets 413, at once when its Content-Length says so.
    #: 0 means unbounded. APIs without plugin hooks stream bodies of any size.
    max_body_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_non_negative)
    #: Seconds one step of an async native hook (the code between two awaits) may hold the event
    #: loop before the ``python`` driver reports it (a log line and a counter, with the hook).
    blocking_threshold: float = attrs.field(default=0.1, validator=_positive)


@attrs.frozen(kw_only=True)
class CoprocessConfig:
    """Tyk's ``coprocess_options``: the gRPC plugin server and its message sizes."""

    enable: bool = False
    #: Tyk's ``coprocess_grpc_server``, e.g. ``tcp://127.0.0.1:5555``.
    grpc_server: str = ""
    grpc_recv_max_size: int = attrs.field(default=GRPC_DEFAULT_RECV_MAX_SIZE, validator=_positive)
    #: 0 means unlimited, as in gRPC.
    grpc_send_max_size: int = attrs.field(default=0, validator=_non_negative)
    #: ``:authority`` override; empty means derive it from the target.
    grpc_authority: str = ""
    #: TLS to the gRPC server (our extension; Tyk has none). Verified against the system's CAs
    #: plus ``grpc_ca_file`` (PEM), for the host in ``grpc_authority`` or the target.
    grpc_tls: bool = False
    grpc_ca_file: str | None = None
    #: Dead-server detection (our extension): while calls wait and the server has sent nothing
    #: for ``grpc_keepalive_interval`` seconds, an HTTP/2 PING; no ACK within
    #: ``grpc_keepalive_timeout`` drops the connection (0 turns pings off).
    grpc_keepalive_interval: float = attrs.field(default=10.0, validator=_non_negative)
    grpc_keepalive_timeout: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen(kw_only=True)
class BundlesConfig:
    """Tyk's plugin bundle settings (docs/bundles.md). Off by default, as in Tyk."""

    #: Tyk's ``enable_bundle_downloader``: without it an API naming a bundle answers 503 with
    #: ``Bundle downloader is disabled`` (unless the bundle is already on disk).
    enable_downloader: bool = False
    #: Tyk's ``bundle_base_url``: ``http://``, ``https://`` or ``file://``; the bundle name is
    #: joined to its path.
    base_url: str = ""
    #: Tyk's ``bundle_insecure_skip_verify``: no certificate check for ``https`` bundle URLs.
    insecure_skip_verify: bool = False
    #: Our extension: extra CA bundle (PEM) trusted for ``https`` bundle URLs, besides the system's.
    ca_file: str | None = None
    #: Tyk's ``public_key_path``: PEM RSA public key; when set, every fresh bundle must be signed.
    public_key_path: str = ""
    #: Tyk's ``skip_verify_existing_plugin_bundle``: trust signed bundles already on disk.
    skip_verify_existing: bool = False
    #: Tyk's ``middleware_path``: bundles are cached in ``<middleware_path>/bundles/``.
    middleware_path: str = attrs.field(default="middleware", validator=_not_blank)


@attrs.frozen(kw_only=True)
class JavascriptConfig:
    """Tyk's JSVM settings for JavaScript plugins (driver ``otto``; docs/javascript.md)."""

    #: Tyk's ``enable_jsvm``: without it an API with ``otto`` plugins is not served (503).
    enable: bool = False
    #: Tyk's ``jsvm_timeout`` (seconds): each JS call's limit; the hook's own deadline, when
    #: smaller, wins.
    timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Tyk's ``tyk_js_path``: a file of user globals loaded into every API's VM before its files.
    tyk_js_path: str = ""
    #: Our extension: the memory cap of one API's VM (bytes).
    memory_limit: int = attrs.field(default=64 * 1024 * 1024, validator=_positive)
    #: Our extension: Underscore.js to preload ("": the copy an installed package ships).
    underscore_path: str = ""
    #: Tyk's ``disable_virtual_path_blobs``: virtual endpoints whose script is an inline base64
    #: ``blob`` are refused (their API answers 503); ``file`` sources still run.
    disable_virtual_path_blobs: bool = False


@attrs.frozen(kw_only=True)
class StorageConfig:
    """Where sessions, rate-limit windows and quota counters live.

    Redis TLS, Sentinel and Cluster are refused by the loader (not supported yet), so they have no
    fields here.
    """

    type: StorageType = "memory"
    host: str = attrs.field(default="127.0.0.1", validator=_not_blank)
    port: int = attrs.field(default=6379, validator=_port(1))
    database: int = attrs.field(default=0, validator=_non_negative)
    #: Redis ACL user name (Tyk's ``storage.username``); empty means the default user.
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    #: Store keys under a hash of the key (Tyk's top-level ``hash_keys``).
    hash_keys: bool = False
    #: Seconds a session read from Redis is served from this process's memory (Tyk's local
    #: session cache): one round trip per request instead of two; changes made by *other*
    #: gateways show after at most this long. 0 turns it off. See docs/decisions-store.md.
    session_cache_ttl: float = attrs.field(default=1.0, validator=_non_negative)


AnalyticsSink = Literal["redis", "jsonl"]
MetricsPlace = Literal["auto", "main", "control"]


@attrs.frozen(kw_only=True)
class AnalyticsConfig:
    """Analytics records (Tyk's ``enable_analytics``, ``analytics_config``).

    See docs/observability.md.
    """

    enable: bool = False
    #: ``redis``: Tyk Pump's list in the Redis of ``storage`` (host, port, database, password);
    #: ``jsonl``: one JSON object per line to ``jsonl_path`` (empty: stdout).
    sink: AnalyticsSink = "redis"
    jsonl_path: str = ""
    #: Tyk's ``enable_multiple_analytics_keys``: spread batches over ``..._0`` to ``..._9``.
    multiple_keys: bool = False
    #: Tyk's ``storage_expiration_time``: seconds the Redis list lives after a write (0: forever).
    storage_expiration_time: int = attrs.field(default=0, validator=_non_negative)
    #: Records waiting at most; beyond, new ones are dropped and counted.
    buffer_size: int = attrs.field(default=10_000, validator=_positive)
    #: Records per write; a full batch is written at once, a partial one every ``flush_interval``.
    batch_size: int = attrs.field(default=1000, validator=_positive)
    flush_interval: float = attrs.field(default=0.2, validator=_positive)
    #: Bound on writing out what is buffered when the gateway stops.
    shutdown_timeout: float = attrs.field(default=2.0, validator=_positive)
    #: Analytics plugins: deadline per batch (an API's ``analytics_plugin.timeout`` overrides it)
    #: and how many batches run at once.
    plugin_timeout: float = attrs.field(default=1.0, validator=_positive)
    plugin_concurrency: int = attrs.field(default=4, validator=_positive)
    #: Tyk's ``analytics_config.enable_detailed_recording``: every API's records carry the raw
    #: request and response (base64), each cut at ``detailed_max_bytes``.
    enable_detailed_recording: bool = False
    detailed_max_bytes: int = attrs.field(default=65536, validator=_positive)


@attrs.frozen(kw_only=True)
class MetricsConfig:
    """``GET /metrics`` (Prometheus text format; docs/observability.md)."""

    enable: bool = True
    path: str = "/metrics"
    #: ``auto``: the control API port when one is set, else the main port; or force either.
    listener: MetricsPlace = "auto"
    #: On the main port, answer clients other than loopback too.
    allow_remote: bool = False
    #: Require ``X-Tyk-Authorization: <secret>`` (as the admin API does).
    require_secret: bool = False


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """Every gateway setting, with the defaults of the embedded gateway."""

    listen: ListenConfig = ListenConfig()
    #: Folder of API definitions; ``None`` serves the bundled examples.
    app_path: str | None = None
    #: Admin API secret. Empty turns the admin API off; there is never a default secret.
    secret: str = attrs.field(default="", repr=False)
    #: Serve the admin API on its own port instead of the main listener.
    control_api_port: int | None = attrs.field(default=None, validator=_port(1))
    log_level: LogLevel = "info"
    #: Worker processes sharing the listening port (``run --workers N``); more than one needs the
    #: Redis store, so that keys, limits and quotas are shared between them.
    workers: int = attrs.field(default=1, validator=_positive)
    #: The request deadline: bounds the hooks and the wait for the upstream's response head.
    proxy_default_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: ``None`` lets the command line decide (a demo upstream only when no APIs folder is given).
    demo_upstream: bool | None = None
    #: Where the demo upstream listens. The bundled example APIs name 127.0.0.1:8091; served with
    #: another address (port 0 picks a free one), they are pointed at it.
    demo_listen: ListenConfig = ListenConfig(port=DEMO_PORT)
    limits: LimitsConfig = LimitsConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    hooks: HooksConfig = HooksConfig()
    coprocess: CoprocessConfig = CoprocessConfig()
    storage: StorageConfig = StorageConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    metrics: MetricsConfig = MetricsConfig()
    bundles: BundlesConfig = BundlesConfig()
    javascript: JavascriptConfig = JavascriptConfig()
    #: Tyk's ``rate_limit_response_headers``: ``X-RateLimit-*`` from the quota (Tyk's default)
    #: or from the rate limit.
    rate_limit_response_headers: RateLimitHeaders = "quotas"

    @property
    def admin_enabled(self) -> bool:
        """Whether the admin API runs at all (only with a secret configured)."""
        return bool(self.secret)

    @property
    def wants_demo_upstream(self) -> bool:
        """The demo upstream runs when asked for, or by default when no APIs folder is given."""
        if self.demo_upstream is not None:
            return self.demo_upstream
        return self.app_path is None
