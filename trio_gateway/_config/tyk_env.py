"""Tyk's ``TYK_GW_*`` environment variables, read as Tyk reads them (pure: the caller passes env).

Tyk loads ``tyk.conf`` and then lets ``envconfig.Process("TYK_GW", &conf)`` override it
(TykTechnologies/tyk ``config/config.go``: ``Load`` -> ``FillEnv``). kelseyhightower/envconfig
names a variable ``TYK_GW_`` + the Go *field name* upper-cased, without separators; a nested
struct adds its own field name as one more ``_`` segment, and an embedded struct adds none (so
``coprocess_options.enable_coprocess``, field ``CoProcessOptions.EnableCoProcess``, is
``TYK_GW_COPROCESSOPTIONS_ENABLECOPROCESS``, and ``rate_limit_response_headers``, in the
embedded ``RateLimit`` struct, is ``TYK_GW_RATELIMITRESPONSEHEADERS``). The names are not derived
from the JSON keys: ``max_idle_connections_per_host`` is field ``MaxIdleConnsPerHost``, and
``disable_cached_session_state`` is ``DisableCacheSessionState``. :data:`GO_FIELDS` spells them
out for every tyk.conf key we read (checked against Tyk's ``config/config.go`` and
``config/rate_limit.go`` at commit 31e219be, 2026-08).

Values are parsed as Go's ``strconv`` does for the field's kind (``ParseBool`` accepts
``1 t T TRUE true True 0 f F FALSE false False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "GO_FIELDS",
    "OMIT_CONFIG_FILE",
    "TYK_ENV_PREFIX",
    "TykEnv",
    "read_tyk_env",
    "tyk_env_name",
]

TYK_ENV_PREFIX: Final = "TYK_GW_"
#: ``TYK_GW_OMITCONFIGFILE=true``: Tyk ignores its config file and uses the environment alone.
OMIT_CONFIG_FILE: Final = TYK_ENV_PREFIX + "OMITCONFIGFILE"

Kind = Literal["bool", "int", "float", "str"]
TykPath = tuple[str, ...]

#: tyk.conf key path -> (Go field path, Go kind). ``rate_limit_response_headers`` has a one-field
#: path: it lives in Tyk's embedded ``RateLimit`` struct, which adds no segment.
GO_FIELDS: Final[Mapping[TykPath, tuple[tuple[str, ...], Kind]]] = {
    ("listen_address",): (("ListenAddress",), "str"),
    ("listen_port",): (("ListenPort",), "int"),
    ("secret",): (("Secret",), "str"),
    ("control_api_port",): (("ControlAPIPort",), "int"),
    ("app_path",): (("AppPath",), "str"),
    ("proxy_default_timeout",): (("ProxyDefaultTimeout",), "float"),
    ("log_level",): (("LogLevel",), "str"),
    ("hash_keys",): (("HashKeys",), "bool"),
    ("proxy_ssl_insecure_skip_verify",): (("ProxySSLInsecureSkipVerify",), "bool"),
    ("max_idle_connections_per_host",): (("MaxIdleConnsPerHost",), "int"),
    ("rate_limit_response_headers",): (("RateLimitResponseHeaders",), "str"),
    ("enable_bundle_downloader",): (("EnableBundleDownloader",), "bool"),
    ("bundle_base_url",): (("BundleBaseURL",), "str"),
    ("bundle_insecure_skip_verify",): (("BundleInsecureSkipVerify",), "bool"),
    ("public_key_path",): (("PublicKeyPath",), "str"),
    ("skip_verify_existing_plugin_bundle",): (("SkipVerifyExistingPluginBundle",), "bool"),
    ("middleware_path",): (("MiddlewarePath",), "str"),
    ("enable_jsvm",): (("EnableJSVM",), "bool"),
    ("jsvm_timeout",): (("JSVMTimeout",), "int"),
    ("tyk_js_path",): (("TykJSPath",), "str"),
    ("disable_virtual_path_blobs",): (("DisableVirtualPathBlobs",), "bool"),
    ("storage", "type"): (("Storage", "Type"), "str"),
    ("storage", "host"): (("Storage", "Host"), "str"),
    ("storage", "port"): (("Storage", "Port"), "int"),
    ("storage", "database"): (("Storage", "Database"), "int"),
    ("storage", "username"): (("Storage", "Username"), "str"),
    ("storage", "password"): (("Storage", "Password"), "str"),
    # Refused Redis features: recognised so that asking for them fails instead of being ignored.
    ("storage", "use_ssl"): (("Storage", "UseSSL"), "bool"),
    ("storage", "enable_cluster"): (("Storage", "EnableCluster"), "bool"),
    ("storage", "addrs"): (("Storage", "Addrs"), "str"),
    ("storage", "hosts"): (("Storage", "Hosts"), "str"),
    ("storage", "master_name"): (("Storage", "MasterName"), "str"),
    ("coprocess_options", "enable_coprocess"): (("CoProcessOptions", "EnableCoProcess"), "bool"),
    ("coprocess_options", "coprocess_grpc_server"): (
        ("CoProcessOptions", "CoProcessGRPCServer"),
        "str",
    ),
    ("coprocess_options", "grpc_recv_max_size"): (("CoProcessOptions", "GRPCRecvMaxSize"), "int"),
    ("coprocess_options", "grpc_send_max_size"): (("CoProcessOptions", "GRPCSendMaxSize"), "int"),
    ("coprocess_options", "grpc_authority"): (("CoProcessOptions", "GRPCAuthority"), "str"),
    ("http_server_options", "read_timeout"): (("HttpServerOptions", "ReadTimeout"), "int"),
    ("http_server_options", "write_timeout"): (("HttpServerOptions", "WriteTimeout"), "int"),
    ("http_server_options", "max_request_body_size"): (
        ("HttpServerOptions", "MaxRequestBodySize"),
        "int",
    ),
    ("local_session_cache", "cached_session_timeout"): (
        ("LocalSessionCache", "CachedSessionTimeout"),
        "int",
    ),
    ("local_session_cache", "disable_cached_session_state"): (
        ("LocalSessionCache", "DisableCacheSessionState"),
        "bool",
    ),
    ("enable_analytics",): (("EnableAnalytics",), "bool"),
    ("analytics_config", "enable_multiple_analytics_keys"): (
        ("AnalyticsConfig", "EnableMultipleAnalyticsKeys"),
        "bool",
    ),
    ("analytics_config", "storage_expiration_time"): (
        ("AnalyticsConfig", "StorageExpirationTime"),
        "int",
    ),
    ("analytics_config", "records_buffer_size"): (
        ("AnalyticsConfig", "RecordsBufferSize"),
        "int",
    ),
    ("analytics_config", "enable_detailed_recording"): (
        ("AnalyticsConfig", "EnableDetailedRecording"),
        "bool",
    ),
}

_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def tyk_env_name(tyk_path: TykPath) -> str:
    """The ``TYK_GW_*`` variable Tyk reads for a tyk.conf key path."""
    fields, _kind = GO_FIELDS[tyk_path]
    return TYK_ENV_PREFIX + "_".join(field.upper() for field in fields)


_BY_NAME: Final = {tyk_env_name(path): path for path in GO_FIELDS}


def _parse(text: str, kind: Kind) -> Any:
    if kind == "bool":
        if text in _GO_TRUE:
            return True
        if text in _GO_FALSE:
            return False
        raise ValueError(f"expected a Go boolean (true, false, 1, 0, t, f), got {text!r}")
    if kind == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    return text


class TykEnv:
    """What the ``TYK_GW_*`` variables say, in tyk.conf's shape."""

    def __init__(self) -> None:
        #: tyk.conf key path -> parsed value, for every variable that was set.
        self.values: dict[TykPath, Any] = {}
        #: tyk.conf key path -> the variable that set it (for messages).
        self.names: dict[TykPath, str] = {}
        self.errors: list[str] = []
        #: ``TYK_GW_*`` variables that name no tyk.conf key trio-gateway reads.
        self.unknown: list[str] = []
        self.omit_config_file = False


def read_tyk_env(env: Mapping[str, str]) -> TykEnv:
    """Every ``TYK_GW_*`` variable in ``env``, parsed by its Go kind (errors collected)."""
    out = TykEnv()
    for variable in sorted(env):
        if not variable.startswith(TYK_ENV_PREFIX):
            continue
        text = env[variable]
        if variable == OMIT_CONFIG_FILE:
            out.omit_config_file = text.strip().lower() == "true"
            continue
        path = _BY_NAME.get(variable)
        if path is None:
            out.unknown.append(variable)
            continue
        try:
            value = _parse(text, GO_FIELDS[path][1])
        except ValueError as exc:
            out.errors.append(f"environment: {variable}: {exc}")
            continue
        out.values[path] = value
        out.names[path] = variable
    return out
