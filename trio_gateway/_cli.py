"""`trio-gateway` command line: `run` serves, `check` validates API definitions, `bundle`
builds and verifies plugin bundles (``_bundles/cli.py``)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from ._accesslog import AccessLog, BufferedAccessLog
from ._apidef.source import load_api_definitions
from ._apidef.unsupported import coprocess_refusal
from ._bundles.apply import resolve_bundles
from ._bundles.cli import add_bundle_parser, run_bundle_command
from ._config.load import load_config
from ._config.model import GatewayConfig
from ._exchange import Request
from ._logwriter import LogWriter, QueueingStreamHandler, open_log_writer
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "bundle":
        return run_bundle_command(args)
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


class _NoAccessLog:
    def record(self, request: Request, status: int, sent: int, duration: float) -> None:
        pass


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str, writer: LogWriter | None = None, *, text_format: str = TEXT_FORMAT
) -> None:
    """Gateway messages to stderr as text (access-log lines go to stdout, see ``_run``).

    With ``writer`` (see :func:`stderr_logging`) the lines go through its bounded buffer and
    thread, so a stalled stderr reader never blocks the event loop; without one, straight to
    ``sys.stderr`` (before and after the gateway runs).
    """
    root = logging.getLogger("trio_gateway")
    root.setLevel(level.upper())
    root.propagate = False
    root.handlers.clear()
    text: logging.Handler = (
        QueueingStreamHandler(writer) if writer is not None else logging.StreamHandler(sys.stderr)
    )
    text.setFormatter(logging.Formatter(text_format))
    root.addHandler(text)


def _stderr_drop_notice(count: int) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{stamp} WARNING trio_gateway: {count} log line(s) dropped: stderr was not read fast "
        "enough (requests were not held up)\n"
    ).encode()


@contextmanager
def stderr_logging(level: str, *, text_format: str = TEXT_FORMAT) -> Iterator[None]:
    """Gateway messages through a stderr :class:`LogWriter` for the duration; on exit what is
    buffered is written out (bounded in time) and logging goes straight to stderr again."""
    fd = _fileno(sys.stderr)
    if fd is None:  # started with stderr closed: logging.StreamHandler copes on its own
        configure_logging(level, text_format=text_format)
        yield
        return
    with open_log_writer(fd, name="stderr", drop_notice=_stderr_drop_notice) as writer:
        configure_logging(level, writer, text_format=text_format)
        try:
            yield
        finally:
            configure_logging(level, text_format=text_format)


@contextmanager
def stdout_access_log(enabled: bool) -> Iterator[AccessLog]:
    """The access log: batches of JSON lines to stdout through a :class:`LogWriter` (owned
    here: flushed, bounded in time, when the block ends)."""
    fd = _fileno(sys.stdout) if enabled else None
    if fd is None:
        yield _NoAccessLog()
        return
    with open_log_writer(fd, name="stdout") as writer:
        yield BufferedAccessLog(writer)


def _fileno(stream: Any) -> int | None:
    """The descriptor under ``stream`` (flushed first: the writer thread bypasses it), or None
    when there is none (the process was started with it closed)."""
    try:
        stream.flush()
        fd: int = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd


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
