"""Measure embeddable JavaScript engines from PyPI for the JS (otto) driver.

Each candidate is installed from wheels alone (``--only-binary=:all:``) into a venv of its own
(``quickjs`` and ``quickjs-ng`` both install a module named ``quickjs``), then probed by running
this same file inside that venv with ``--probe ENGINE CHECK``. Every probe is its own process with
an outer timeout, so an engine that cannot be interrupted, or that crashes when called from another
thread, shows up as "hung" / "crashed" instead of taking the benchmark down.

    python bench/js_engines.py                        # all candidates, venvs under /tmp/js-engines
    python bench/js_engines.py --venvs DIR mini-racer # one candidate
    .venv/bin/python bench/js_engines.py --layer      # our engine layer, in the project's venv

The table it prints is the one in docs/decisions.md ("JavaScript engine").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: candidate -> the pip requirement that installs it
CANDIDATES: dict[str, str] = {
    "mini-racer": "mini-racer",
    "quickjs": "quickjs",
    "quickjs-ng": "quickjs-ng",
    "stpyv8": "stpyv8",
    "dukpy": "dukpy",
    "pyduktape2": "pyduktape2",
    "pythonmonkey": "pythonmonkey",
    "quickjs-bindings": "quickjs-bindings",
    "quickjs-rs": "quickjs-rs",
}

CHECKS = ("version", "startup", "call", "timeout", "memory", "thread", "es2015", "callback")

# A small Tyk-style middleware: JSON request in, header set, JSON out (what DoProcessRequest does).
LIBRARY = """
var TykLike = {};
TykLike.process = function (requestJSON, sessionJSON, configJSON) {
    var request = JSON.parse(requestJSON);
    var session = JSON.parse(sessionJSON);
    var config = JSON.parse(configJSON);
    request.SetHeaders["X-Hello"] = "world " + config.APIID;
    if (request.Headers["Authorization"] === undefined) {
        request.ReturnOverrides.ResponseCode = 0;
    }
    return JSON.stringify({Request: request, SessionMeta: session.meta_data || {}});
};
function spin() { while (true) {} }
function ok() { return "ok"; }
function hog() { var a = []; while (true) { a.push(new Array(100000).join("x") + a.length); } }
"""

REQUEST = json.dumps(
    {
        "Headers": {"Host": ["example.com"], "Accept": ["*/*"], "User-Agent": ["bench"]},
        "SetHeaders": {},
        "DeleteHeaders": [],
        "Body": "",
        "URL": "/get?a=1",
        "Params": {"a": ["1"]},
        "AddParams": {},
        "ExtendedParams": {},
        "DeleteParams": [],
        "ReturnOverrides": {
            "ResponseCode": 0,
            "ResponseError": "",
            "ResponseBody": "",
            "ResponseHeaders": None,
            "OverrideError": False,
        },
        "IgnoreBody": False,
        "Method": "GET",
        "RequestURI": "/get?a=1",
        "Scheme": "http",
    }
)
SESSION = json.dumps({"meta_data": {"tier": "gold"}})
CONFIG = json.dumps({"OrgID": "org", "APIID": "api1", "config_data": {}})

ES2015 = """
(function () {
    const add = (a, b) => a + b;
    let [x, y] = [1, 2];
    class Box { constructor(v) { this.v = v; } get twice() { return this.v * 2; } }
    const m = new Map([["k", 1]]);
    const s = `${x}-${y}`;
    const {v} = new Box(3);
    return add(x, y) === 3 && s === "1-2" && v === 3 && m.get("k") === 1
        && new Box(2).twice === 4 && [..."ab"].length === 2;
})()
"""

MEMORY_LIMIT = 64 * 1024 * 1024
TIME_LIMIT = 0.2


class Engine:
    """What each probe needs from an engine; one subclass per candidate."""

    def version(self) -> str:
        from importlib.metadata import version

        return version(self.dist)

    dist = ""

    def new(self) -> Any:
        raise NotImplementedError

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def process(self, vm: Any) -> str:
        return str(self.run(vm, f"TykLike.process({REQUEST!r}, {SESSION!r}, {CONFIG!r})"))

    def limit_memory(self, vm: Any, limit: int) -> bool:
        return False

    def callback(self, vm: Any) -> str:
        """Can the script call a Python function synchronously while a time limit is armed?"""
        return "not probed"


class MiniRacerEngine(Engine):
    dist = "mini-racer"

    def new(self) -> Any:
        from py_mini_racer import MiniRacer

        vm = MiniRacer()
        vm.eval(LIBRARY)
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        return vm.eval(code, timeout_sec=timeout)

    def process(self, vm: Any) -> str:
        return str(vm.call("TykLike.process", REQUEST, SESSION, CONFIG))

    def limit_memory(self, vm: Any, limit: int) -> bool:
        vm.set_hard_memory_limit(limit)
        return True

    def callback(self, vm: Any) -> str:
        # Its only way in is wrap_py_function, documented as async: the script gets a Promise.
        return "async only (a Promise)"


class QuickJSEngine(Engine):
    dist = "quickjs"

    def new(self) -> Any:
        import quickjs

        vm = quickjs.Context()
        vm.eval(LIBRARY)
        # A function value is callable from Python (arguments and result converted by the binding).
        self._fn = vm.eval("TykLike.process")
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        vm.set_time_limit(-1 if timeout is None else timeout)
        return vm.eval(code)

    def process(self, vm: Any) -> str:
        return str(self._fn(REQUEST, SESSION, CONFIG))

    def limit_memory(self, vm: Any, limit: int) -> bool:
        vm.set_memory_limit(limit)
        return True

    def callback(self, vm: Any) -> str:
        vm.add_callable("up", lambda s: s.upper())
        try:
            return "yes" if self.run(vm, "up('a')", timeout=5) == "A" else "wrong value"
        except Exception as exc:
            return f"refused ({str(exc).splitlines()[0][:50]})"


class QuickJSNgEngine(QuickJSEngine):
    dist = "quickjs-ng"


class STPyV8Engine(Engine):
    dist = "stpyv8"

    def new(self) -> Any:
        import STPyV8

        vm = STPyV8.JSContext()
        vm.enter()
        vm.eval(LIBRARY)
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        import STPyV8

        if timeout is None:
            return vm.eval(code)
        # The only interrupt it offers is process-wide: terminate every running script.
        timer = threading.Timer(timeout, STPyV8.JSEngine.terminateAllThreads)
        timer.start()
        try:
            return vm.eval(code)
        finally:
            timer.cancel()


class DukpyEngine(Engine):
    dist = "dukpy"

    def new(self) -> Any:
        import dukpy

        vm = dukpy.JSInterpreter()
        vm.evaljs(LIBRARY + ";null")  # its evaljs must end on a JSON-able value
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        return vm.evaljs(code)  # no time limit in its API


class PyDuktape2Engine(Engine):
    dist = "pyduktape2"

    def new(self) -> Any:
        import pyduktape2

        vm = pyduktape2.DuktapeContext()
        vm.eval_js(LIBRARY)
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        return vm.eval_js(code)  # no time limit in its API


class PythonMonkeyEngine(Engine):
    dist = "pythonmonkey"

    def new(self) -> Any:
        import pythonmonkey

        pythonmonkey.eval(LIBRARY)
        return pythonmonkey

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        return vm.eval(code)


class QuickJSBindingsEngine(Engine):
    dist = "quickjs-bindings"

    def new(self) -> Any:
        import quickjs

        runtime = quickjs.Runtime()
        vm = runtime.new_context()
        self._runtime = runtime
        self._deadline: float | None = None
        runtime.set_interrupt_handler(
            lambda: self._deadline is not None and time.monotonic() > self._deadline
        )
        vm.eval(LIBRARY + ";null")
        self._fn = vm.get("TykLike").get("process")
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return vm.eval(code)
        finally:
            self._deadline = None

    def process(self, vm: Any) -> str:
        return str(self._fn(REQUEST, SESSION, CONFIG))

    def limit_memory(self, vm: Any, limit: int) -> bool:
        self._runtime.set_memory_limit(limit)
        return True


class QuickJSRsEngine(Engine):
    dist = "quickjs-rs"

    def new(self) -> Any:
        import quickjs_rs

        # Its memory cap belongs to the runtime, set when it is made.
        self._runtime = quickjs_rs.Runtime(memory_limit=MEMORY_LIMIT)
        vm = quickjs_rs.Context(self._runtime, timeout=3600)
        vm.eval(LIBRARY + ";null")
        return vm

    def run(self, vm: Any, code: str, timeout: float | None = None) -> Any:
        vm._timeout = 3600 if timeout is None else timeout  # its per-context wall-clock limit
        return vm.eval(code)

    def limit_memory(self, vm: Any, limit: int) -> bool:
        return limit == MEMORY_LIMIT

    def callback(self, vm: Any) -> str:
        vm.register("up", lambda s: s.upper())
        return "yes" if self.run(vm, "up('a')", timeout=5) == "A" else "wrong value"


ENGINES: dict[str, type[Engine]] = {
    "mini-racer": MiniRacerEngine,
    "quickjs": QuickJSEngine,
    "quickjs-ng": QuickJSNgEngine,
    "stpyv8": STPyV8Engine,
    "dukpy": DukpyEngine,
    "pyduktape2": PyDuktape2Engine,
    "pythonmonkey": PythonMonkeyEngine,
    "quickjs-bindings": QuickJSBindingsEngine,
    "quickjs-rs": QuickJSRsEngine,
}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(name: str, check: str) -> str:
    """Run one check inside the engine's venv; returns the table cell."""
    engine = ENGINES[name]()
    if check == "version":
        return engine.version()
    if check == "startup":
        times = []
        for _ in range(20):
            start = time.perf_counter()
            vm = engine.new()
            engine.process(vm)
            times.append(time.perf_counter() - start)
        return f"{statistics.median(times) * 1000:.2f} ms"
    vm = engine.new()
    if check == "call":
        out = json.loads(engine.process(vm))
        assert out["Request"]["SetHeaders"]["X-Hello"] == "world api1", out
        for _ in range(200):
            engine.process(vm)
        times = []
        for _ in range(3000):
            start = time.perf_counter()
            engine.process(vm)
            times.append(time.perf_counter() - start)
        return f"{statistics.median(times) * 1e6:.0f} µs"
    if check == "timeout":
        start = time.perf_counter()
        try:
            engine.run(vm, "spin()", timeout=TIME_LIMIT)
        except Exception as exc:
            elapsed = time.perf_counter() - start
            after = engine.run(vm, "ok()")
            return f"yes, {elapsed * 1000:.0f} ms ({type(exc).__name__}); after: {after}"
        return "returned?!"
    if check == "memory":
        if not engine.limit_memory(vm, MEMORY_LIMIT):
            return "no API"
        try:
            engine.run(vm, "hog()", timeout=20)
        except Exception as exc:
            try:
                after = engine.run(vm, "ok()")
            except Exception as exc2:
                after = f"unusable ({type(exc2).__name__})"
            return f"yes ({type(exc).__name__}), peak RSS {_rss_mib():.0f} MiB; after: {after}"
        return "returned?!"
    if check == "thread":
        result: list[str] = []

        def other() -> None:
            try:
                result.append(str(engine.process(vm))[:2])
            except Exception as exc:
                result.append(f"error {type(exc).__name__}: {exc}"[:80])

        for _ in range(3):
            worker = threading.Thread(target=other)
            worker.start()
            worker.join()
        engine.process(vm)
        return "any thread" if all(r == '{"' for r in result) else result[-1]
    if check == "callback":
        try:
            return engine.callback(vm)
        except Exception as exc:
            return f"error ({type(exc).__name__}: {str(exc)[:40]})"
    if check == "es2015":
        try:
            return "yes" if engine.run(vm, ES2015) is True else "no"
        except Exception as exc:
            return f"no ({type(exc).__name__})"
    raise ValueError(check)


def _venv_python(venvs: Path, name: str) -> tuple[Path | None, str]:
    venv = venvs / name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python, marker.read_text()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            CANDIDATES[name],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        return None, (lines[-1] if lines else "install failed")[:90]
    size = subprocess.run(
        ["du", "-sm", str(venv / "lib")], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    marker.write_text(f"wheel ok ({size} MiB venv)")
    return python, marker.read_text()


def _cell(python: Path, name: str, check: str) -> str:
    try:
        proc = subprocess.run(
            [str(python), __file__, "--probe", name, check],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "hung (killed after 60 s)"
    if proc.returncode < 0:
        return f"crashed (signal {-proc.returncode})"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"error: {last[:70]}"
    return proc.stdout.strip()


def measure_layer() -> None:
    """The gateway's engine layer (plugin_drivers.javascript) in this venv: build and call costs."""
    from plugin_drivers.javascript.scripts import ApiScripts, JsSource

    class QuietHost:
        def log(self, message: str) -> None: ...
        def rawlog(self, message: str) -> None: ...
        def error(self, message: str) -> None: ...
        def make_http_request(self, request_json: str, *, timeout: float) -> str | None:
            return '{"Code": 200}'

        def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None: ...
        def set_key_data(self, key: str, s: str, r: str, *, timeout: float) -> None: ...
        def batch_request(self, request_json: str, *, timeout: float) -> str | None: ...

    source = JsSource(
        name="mw.js",
        text="""
        var mw = new TykJS.TykMiddleware.NewMiddleware({});
        mw.NewProcessRequest(function (request, session, config) {
            request.SetHeaders["X-Hello"] = "world " + config.APIID;
            return mw.ReturnData(request, {});
        });
        var up = new TykJS.TykMiddleware.NewMiddleware({});
        up.NewProcessRequest(function (request, session, config) {
            request.SetHeaders["X-Up"] = JSON.parse(TykMakeHttpRequest("{}")).Code;
            return up.ReturnData(request, {});
        });
        """,
    )
    request, session, config = json.loads(REQUEST), json.loads(SESSION), json.loads(CONFIG)
    builds = []
    for _ in range(20):
        start = time.perf_counter()
        api = ApiScripts(api_id="bench", sources=[source], host=QuietHost())
        builds.append(time.perf_counter() - start)
        api.close()
    api = ApiScripts(api_id="bench", sources=[source], host=QuietHost())
    for name in ("mw", "up"):
        times = []
        for _ in range(2000):
            start = time.perf_counter()
            api.run_middleware(name, request, session, config, timeout=5)
            times.append(time.perf_counter() - start)
        print(f"run_middleware {name}: median {statistics.median(times) * 1e6:.0f} µs")
    print(
        f"build a VM (built-ins, Underscore {api.underscore}, TykJS, one file): "
        f"median {statistics.median(builds) * 1000:.1f} ms"
    )
    api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", nargs=2, metavar=("ENGINE", "CHECK"))
    parser.add_argument("--venvs", type=Path, default=Path("/tmp/js-engines"))
    parser.add_argument("--layer", action="store_true", help="measure plugin_drivers.javascript")
    parser.add_argument("engines", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args()
    if args.layer:
        measure_layer()
        return
    if args.probe:
        print(probe(*args.probe))
        return
    args.venvs.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.engines:
        python, install = _venv_python(args.venvs, name)
        row = {"engine": name, "install": install}
        for check in CHECKS:
            row[check] = _cell(python, name, check) if python else "-"
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
    columns = ["engine", "install", *CHECKS]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
