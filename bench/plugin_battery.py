"""The default battery on one simple plugin, with Hypothesis' default settings (issue 14: < 15 s).

    .venv/bin/python bench/plugin_battery.py

Runs ``check_plugin`` (all ten checks, 100 examples each, in a child process under the watchdog)
on examples/apps-plugins/add-headers.json and prints the wall time per check and in total.
"""

from __future__ import annotations

import time
from pathlib import Path

from trio_gateway.testing.battery import check_plugin

API = Path(__file__).resolve().parents[1] / "examples" / "apps-plugins" / "add-headers.json"


def main() -> None:
    started = time.perf_counter()
    report = check_plugin(API, max_examples=100, raise_on_failure=False)
    total = time.perf_counter() - started
    print(report.format())
    print(f"total: {total:.1f} s (ok={report.ok})")


if __name__ == "__main__":
    main()
