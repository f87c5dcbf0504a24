"""End-to-end proxy benchmark: the static upstream directly, nginx as a proxy, and the gateway.

    .venv/bin/python bench/proxy.py [--duration S] [--connections N] [--variant NAME ...]

Starts (all on 127.0.0.1, in a temp dir, each in its own process group, stopped at the end even on
Ctrl-C or error): an nginx serving a fixed 100-byte body (the upstream), an nginx with one worker
reverse-proxying to it over keep-alive connections, and one gateway process per variant. Each is
warmed up, then driven by wrk in the same run; prints req/s, p50, p99 and the ratios to nginx, to
the upstream directly and to the keyless gateway, and writes the whole result as JSON to
bench/results/. See docs/performance.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _nginx
import _system
import _wrk
from _procs import (
    LOOPBACK,
    Child,
    Processes,
    free_port,
    group_cpu_seconds,
    http_get,
    terminate_on_sigterm,
    wait_until_serving,
)
from variants import BASELINE, RATIO_TARGETS, VARIANTS, VariantContext, VariantUnavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"

# Targets for a keyless API, no plugins, one gateway process, 32 connections (issue 2).
NGINX_RATIO_TARGET = 0.15
P99_TARGET_MS = 10.0
# Below this % of its one CPU, a proxy was waiting on the load side rather than working.
SATURATED_CPU = 85.0
# Keys in the per-round CPU record besides the started processes' names.
WRK, OTHER = "wrk", "other (not the benchmark)"
# More foreign CPU than this (in % of one CPU) during a run makes its numbers suspect.
NOISY_CPU = 10.0


@dataclass
class Target:
    name: str
    kind: str  # "upstream" | "nginx" | "gateway"
    port: int | None = None
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    variant: str | None = None
    # Which executable, when --compare-bin runs the variants on several (None: the main one).
    label: str | None = None
    process: Child | None = None
    error: str | None = None
    rounds: list[_wrk.WrkResult] = field(default_factory=list)
    # Per round: CPU used by each started process during the measured run, in % of one CPU.
    cpu_rounds: list[dict[str, float]] = field(default_factory=list)
    # Per round: connections the upstream accepted during the measured run.
    upstream_connections: list[int] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [float(getattr(r, attr)) for r in self.rounds]
        return statistics.median(values) if values else None

    def own_cpu(self) -> float | None:
        """Median % of one CPU the measured process itself used (the proxy, or the upstream)."""
        if self.process is None:
            return None
        values = [r[self.process.name] for r in self.cpu_rounds if self.process.name in r]
        return statistics.median(values) if values else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/proxy.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds wrk measures (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of wrk before each (default: %(default)s)",
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: %(default)s)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every target N times, interleaved; the table shows medians (default: 1)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        dest="variants",
        metavar="NAME",
        choices=sorted(VARIANTS),
        help=f"gateway variant, repeatable (default: {BASELINE}); one of {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--no-gateway", action="store_true", help="upstream and nginx only (checks the harness)"
    )
    parser.add_argument(
        "--gateway-bin",
        default=None,
        help="the trio-gateway executable (default: the one beside this interpreter)",
    )
    parser.add_argument(
        "--compare-bin",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run every variant on this trio-gateway executable (e.g. an older commit's, "
        "see bench/compare-commits), interleaved with the main one; repeatable",
    )
    parser.add_argument(
        "--label",
        default="new",
        help="label of the main gateway executable in comparisons (default: %(default)s)",
    )
    parser.add_argument(
        "--placement",
        choices=_system.PLACEMENTS,
        default="auto",
        help="CPU pinning with taskset (default: auto; see docs/performance.md)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        metavar="S",
        help="before each target, wait up to S seconds for other processes to leave the CPUs "
        "alone (default: %(default)s; 0 = do not wait)",
    )
    parser.add_argument(
        "--gateway-log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="passed to the gateway; 'warning' turns its access log off, as nginx's is here "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never apt-get install missing tools"
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep configs and logs of the started processes"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if not args.variants:
        args.variants = [BASELINE]
    args.variants = list(dict.fromkeys(args.variants))  # keep order, drop repeats
    compare: list[tuple[str, str]] = []
    for item in args.compare_bin:
        label, sep, path = item.partition("=")
        if not sep or not label or not path or label == args.label:
            parser.error(f"--compare-bin takes LABEL=PATH with a label other than {args.label!r}")
        compare.append((label, path))
    args.compare_bin = compare
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk needs one per thread)")
    return args


def find_gateway_bin(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "trio-gateway"
    if beside.exists():
        return str(beside)
    return shutil.which("trio-gateway") or str(REPO_ROOT / ".venv" / "bin" / "trio-gateway")


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f}s")


def check_body(
    target: Target,
    probe_status: int,
    probe_body: bytes,
    expected: Callable[[bytes], bytes] | None = None,
) -> None:
    """A benchmark of error pages is worthless: the first answer must be the upstream's body
    (or what the variant makes of it: ``GatewaySetup.expected_body``)."""
    want = _nginx.BODY if expected is None else expected(_nginx.BODY)
    if probe_status != 200 or probe_body != want:
        raise RuntimeError(
            f"{target.name} answered {probe_status} with {probe_body[:200]!r}, "
            f"expected 200 with {want[:200]!r}"
        )


def start_nginx(
    procs: Processes, nginx: str, target: Target, prefix: Path, conf: str, cpus: str | None
) -> None:
    argv = _nginx.write_conf(nginx, prefix, conf)
    target.process = procs.start(target.name.replace(" ", "-"), argv, cpus=cpus)
    assert target.port is not None
    probe = wait_until_serving(target.process, target.port)
    check_body(target, probe.status, probe.body)


def start_gateway(
    procs: Processes,
    gateway_bin: str,
    cpu: _system.CpuPlan,
    workdir: Path,
    upstream_port: int,
    variant: str,
    log_level: str,
    label: str | None = None,
) -> Target:
    suffix = "" if label is None else f"@{label}"
    target = Target(
        name=f"gateway[{variant}]{suffix}", kind="gateway", variant=variant, label=label
    )
    vdir = workdir / f"variant-{variant}{suffix}"
    vdir.mkdir()
    ctx = VariantContext(
        workdir=vdir,
        upstream_url=f"http://{LOOPBACK}:{upstream_port}/",
        python=sys.executable,
        repo_root=REPO_ROOT,
        free_port=free_port,
    )
    started: list[Child] = []
    try:
        setup = VARIANTS[variant](ctx)
        for extra in setup.extra_processes:
            cpus = cpu.sut if extra.cpu_side == "sut" else cpu.load
            child = procs.start(
                f"{variant}{suffix}-{extra.name}", extra.argv, cpus=cpus, env=extra.env
            )
            started.append(child)
            if extra.ready_port is not None:
                wait_port(extra.ready_port)
        if not Path(gateway_bin).exists() and shutil.which(gateway_bin) is None:
            raise RuntimeError(
                f"no gateway executable at {gateway_bin} (install it: "
                f".venv/bin/pip install -e . , or pass --gateway-bin)"
            )
        target.port = free_port()
        target.path = setup.request_path
        target.headers = dict(setup.request_headers)
        argv = [gateway_bin, "run", "--apps", str(setup.apps_dir)]
        argv += ["--listen", f"{LOOPBACK}:{target.port}", "--log-level", log_level]
        if setup.config_file is not None:
            argv += ["--config", str(setup.config_file)]
        argv += setup.extra_args
        target.process = procs.start(f"gateway-{variant}{suffix}", argv, cpus=cpu.sut)
        started.append(target.process)
        if setup.after_start is not None:
            wait_port(target.port, timeout=30.0)
            setup.after_start(target.port)
        probe = wait_until_serving(
            target.process, target.port, path=target.path, headers=target.headers, timeout=30.0
        )
        check_body(target, probe.status, probe.body, setup.expected_body)
    except (VariantUnavailable, RuntimeError, OSError) as exc:
        target.error = str(exc)
        for child in reversed(started):  # a broken variant must not steal CPU from the others
            procs.stop(child)
            if child in procs.children:
                procs.children.remove(child)
    return target


def cpu_snapshot(procs: Processes) -> dict[str, float]:
    return {c.name: group_cpu_seconds(c.popen.pid) for c in procs.children if c.alive()}


def upstream_accepts(port: int) -> int:
    probe = http_get(port, _nginx.STATUS_PATH)
    return _nginx.parse_accepts(probe.body)


def measure(
    args: argparse.Namespace,
    upstream_port: int,
    wrk: str,
    cpu: _system.CpuPlan,
    targets: list[Target],
    procs: Processes,
    workdir: Path,
) -> None:
    script = _wrk.write_script(workdir)
    raw_log = workdir / "wrk.log"
    runnable = [t for t in targets if t.error is None]
    for round_no in range(1, args.rounds + 1):
        for target in runnable:
            if target.error is not None:
                continue
            assert target.port is not None
            print(f"  round {round_no}/{args.rounds}: {target.name} ...", end="", flush=True)
            drive = functools.partial(
                _wrk.run_wrk,
                wrk,
                target.port,
                script=script,
                connections=args.connections,
                threads=args.threads,
                path=target.path,
                headers=target.headers,
                cpus=cpu.load,
                raw_log=raw_log,
            )
            if args.quiet_wait > 0:
                busy = _system.wait_for_quiet(args.quiet_wait)
                if busy is not None:
                    print(f" (machine busy: {busy:.2f} CPUs in use by others)", end="", flush=True)
            try:
                if args.warmup > 0:
                    drive(duration=args.warmup)
                accepts0 = upstream_accepts(upstream_port)
                before, started = cpu_snapshot(procs), time.monotonic()
                busy0, waited0 = _system.busy_cpu_seconds(), _system.children_cpu_seconds()
                result = drive(duration=args.duration)
                busy1, waited1 = _system.busy_cpu_seconds(), _system.children_cpu_seconds()
                after, elapsed = cpu_snapshot(procs), time.monotonic() - started
                # -1: the status request that reads the counter is itself a new connection.
                target.upstream_connections.append(upstream_accepts(upstream_port) - accepts0 - 1)
            except (RuntimeError, OSError) as exc:
                target.error = f"wrk failed: {exc}"
                print(" failed")
                continue
            if target.process is not None and not target.process.alive():
                target.error = (
                    f"{target.name} died during the run; log {target.process.log_path}:\n"
                    f"{target.process.log_tail()}"
                )
                print(" died")
                continue
            target.rounds.append(result)
            # wrk's own start-up and exit are inside `elapsed`, so this slightly understates.
            usage = {
                name: round(100 * (after[name] - before[name]) / elapsed, 1)
                for name in before.keys() & after.keys()
            }
            usage[WRK] = round(100 * (waited1 - waited0) / elapsed, 1)
            # Whatever else ran on the machine meanwhile (another job, a test suite): noise.
            ours = sum(after[n] - before[n] for n in before.keys() & after.keys())
            usage[OTHER] = round(100 * (busy1 - busy0 - ours - (waited1 - waited0)) / elapsed, 1)
            target.cpu_rounds.append(usage)
            own = usage.get(target.process.name) if target.process else None
            print(
                f" {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.2f} ms, "
                f"CPU {own if own is not None else '?'}%, wrk {usage[WRK]}%, "
                f"other {usage[OTHER]}%",
                flush=True,
            )


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f} ms"


def report(targets: list[Target]) -> tuple[str, list[dict[str, object]]]:
    by_kind = {t.kind: t for t in targets if t.kind != "gateway"}
    upstream_rps = by_kind["upstream"].median("rps") if "upstream" in by_kind else None
    nginx = by_kind.get("nginx")
    nginx_rps = nginx.median("rps") if nginx else None
    nginx_eff = _per_cpu(nginx) if nginx else None
    baseline = next((t for t in targets if t.variant == BASELINE and t.label is None), None)
    baseline_rps = baseline.median("rps") if baseline else None

    header = (
        f"{'target':<24}{'req/s':>9}{'p50':>10}{'p99':>10}{'CPU':>6}{'req/CPU-s':>11}"
        f"{'x nginx':>9}{'x upstr':>9}{'x ' + BASELINE:>11}{'x nginx/CPU':>13}"
        f"{'up conns':>9}{'errors':>8}"
    )
    lines = [header, "-" * len(header)]
    checks: list[dict[str, object]] = []
    for t in targets:
        if t.error is not None or not t.rounds:
            first = (t.error or "not measured").splitlines()[0]
            lines.append(f"{t.name:<24}  FAILED: {first[:90]}")
            continue
        rps = t.median("rps")
        own = t.own_cpu()
        eff = _per_cpu(t)
        errors = sum(r.errors for r in t.rounds)
        lines.append(
            f"{t.name:<24}{rps:>9,.0f}{_ms(t.median('p50_us')):>10}{_ms(t.median('p99_us')):>10}"
            f"{('-' if own is None else f'{own:.0f}%'):>6}"
            f"{('-' if eff is None else f'{eff:,.0f}'):>11}"
            f"{_ratio(rps, nginx_rps):>9}{_ratio(rps, upstream_rps):>9}"
            f"{(_ratio(rps, baseline_rps) if t.kind == 'gateway' else '-'):>11}"
            f"{(_ratio(eff, nginx_eff) if t.kind != 'upstream' else '-'):>13}"
            f"{max(t.upstream_connections, default=0):>9}{errors:>8}"
        )
        if t.variant == BASELINE and t.label is None and nginx_rps and rps is not None:
            p99_ms = (t.median("p99_us") or 0) / 1000
            checks.append(
                _check(
                    f"{t.name} >= {NGINX_RATIO_TARGET}x nginx req/s",
                    rps / nginx_rps,
                    NGINX_RATIO_TARGET,
                    "x",
                )
            )
            checks.append(
                _check(
                    f"{t.name} p99 < {P99_TARGET_MS:g} ms", p99_ms, P99_TARGET_MS, " ms", below=True
                )
            )
        if t.variant in RATIO_TARGETS and t.label is None and baseline_rps and rps is not None:
            goal = RATIO_TARGETS[t.variant]
            checks.append(
                _check(f"{t.name} >= {goal}x {BASELINE} req/s", rps / baseline_rps, goal, "x")
            )
    own_nginx = nginx.own_cpu() if nginx else None
    if own_nginx is not None and own_nginx < SATURATED_CPU:
        lines.append(
            f"note: nginx used only {own_nginx:.0f}% of its CPU, so its req/s is the load side's "
            "limit, not its own; 'x nginx/CPU' compares requests per CPU-second instead."
        )
    noisy = sorted({t.name for t in targets for r in t.cpu_rounds if r.get(OTHER, 0.0) > NOISY_CPU})
    if noisy:
        lines.append(
            f"warning: other processes used > {NOISY_CPU:g}% of a CPU while measuring "
            f"{', '.join(noisy)}; rerun on a quiet machine (per-round figures in the JSON)."
        )
    if any(r.status_errors for t in targets for r in t.rounds):
        lines.append("warning: some responses were not 2xx/3xx (see 'errors'); those rows lie.")
    if checks:
        lines.append("")
        lines.append("targets:")
        for c in checks:
            lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['measured']}")
    failed = [t for t in targets if t.error is not None]
    for t in failed:
        lines.append("")
        lines.append(f"{t.name} failed:")
        lines.append("  " + (t.error or "").replace("\n", "\n  "))
    return "\n".join(lines), checks


def compare_report(targets: list[Target], main_label: str) -> str:
    """Per variant, the main executable against each --compare-bin one: the ratio of the medians
    and the median of the per-round ratios (each round measures both within seconds, so the
    per-round ratio cancels most of the machine's drift)."""
    lines: list[str] = []
    mains = {t.variant: t for t in targets if t.kind == "gateway" and t.label is None}
    for other in targets:
        if other.kind != "gateway" or other.label is None:
            continue
        main = mains.get(other.variant)
        if main is None or not main.rounds or not other.rounds:
            continue
        if not lines:
            lines.append(
                f"{'variant':<20}{'compared':<18}{'req/s':>18}{'median ratio':>14}"
                f"{'per-round ratios (median)':>28}"
            )
        paired = [a.rps / b.rps for a, b in zip(main.rounds, other.rounds, strict=False) if b.rps]
        # Requests per CPU-second of the gateway process itself: its cost per request, which
        # moves far less than req/s when other processes compete for the CPUs.
        main_eff, other_eff = _round_efficiency(main), _round_efficiency(other)
        paired_eff = [a / b for a, b in zip(main_eff, other_eff, strict=False) if a and b]
        main_rps, other_rps = main.median("rps") or 0.0, other.median("rps") or 0.0
        lines.append(
            f"{other.variant or '?':<20}{main_label + ' / ' + other.label:<18}"
            f"{f'{main_rps:,.0f} / {other_rps:,.0f}':>18}"
            f"{_ratio(main_rps, other_rps):>14}"
            f"{(f'{statistics.median(paired):.3f}x' if paired else '-'):>28}"
        )
        lines.append(f"{'':<20}rounds: {', '.join(f'{r:.3f}' for r in paired)}")
        if paired_eff:
            lines.append(
                f"{'':<20}req/CPU-s, per round (median "
                f"{statistics.median(paired_eff):.3f}x): "
                f"{', '.join(f'{r:.3f}' for r in paired_eff)}"
            )
    return "\n".join(lines)


def _round_efficiency(target: Target) -> list[float | None]:
    """Per round, requests per CPU-second of the target's own process (None: not measured)."""
    if target.process is None:
        return [None for _ in target.rounds]
    name = target.process.name
    out: list[float | None] = []
    for result, usage in zip(target.rounds, target.cpu_rounds, strict=False):
        cpu = usage.get(name)
        out.append(result.rps / (cpu / 100) if cpu else None)
    return out


def _per_cpu(target: Target) -> float | None:
    """Requests per CPU-second the target's own process spent: its cost, whatever the load."""
    rps, own = target.median("rps"), target.own_cpu()
    if rps is None or not own:
        return None
    return rps / (own / 100)


def _check(
    name: str, value: float, goal: float, unit: str, *, below: bool = False
) -> dict[str, object]:
    passed = value < goal if below else value >= goal
    return {"name": name, "measured": f"{value:.2f}{unit}", "goal": goal, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = _system.ensure_tools(install=not args.no_install)
    cpu = _system.plan_cpus(args.placement)
    gateway_bin = find_gateway_bin(args.gateway_bin)
    gateway_python = _system.script_interpreter(gateway_bin)
    machine = _system.describe(tools, gateway_python)
    started_at = dt.datetime.now(dt.UTC)

    env = machine["gateway_env"]
    assert isinstance(env, dict)
    print(f"gateway interpreter: {env.get('executable', gateway_python)}")
    print(f"  {env.get('implementation', '?')} {env.get('python', '?')}")
    print(
        f"  trio {env.get('trio')}, httptools {env.get('httptools')}, "
        f"trio-gateway {env.get('trio-gateway')}"
    )
    print(f"{machine['nginx']}; {machine['wrk']}; {machine['cpu_model']}")
    print(f"cpu placement: {cpu.note}")
    print(
        f"wrk: {args.threads} thread(s), {args.connections} connections, "
        f"{args.warmup:g}s warm-up + {args.duration:g}s per target, {args.rounds} round(s)"
    )

    workdir = Path(tempfile.mkdtemp(prefix="trio-gateway-bench-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    procs = Processes(log_dir)
    targets: list[Target] = []
    try:
        with terminate_on_sigterm():
            upstream = Target(name="upstream (direct)", kind="upstream", port=free_port())
            assert upstream.port is not None
            start_nginx(
                procs,
                tools["nginx"],
                upstream,
                workdir / "nginx-upstream",
                _nginx.upstream_conf(workdir / "nginx-upstream", upstream.port),
                cpu.upstream,
            )
            targets.append(upstream)
            proxy = Target(name="nginx proxy", kind="nginx", port=free_port())
            assert proxy.port is not None
            try:
                start_nginx(
                    procs,
                    tools["nginx"],
                    proxy,
                    workdir / "nginx-proxy",
                    _nginx.proxy_conf(workdir / "nginx-proxy", proxy.port, upstream.port),
                    cpu.sut,
                )
            except RuntimeError as exc:
                proxy.error = str(exc)
            targets.append(proxy)
            if not args.no_gateway:
                for variant in args.variants:
                    print(f"starting gateway variant {variant} ...", flush=True)
                    target = start_gateway(
                        procs,
                        gateway_bin,
                        cpu,
                        workdir,
                        upstream.port,
                        variant,
                        args.gateway_log_level,
                    )
                    if target.error:
                        print(f"  unavailable: {target.error.splitlines()[0]}")
                    targets.append(target)
                    for label, other_bin in args.compare_bin:
                        print(f"starting gateway variant {variant} @{label} ...", flush=True)
                        other = start_gateway(
                            procs,
                            other_bin,
                            cpu,
                            workdir,
                            upstream.port,
                            variant,
                            args.gateway_log_level,
                            label=label,
                        )
                        if other.error:
                            print(f"  unavailable: {other.error.splitlines()[0]}")
                        targets.append(other)
            measure(args, upstream.port, tools["wrk"], cpu, targets, procs, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if args.keep_workdir:
            print(f"configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    table, checks = report(targets)
    print()
    print(table)
    comparisons = compare_report(targets, args.label)
    if comparisons:
        print()
        print(comparisons)

    result = {
        "command": " ".join(
            [sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
        ),
        "started_at": started_at.isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "rounds": args.rounds,
            "variants": args.variants,
            "body_bytes": len(_nginx.BODY),
        },
        "machine": machine,
        "cpu_plan": cpu.as_json(),
        "targets": [
            {
                "name": t.name,
                "kind": t.kind,
                "variant": t.variant,
                "label": t.label,
                "error": t.error,
                "median": {k: t.median(k) for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us")}
                if t.rounds
                else None,
                "own_cpu_percent": t.own_cpu(),
                "requests_per_cpu_second": _per_cpu(t),
                "rounds": [r.as_json() for r in t.rounds],
                "cpu_percent_rounds": t.cpu_rounds,
                "upstream_connections_rounds": t.upstream_connections,
            }
            for t in targets
        ],
        "checks": checks,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"proxy-{started_at:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresult written to {out}")
    return 0 if all(t.error is None for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
