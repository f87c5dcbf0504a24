"""``trio-gateway test-plugins --apps DIR [--api ID]``: the battery for authors who write no tests.

Runs :func:`~trio_gateway.testing.check_plugin` on every API with plugin hooks in the folder and
prints the report. Exit 0: every check passed (or did not apply); 1: a check failed; 2: usage
(no such folder, no such API, definitions that do not load).
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_test_plugins(
    apps: Path,
    api_id: str | None,
    *,
    credentials: list[str],
    max_examples: int | None,
    watchdog: float,
    grpc_server: str | None = None,
    grpc_command: list[str] | None = None,
) -> int:
    from .._apidef.source import load_api_definitions
    from .battery import check_plugin

    if not apps.is_dir():
        print(f"trio-gateway test-plugins: --apps {apps}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    report = load_api_definitions(apps)
    for error in report.errors:
        print(f"trio-gateway test-plugins: {error}", file=sys.stderr)
    apis = [a for a in report.apis if api_id in (None, a.api_id)]
    if api_id is not None and not apis:
        print(f"trio-gateway test-plugins: no API {api_id!r} in {apps}", file=sys.stderr)
        return EXIT_USAGE
    apis = [a for a in apis if not a.middleware.is_empty()]
    if not apis:
        print("trio-gateway test-plugins: no API with plugin hooks to test", file=sys.stderr)
        return EXIT_USAGE if report.errors else EXIT_OK
    failed = False
    for api in apis:
        battery = check_plugin(
            api.source,
            api_id=api.api_id,
            credentials=credentials,
            max_examples=max_examples,
            watchdog=watchdog,
            raise_on_failure=False,
            grpc_server=grpc_server,
            grpc_command=grpc_command,
        )
        print(battery.format(), flush=True)
        failed = failed or not battery.ok
    return EXIT_FAILED if failed else EXIT_OK


def missing_extra() -> str | None:
    """The message when the ``testing`` extra is not installed, else None."""
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return (
            "trio-gateway test-plugins needs the testing extra: "
            "pip install 'trio-gateway[testing]' (pytest, pytest-trio, hypothesis)"
        )
    return None
