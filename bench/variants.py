"""Gateway-side variants of the end-to-end benchmark: the one extension point of bench/proxy.py.

A variant is a function ``(VariantContext) -> GatewaySetup``. It writes the apps dir (Tyk Classic
API definitions) and, if it needs them, a gateway config file and extra processes (a Redis, a gRPC
plugin server...), and says how wrk must call the gateway (path, headers). ``proxy.py`` starts the
extra processes, then one gateway process per variant, checks one request, runs ``after_start``
(e.g. create a key through the admin API), and drives it with wrk next to upstream and nginx.

To add a variant: write the function here (or in a module of your own imported below) and add it
to ``VARIANTS``. Raise ``VariantUnavailable`` with a clear reason when it cannot run on this
machine or in this tree yet; the harness reports that and benchmarks the rest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class VariantUnavailable(Exception):
    """This variant cannot run here (yet); the message says why and what would fix it."""


@dataclass(frozen=True)
class VariantContext:
    workdir: Path  # empty directory owned by this variant, removed after the run
    upstream_url: str  # "http://127.0.0.1:PORT/" -- the static nginx upstream (100-byte body)
    # The bench's own interpreter, for plugin servers written in Python: they stand for other
    # hosts, so every gateway compared (--compare-bin too) talks to the same server, run with
    # the interpreter that has grpcio (an old commit's venv has only the gateway's dependencies).
    python: str
    repo_root: Path
    free_port: Callable[[], int]  # a free TCP port on 127.0.0.1


@dataclass(frozen=True)
class ExtraProcess:
    """A process the variant needs running before the gateway starts (stopped at the end)."""

    name: str
    argv: list[str]
    # Which side's CPUs it gets: "sut" (beside the gateway) or "load" (beside wrk and upstream).
    # A store or plugin server on another host in production belongs on "load" to keep the
    # gateway's core its own; a co-located sidecar belongs on "sut".
    cpu_side: str = "load"
    ready_port: int | None = None  # wait until this 127.0.0.1 port accepts TCP connections
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class GatewaySetup:
    apps_dir: Path
    config_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)  # appended to `trio-gateway run ...`
    extra_processes: list[ExtraProcess] = field(default_factory=list)
    request_path: str = "/"
    request_headers: dict[str, str] = field(default_factory=dict)  # sent by wrk and the probe
    # Called once the gateway serves, with the gateway's 127.0.0.1 port (e.g. to create keys).
    after_start: Callable[[int], None] | None = None
    # What the probe must get, for variants that answer with a body of their own (a virtual
    # endpoint, a Response hook that rewrites it); None: the upstream's body, unchanged.
    expected_body: Callable[[bytes], bytes] | None = None


def keyless_api(api_id: str, upstream_url: str, **extra: object) -> dict[str, object]:
    """A Tyk Classic keyless API on listen path "/" proxying to ``upstream_url``."""
    return {
        "api_id": api_id,
        "name": api_id,
        "org_id": "bench",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {"listen_path": "/", "target_url": upstream_url, "strip_listen_path": False},
        **extra,
    }


def write_apps(ctx: VariantContext, *apis: dict[str, object]) -> Path:
    apps = ctx.workdir / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    for api in apis:
        (apps / f"{api['api_id']}.json").write_text(json.dumps(api, indent=2))
    return apps


def keyless(ctx: VariantContext) -> GatewaySetup:
    """One keyless API, no plugins: the gateway's baseline."""
    return GatewaySetup(apps_dir=write_apps(ctx, keyless_api("bench", ctx.upstream_url)))


_NOOP_HOOKS = """\
\"\"\"No-op native hooks: what the gateway pays per hook call, with no work inside.\"\"\"

from __future__ import annotations


async def noop_pre(ctx: object) -> None:
    return None


async def noop_post(ctx: object) -> None:
    return None
"""


def hooks_pre_post(ctx: VariantContext) -> GatewaySetup:
    """The keyless API plus one native Python Pre and one Post hook that do nothing (issue 3)."""
    plugin = ctx.workdir / "noop_hooks.py"
    plugin.write_text(_NOOP_HOOKS)
    middleware = {
        "driver": "python",
        "pre": [{"name": "noop_pre", "path": str(plugin)}],
        "post": [{"name": "noop_post", "path": str(plugin)}],
        "post_key_auth": [],
        "response": [],
    }
    api = keyless_api("bench-hooks", ctx.upstream_url, custom_middleware=middleware)
    return GatewaySetup(apps_dir=write_apps(ctx, api))


def grpc_pre(ctx: VariantContext) -> GatewaySetup:
    """The keyless API plus one Pre hook on a gRPC coprocess server (issue 5).

    The server is the test suite's grpcio ``coprocess.Dispatcher`` that echoes the Object, in its
    own process beside the load (a plugin server is another host in production).
    """
    port = ctx.free_port()
    server = ctx.repo_root / "tests" / "plugin_drivers" / "grpc" / "grpc_dispatcher_server.py"
    config = ctx.workdir / "tyk.conf"
    coprocess = {"enable_coprocess": True, "coprocess_grpc_server": f"tcp://127.0.0.1:{port}"}
    config.write_text(json.dumps({"coprocess_options": coprocess}))
    middleware = {"driver": "grpc", "pre": [{"name": "echo_pre"}], "post": [], "response": []}
    api = keyless_api("bench-grpc", ctx.upstream_url, custom_middleware=middleware)
    return GatewaySetup(
        apps_dir=write_apps(ctx, api),
        config_file=config,
        extra_processes=[
            ExtraProcess(
                name="grpc-server", argv=[ctx.python, str(server), str(port)], ready_port=port
            )
        ],
    )


_BENCH_SECRET = "bench-admin-secret"
_BENCH_KEY = "bench-key"


def _token_setup(ctx: VariantContext, conf: dict[str, object]) -> GatewaySetup:
    """A keyed API (standard token auth) and one key with a rate limit and a quota that wrk
    never reaches, created through the admin API once the gateway serves (issue 4)."""
    config = ctx.workdir / "tyk.conf"
    config.write_text(json.dumps({"secret": _BENCH_SECRET, **conf}))
    api = keyless_api("bench-token", ctx.upstream_url, use_keyless=False)
    session = {
        "rate": 1e9,
        "per": 1,
        "quota_max": 10**12,
        "quota_renewal_rate": 3600,
        "access_rights": {"bench-token": {"api_id": "bench-token", "versions": ["Default"]}},
    }

    def create_key(port: int) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/tyk/keys/{_BENCH_KEY}",
            data=json.dumps(session).encode(),
            headers={"X-Tyk-Authorization": _BENCH_SECRET, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    return GatewaySetup(
        apps_dir=write_apps(ctx, api),
        config_file=config,
        request_headers={"Authorization": _BENCH_KEY},
        after_start=create_key,
    )


def token_memory(ctx: VariantContext) -> GatewaySetup:
    """Token auth + rate limit + quota on the in-memory store."""
    return _token_setup(ctx, {})


def token_redis(ctx: VariantContext) -> GatewaySetup:
    """Token auth + rate limit + quota on a local redis-server (beside the load, as a shared
    Redis would be on another host)."""
    port = ctx.free_port()
    redis = _redis_process(port)
    setup = _token_setup(ctx, {"storage": {"type": "redis", "host": "127.0.0.1", "port": port}})
    return GatewaySetup(
        apps_dir=setup.apps_dir,
        config_file=setup.config_file,
        request_headers=setup.request_headers,
        after_start=setup.after_start,
        extra_processes=[redis],
    )


def _redis_process(port: int) -> ExtraProcess:
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        raise VariantUnavailable("redis-server is not installed (apt-get install redis-server)")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return ExtraProcess(name="redis", argv=argv, ready_port=port)


def keyless_no_metrics(ctx: VariantContext) -> GatewaySetup:
    """The keyless API with /metrics off: what the metrics cost the baseline (issue 16)."""
    config = ctx.workdir / "gateway.toml"
    config.write_text("[metrics]\nenable = false\n")
    api = keyless_api("bench", ctx.upstream_url)
    return GatewaySetup(apps_dir=write_apps(ctx, api), config_file=config)


_ANALYTICS_PLUGIN = """\
\"\"\"An analytics plugin that edits every record (masks the key, adds a tag).\"\"\"


def edit(record):
    record.api_key = "****"
    record.tags.append("bench")
"""


def _analytics_setup(ctx: VariantContext, api: dict[str, object]) -> GatewaySetup:
    """Analytics on, stored in a local redis-server as Tyk Pump's list (issue 16). The list is
    trimmed by nobody during the run: a few hundred thousand records of ~600 bytes."""
    port = ctx.free_port()
    redis = _redis_process(port)
    config = ctx.workdir / "tyk.conf"
    storage = {"type": "redis", "host": "127.0.0.1", "port": port}
    config.write_text(json.dumps({"enable_analytics": True, "storage": storage}))
    return GatewaySetup(apps_dir=write_apps(ctx, api), config_file=config, extra_processes=[redis])


def keyless_analytics(ctx: VariantContext) -> GatewaySetup:
    """The keyless API with analytics records (Redis sink) and metrics on (issue 16)."""
    return _analytics_setup(ctx, keyless_api("bench", ctx.upstream_url))


def keyless_analytics_plugin(ctx: VariantContext) -> GatewaySetup:
    """As keyless-analytics, plus an analytics plugin that edits every record (issue 16)."""
    plugin = ctx.workdir / "analytics_plugin.py"
    plugin.write_text(_ANALYTICS_PLUGIN)
    spec = {"enable": True, "plugin_path": str(plugin), "func_name": "edit"}
    return _analytics_setup(ctx, keyless_api("bench", ctx.upstream_url, analytics_plugin=spec))


_JS_PRE = """\
// One JavaScript Pre hook that sets a header (issue 15's throughput target).
var benchPre = new TykJS.TykMiddleware.NewMiddleware({});
benchPre.NewProcessRequest(function (request, session, config) {
    request.SetHeaders["X-Bench-Js"] = "1";
    return benchPre.ReturnData(request, {});
});
"""


def _jsvm_files(ctx: VariantContext, name: str, source: str) -> tuple[Path, Path]:
    """The script ``name`` holding ``source``, and a tyk.conf that turns the JSVM on."""
    script = ctx.workdir / name
    script.write_text(source)
    config = ctx.workdir / "tyk.conf"
    config.write_text(json.dumps({"enable_jsvm": True}))
    return script, config


def js_pre(ctx: VariantContext) -> GatewaySetup:
    """The keyless API plus one JavaScript (otto) Pre hook that sets a header (issue 15)."""
    script, config = _jsvm_files(ctx, "bench_pre.js", _JS_PRE)
    middleware = {
        "driver": "otto",
        "pre": [{"name": "benchPre", "path": str(script)}],
        "post": [],
        "post_key_auth": [],
        "response": [],
    }
    api = keyless_api("bench-js", ctx.upstream_url, custom_middleware=middleware)
    return GatewaySetup(apps_dir=write_apps(ctx, api), config_file=config)


_JS_VIRTUAL = """\
// A virtual endpoint answering small JSON itself (issue 15's throughput target).
function benchVirtual(request, session, config) {
    return TykJsResponse({
        Body: JSON.stringify({status: "ok", api: config.APIID}),
        Headers: {"Content-Type": "application/json"},
        Code: 200
    }, session.meta_data);
}
"""


def js_virtual(ctx: VariantContext) -> GatewaySetup:
    """A keyless API whose "/" is a JavaScript virtual endpoint (no upstream call; issue 15)."""
    script, config = _jsvm_files(ctx, "bench_virtual.js", _JS_VIRTUAL)
    virtual = {
        "path": "/",
        "method": "GET",
        "response_function_name": "benchVirtual",
        "function_source_type": "file",
        "function_source_uri": str(script),
    }
    versions = {"Default": {"name": "Default", "extended_paths": {"virtual": [virtual]}}}
    api = keyless_api(
        "bench-js-virtual",
        ctx.upstream_url,
        version_data={"not_versioned": True, "versions": versions},
        custom_middleware={"driver": "otto"},
    )
    return GatewaySetup(
        apps_dir=write_apps(ctx, api),
        config_file=config,
        expected_body=lambda _: b'{"status":"ok","api":"bench-js-virtual"}',
    )


_TYK_PYTHON_HOOKS = """\
\"\"\"Tyk-style Python hooks, as a Tyk user writes them (issue 13).\"\"\"

from tyk.decorators import *


@Hook
def SetHeader(request, session, spec):
    request.add_header("X-Tyk-Python", "pre")
    return request, session


@Hook
def RewriteBody(request, response, session, metadata, spec):
    response.raw_body = b"rewritten:" + response.raw_body
    return response
"""


def _tyk_python(ctx: VariantContext, stage: str, name: str) -> GatewaySetup:
    # A plugin folder with middleware.py, as a Tyk bundle unpacks (loaded without a bundle).
    folder = ctx.workdir / "tyk-plugin"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "middleware.py").write_text(_TYK_PYTHON_HOOKS)
    middleware = {"driver": "python", stage: [{"name": name, "path": str(folder)}]}
    api = keyless_api("bench-tyk-python", ctx.upstream_url, custom_middleware=middleware)
    return GatewaySetup(apps_dir=write_apps(ctx, api))


def tyk_python_pre(ctx: VariantContext) -> GatewaySetup:
    """The keyless API plus one Tyk-style Python ``@Hook`` Pre hook that sets a header."""
    return _tyk_python(ctx, "pre", "SetHeader")


def tyk_python_response(ctx: VariantContext) -> GatewaySetup:
    """The keyless API plus one Tyk-style Python ``@Hook`` Response hook rewriting the body."""
    return dataclasses.replace(
        _tyk_python(ctx, "response", "RewriteBody"),
        expected_body=lambda upstream_body: b"rewritten:" + upstream_body,
    )


def _pending(name: str, issue: int, what: str) -> Callable[[VariantContext], GatewaySetup]:
    def variant(ctx: VariantContext) -> GatewaySetup:
        raise VariantUnavailable(f"variant {name!r} ({what}) is not written yet: see issue {issue}")

    variant.__doc__ = what
    return variant


VARIANTS: dict[str, Callable[[VariantContext], GatewaySetup]] = {
    "keyless": keyless,
    # Filled in by the issues that build these features; each compares against "keyless".
    "hooks-pre-post": hooks_pre_post,
    "grpc-pre": grpc_pre,
    "js-pre": js_pre,
    "js-virtual": js_virtual,
    "token-memory": token_memory,
    "token-redis": token_redis,
    "keyless-no-metrics": keyless_no_metrics,
    "keyless-analytics": keyless_analytics,
    "keyless-analytics-plugin": keyless_analytics_plugin,
    "tyk-python-pre": tyk_python_pre,
    "tyk-python-response": tyk_python_response,
}

BASELINE = "keyless"

# Throughput each variant must keep, as a fraction of the keyless gateway in the same run.
RATIO_TARGETS: dict[str, float] = {
    "hooks-pre-post": 0.80,  # issue 3
    "token-memory": 0.80,  # issue 4
    "js-pre": 0.50,  # issue 15
    "js-virtual": 0.50,  # issue 15
    "token-redis": 0.50,  # issue 4
    # issue 16: against "keyless" (metrics on, the default; keyless-no-metrics shows their cost)
    "keyless-analytics": 0.85,
    "keyless-analytics-plugin": 0.80,
    "tyk-python-pre": 0.50,  # issue 13 (tyk-python-response: measured and recorded only)
}

