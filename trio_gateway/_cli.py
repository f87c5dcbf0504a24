"""`trio-gateway` command line: `run` serves, `check` validates API definitions, `bundle`
builds and verifies plugin bundles (``_bundles/cli.py``)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import trio

from ._accesslog import AccessLog
from ._apidef.source import load_api_definitions
from ._apidef.unsupported import coprocess_refusal
from ._bundles.apply import resolve_bundles
from ._bundles.cli import add_bundle_parser, run_bundle_command
from ._config.load import load_config
from ._config.model import GatewayConfig
from ._logsetup import stderr_logging, stdout_access_log
from ._memory import return_large_blocks_to_os
from ._reload import DEFAULT_WATCH_INTERVAL
from .errors import ConfigError

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2

_LEVELS = ("debug", "info", "warning", "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-gateway", description="An API gateway on Trio that runs Tyk plugins."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve API definitions")
    run.add_argument("--config", type=Path, help="gateway settings: .toml, or a Tyk tyk.conf")
    run.add_argument("--apps", type=Path, help="folder of API definitions (default: app_path)")
    run.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:8080)")
    run.add_argument(
        "--demo-listen",
        help="HOST:PORT of the demo upstream served when no APIs folder is given "
        "(default 127.0.0.1:8091; port 0 picks a free one)",
    )
    run.add_argument("--log-level", choices=_LEVELS, help="default: info")
    run.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=DEFAULT_WATCH_INTERVAL,
        default=None,
        metavar="SECONDS",
        help="reload when the APIs folder changes, polling it every SECONDS "
        f"(default {DEFAULT_WATCH_INTERVAL:g})",
    )
    run.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port (default 1; more than 1 needs the Redis store)",
    )
    check = sub.add_parser("check", help="validate API definitions and print the report")
    check.add_argument("--apps", type=Path, help="folder of API definitions (default: app_path)")
    check.add_argument("--config", type=Path, help="gateway settings (for app_path)")
    add_bundle_parser(sub)
    tp = sub.add_parser(
        "test-plugins", help="run the plugin test battery on the hooks of API definitions"
    )
    tp.add_argument("--apps", type=Path, required=True, help="folder of API definitions")
    tp.add_argument("--api", help="only this api_id")
    tp.add_argument(
        "--credential",
        action="append",
        default=[],
        help="a value custom auth accepts (repeatable), so the checks reach later hooks",
    )
    tp.add_argument("--max-examples", type=int, help="Hypothesis examples per check")
    tp.add_argument(
        "--watchdog",
        type=float,
        default=60.0,
        help="seconds one example may take before the check is stopped (default 60)",
    )
    tp.add_argument(
        "--grpc-server", help="gRPC plugin server for grpc-driver APIs (tcp://HOST:PORT)"
    )
    tp.add_argument(
        "--grpc-command",
        help="a command that starts the gRPC plugin server (run per API, waited for, stopped)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "bundle":
        return run_bundle_command(args)
    if args.command == "test-plugins":
        return _test_plugins(args)
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "demo_listen", None):
        overrides["demo_listen"] = args.demo_listen
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    if args.apps is not None:
        overrides["app_path"] = str(args.apps)
    config_path: Path | None = args.config
    if config_path is not None and not config_path.is_file():
        print(f"trio-gateway: --config {config_path}: no such file", file=sys.stderr)
        return EXIT_USAGE
    if args.apps is not None and not args.apps.is_dir():
        print(f"trio-gateway: --apps {args.apps}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, warnings = load_config(config_path, os.environ, overrides)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"trio-gateway: {message}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        return _check(config, warnings)
    watch: float | None = args.watch
    if watch is not None and not watch > 0:
        print("trio-gateway: --watch SECONDS must be > 0", file=sys.stderr)
        return EXIT_USAGE
    return _run(config, warnings, watch=watch)


def _test_plugins(args: argparse.Namespace) -> int:
    # The kit needs the testing extra (Hypothesis); say which when it is missing.
    from .testing._command import missing_extra, run_test_plugins

    problem = missing_extra()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    return run_test_plugins(
        args.apps,
        args.api,
        credentials=args.credential,
        max_examples=args.max_examples,
        watchdog=args.watchdog,
        grpc_server=args.grpc_server,
        grpc_command=shlex.split(args.grpc_command) if args.grpc_command else None,
    )


def _check(config: GatewayConfig, warnings: list[str]) -> int:
    if not config.app_path:
        print("trio-gateway check: give --apps DIR (or app_path in the config)", file=sys.stderr)
        return EXIT_USAGE
    folder = Path(config.app_path)
    if not folder.is_dir():
        print(f"trio-gateway check: {folder}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    report = load_api_definitions(folder)
    resolved = trio.run(resolve_bundles, report.apis, config.bundles)
    report.apis[:] = resolved.apis
    for api in list(report.apis):
        refusal = resolved.failures.get(api.api_id) or coprocess_refusal(
            api, coprocess_enabled=config.coprocess.enable
        )
        if refusal is not None:
            report.errors.append(f"{api.source}: {refusal}")
            report.apis.remove(api)
    for warning in [*warnings, *report.warnings]:
        print(f"warning: {warning}")
    for error in report.errors:
        print(f"error: {error}")
    for api in report.apis:
        print(f"ok: {api.source}: {api.api_id} on {api.listen_path} -> {api.target_url}")
    # Each message starts with its file's path; a file may have several problems.
    refused = {error.split(": ", 1)[0] for error in report.errors}
    print(f"{len(report.apis)} API(s) ok, {len(refused)} file(s) refused")
    return EXIT_ERRORS if report.errors else EXIT_OK


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections on the request path (and large freed buffers given
    back to the system: ``_memory.py``).

    Each request allocates many short-lived objects; with CPython's default thresholds the
    cyclic collector runs every ~700 net allocations and its full passes walk every object the
    gateway loaded at start. Freezing the startup heap and raising the first threshold cut those
    pauses, which show up as tail latency (docs/decisions.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    return_large_blocks_to_os()


def _run(config: GatewayConfig, warnings: list[str], *, watch: float | None = None) -> int:
    if config.workers > 1:
        from ._workers import workers_problem

        if (problem := workers_problem(config)) is not None:
            print(f"trio-gateway: {problem}", file=sys.stderr)
            return EXIT_USAGE
    with stderr_logging(config.log_level):
        log = logging.getLogger("trio_gateway")
        for warning in warnings:
            log.warning("%s", warning)
        if config.workers > 1:
            from ._workers import run_workers

            return run_workers(config, watch_interval=watch)
        # Access-log lines (INFO) go to stdout in batches; see _accesslog.py for why.
        with stdout_access_log(log.isEnabledFor(logging.INFO)) as access_log:
            return _serve(config, access_log, watch)


def _serve(config: GatewayConfig, access_log: AccessLog, watch: float | None) -> int:
    from ._app import serve_gateway

    log = logging.getLogger("trio_gateway")
    demo = config.demo_upstream if config.demo_upstream is not None else not config.app_path
    _tune_gc()
    try:
        trio.run(
            lambda: serve_gateway(
                config,
                demo_upstream=demo,
                handle_signals=True,
                watch_interval=watch,
                access_log=access_log,
            )
        )
    except (OSError, ExceptionGroup) as exc:
        # A listener that cannot bind arrives wrapped by the root nursery.
        failure = exc if isinstance(exc, OSError) else exc.subgroup(OSError)
        if failure is None:
            raise
        while isinstance(failure, BaseExceptionGroup):
            failure = failure.exceptions[0]
        log.error("cannot serve: %s", failure)
        return EXIT_ERRORS
    return EXIT_OK
