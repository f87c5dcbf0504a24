"""One API's JavaScript: a VM preloaded as Tyk preloads it, and the call of one middleware.

Load order, as in Tyk (``tyk-compat.md`` §6.1): the built-in functions, Underscore.js, the TykJS
library, the gateway's ``tyk_js_path`` file (user globals), then the API's files in order. All
share one global namespace, so the last definition of a name wins.

The string built-ins (``b64enc`` …) are JavaScript (``builtins.js``): the engine refuses calls into
Python while a call's time limit is armed. ``log``/``rawlog`` lines are collected during the call
and handed to the :class:`JsHost` after it. The built-ins that need the gateway
(``TykMakeHttpRequest``, ``TykGetKeyData``, ``TykSetKeyData``, ``TykBatchRequest``) work by
*suspend and replay*: the first time a call asks for one, the script is stopped, the host performs
the request (with the time left), and the call runs again from the start with that answer ready;
a request the script makes the same way again gets the recorded answer. A call with N such
requests therefore runs N+1 times; side effects happen once, because the answers are recorded.
Lines logged by a run that was stopped for a request are dropped (the replay logs them again).
A script whose requests differ between runs (say, a timestamp in the URL) still works: from the
first request that differs, it is asked again. Host methods are synchronous and run on the
calling thread, which is not Trio's (use ``trio.from_thread.run(..., trio_token=...)``).
"""

from __future__ import annotations

import concurrent.futures
import importlib.resources
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar, final

import attrs

from .engine import (
    JsError,
    JsFunction,
    JsJob,
    JsLoadError,
    JsMemoryError,
    JsTimeoutError,
    JsVm,
    call_expression,
)

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "UNDERSCORE_LOCATIONS",
    "ApiScripts",
    "JsCall",
    "JsHost",
    "JsPending",
    "JsSource",
    "find_underscore",
    "middleware_result",
]

T = TypeVar("T")

log = logging.getLogger("trio_gateway.plugins.jsvm")

#: Memory cap per VM unless the gateway sets another (QuickJS counts its own heap only).
DEFAULT_MEMORY_LIMIT: Final = 64 * 1024 * 1024

#: Where an installed package ships Underscore.js, tried in order. Debian's libjs-underscore puts
#: it in /usr/share/javascript; we never carry a copy of our own.
UNDERSCORE_LOCATIONS: Final[tuple[Path, ...]] = (
    Path("/usr/share/javascript/underscore/underscore.js"),
    Path("/usr/share/nodejs/underscore/underscore.js"),
)

# Scripts that touch `_` without Underscore installed get this error instead of "not defined".
# Assigning `_` (a script's own helper) replaces the trap with a plain value.
_UNDERSCORE_MISSING: Final = """
Object.defineProperty(globalThis, "_", {
    configurable: true,
    get: function () {
        throw new ReferenceError(
            "Underscore.js (_) is not available: install a package that ships it " +
            "(Debian: libjs-underscore) or set the path to underscore.js in the gateway settings");
    },
    set: function (value) {
        Object.defineProperty(globalThis, "_", {configurable: true, writable: true, value: value});
    }
});
"""

# Underscore.js is evaluated on the first read of `_`, not when the VM is built: evaluating it
# costs ~11 ms per VM (most of a VM's build time) and most scripts never use it. Reading `_`
# evaluates the source kept in the VM (the same file, so the same `_` as an eager load); assigning
# `_` first (a script's own helper) replaces it without evaluating Underscore at all.
_UNDERSCORE_LAZY: Final = """
(function (source) {
    Object.defineProperty(globalThis, "_", {
        configurable: true,
        get: function () {
            delete globalThis._;
            (0, eval)(source);
            return globalThis._;
        },
        set: function (value) {
            Object.defineProperty(
                globalThis, "_", {configurable: true, writable: true, value: value});
        }
    });
})(globalThis.__tykUnderscoreSource);
delete globalThis.__tykUnderscoreSource;
"""

# Time allowed for evaluating our own library files at VM creation.
_LIBRARY_TIMEOUT: Final = 5.0


class JsHost(Protocol):
    """What the driver provides to the built-ins that reach outside the VM.

    Arguments and results are strings, as in Tyk: JSON travels as JSON text. Returning ``None``
    gives the script ``undefined`` (Tyk's answer when a request fails), and so does an
    exception, which is reported through :meth:`error`. ``timeout`` is the time the call has
    left, in seconds: a host method must not take longer.
    """

    def log(self, message: str) -> None: ...

    def rawlog(self, message: str) -> None: ...

    def error(self, message: str) -> None:
        """A built-in failed (e.g. b64dec of bad data); Tyk logs these at error level."""

    def make_http_request(self, request_json: str, *, timeout: float) -> str | None: ...

    def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None: ...

    def set_key_data(
        self, key: str, session_json: str, suppress_reset: str, *, timeout: float
    ) -> None: ...

    def batch_request(self, request_json: str, *, timeout: float) -> str | None: ...


@attrs.frozen(kw_only=True)
class JsSource:
    """A script to load: its text and the name errors should carry (usually the file path)."""

    name: str
    text: str

    @classmethod
    def from_file(cls, path: Path) -> JsSource:
        return cls(name=str(path), text=path.read_text(encoding="utf-8"))


def find_underscore(
    configured: Path | None = None, locations: Sequence[Path] = UNDERSCORE_LOCATIONS
) -> Path | None:
    """The Underscore.js file to preload: ``configured`` if given, else an installed copy."""
    if configured is not None:
        if not configured.is_file():
            raise JsLoadError(str(configured), "the configured Underscore.js file does not exist")
        return configured
    for candidate in locations:
        if candidate.is_file():
            return candidate
    return None


#: The most values (object fields, array and collection entries) reachable from an API's globals
#: that are put back before each call; a larger state is not restored (a warning says so): the
#: check costs ~0.15 us per value per call.
MAX_SNAPSHOT_VALUES: Final = 20_000

#: ``__tyk.run`` marks a call's plain text value (nothing pending, nothing logged) with this.
_PLAIN_OUT: Final = "\x01"

#: JSON for the VM: compact, and without the circular-reference check (the arguments are trees the
#: driver built from the request).
_encode_json: Final = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode

#: Requests to the gateway one call may make before it is stopped with an error.
MAX_HOST_CALLS: Final = 64


def _to_str(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _packaged(name: str) -> JsSource:
    text = importlib.resources.files(__package__ or "").joinpath(name).read_text(encoding="utf-8")
    return JsSource(name=f"<{name}>", text=text)


@final
class ApiScripts:
    """The JavaScript of one API: a preloaded VM, rebuilt after it hits its memory cap.

    ``sources`` are the ``tyk_js_path`` file (if any) followed by the API's files. Building
    raises :class:`~plugin_drivers.javascript.engine.JsLoadError` naming the bad file.
    Methods are synchronous; call them from a worker thread, never from the event loop.
    """

    def __init__(
        self,
        *,
        api_id: str,
        sources: Sequence[JsSource],
        host: JsHost,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        load_timeout: float = 5.0,
        underscore: Path | None = None,
        underscore_locations: Sequence[Path] = UNDERSCORE_LOCATIONS,
    ) -> None:
        self._api_id = api_id
        self._sources = tuple(sources)
        self._host = host
        self._memory_limit = memory_limit
        self._load_timeout = load_timeout
        self._underscore = find_underscore(underscore, underscore_locations)
        self._underscore_text: str | None = None
        self._lock = threading.Lock()  # one rebuild at a time
        self._vm = self._build()
        self._calls = _VmCalls(self._vm)
        self.rebuilds = 0

    @property
    def underscore(self) -> Path | None:
        """The Underscore.js file loaded, or None when ``_`` is the "not installed" trap."""
        return self._underscore

    def _build(self) -> JsVm:
        vm = JsVm(memory_limit=self._memory_limit, name=self._api_id)
        try:
            builtins = _packaged("builtins.js")
            vm.evaluate(builtins.text, filename=builtins.name, timeout=_LIBRARY_TIMEOUT)
            if self._underscore is None:
                vm.evaluate(_UNDERSCORE_MISSING, filename="<underscore>", timeout=_LIBRARY_TIMEOUT)
            else:
                if self._underscore_text is None:
                    self._underscore_text = self._underscore.read_text(encoding="utf-8")
                vm.set_global_text("__tykUnderscoreSource", self._underscore_text)
                vm.evaluate(
                    _UNDERSCORE_LAZY,
                    filename=str(self._underscore),
                    timeout=_LIBRARY_TIMEOUT,
                )
            library = _packaged("tyk_library.js")
            vm.evaluate(library.text, filename=library.name, timeout=_LIBRARY_TIMEOUT)
            vm.evaluate("__tyk.markLibrary();", filename="<library>", timeout=_LIBRARY_TIMEOUT)
            for source in self._sources:
                vm.evaluate(source.text, filename=source.name, timeout=self._load_timeout)
            # The state every call starts from, as Tyk's copy of the VM per request (builtins.js).
            recorded = vm.eval_json(
                f"JSON.stringify(__tyk.snapshot({MAX_SNAPSHOT_VALUES}))",
                timeout=self._load_timeout,
                filename="<snapshot>",
            )
            if recorded == -1:
                log.warning(
                    "API %r: its scripts' global state is larger than %d values: it is not put "
                    "back before each call, so what a request changes in it stays for the next "
                    '(docs/javascript.md, "Concurrency and state")',
                    self._api_id,
                    MAX_SNAPSHOT_VALUES,
                )
        except BaseException:
            vm.close()
            raise
        return vm

    def defines(self, name: str, method: str = "") -> bool:
        """Whether the global ``name`` (dotted) exists, and has a function ``method`` if given:
        the driver checks each hook's middleware object at load time."""
        call_expression(name)  # refuses anything but a dotted name, before it reaches code
        target = f"{name}.{method}" if method else name
        check = f"typeof {target} === 'function'" if method else f"typeof {target} !== 'undefined'"
        code = (
            f"(function () {{ try {{ return JSON.stringify({check}); }}"
            " catch (e) { return 'false'; } })()"
        )
        return bool(self._vm.eval_json(code, timeout=_LIBRARY_TIMEOUT))

    def run_middleware(
        self,
        name: str,
        request: dict[str, Any],
        session: dict[str, Any],
        config: dict[str, Any],
        *,
        timeout: float,
    ) -> dict[str, Any]:
        """``name.DoProcessRequest(request, session, config)``; the decoded object it returns.

        Raises :class:`JsError` (and its timeout / memory subclasses) for a failed call, a
        missing middleware object, or a return value that is not a JSON object.
        """
        out = self._call(f"{name}.DoProcessRequest", request, session, config, timeout=timeout)
        return middleware_result(name, out)

    def run_virtual(
        self,
        function: str,
        request: dict[str, Any],
        session: dict[str, Any],
        config: dict[str, Any],
        *,
        timeout: float,
    ) -> dict[str, Any]:
        """A virtual endpoint's ``function(request, session, config)``: the TykJsResponse object."""
        out = self._call(function, request, session, config, timeout=timeout)
        return virtual_result(function, out)

    # -- one call, step by step (the driver awaits each step; see JsCall) -------------------

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the VM's own thread (the VM's methods, and :meth:`step`, then run
        inline there); a future for its value."""
        return self._vm.submit(fn)

    def post_jobs(self, jobs: list[JsJob[Any]]) -> None:
        """Queue jobs for the VM's own thread (the driver's path, :meth:`JsVm.post_jobs`)."""
        self._vm.post_jobs(jobs)

    @staticmethod
    def withdraw(job: JsJob[Any]) -> bool:
        """Take back a queued job that has not started (:meth:`JsVm.withdraw`)."""
        return JsVm.withdraw(job)

    def step(self, call: JsCall, timeout: float) -> JsPending | None:
        """Run ``call`` once with the answers it has. None: it finished (``call.out`` holds its
        value, its log lines are written); else the gateway request it is waiting for."""
        text = self._run_step(call, timeout)
        if text.startswith(_PLAIN_OUT):  # the usual middleware call: nothing logged or pending
            call.out = text[1:]
            return None
        envelope = json.loads(text)
        pending = envelope["pending"]
        if pending is None:
            self._emit_logs(envelope["logs"])
            call.out = envelope["out"]
            return None
        if len(call.answers) >= MAX_HOST_CALLS:
            raise JsError(f"{call.function}: more than {MAX_HOST_CALLS} requests to the gateway")
        name, args, key = pending
        return JsPending(name=name, args=args, key=key)

    def answer(self, call: JsCall, pending: JsPending, timeout: float) -> None:
        """Perform ``pending`` through the host (blocking, within ``timeout``) and record its
        answer for the next :meth:`step`. Call it off the VM's thread, so the VM serves other
        requests meanwhile."""
        answer = self._ask_host(pending.name, pending.args, max(0.0, timeout))
        call.answers.append([pending.key, answer])  # the key exactly as the script made it

    def _call(self, function: str, *args: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        call = JsCall.start(function, *args)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JsTimeoutError(f"{function}: no time left after its requests to the gateway")
            pending = self.step(call, remaining)
            if pending is None:
                return call.out
            self.answer(call, pending, deadline - time.monotonic())

    def _run_step(self, call: JsCall, timeout: float) -> str:
        """One run of ``call``: the envelope's text (``builtins.js``, ``run``)."""
        calls = self._calls
        answers = json.dumps(call.answers) if call.answers else "[]"
        try:
            text = calls.vm.call_text(
                calls.run_text,
                calls.target(call.function),
                answers,
                call.args_text,
                timeout=timeout,
            )
        except JsMemoryError:
            # Whatever the script left reachable stays allocated: start again from the sources.
            self._replace(calls.vm)
            raise
        if text is None:
            raise JsError("the call envelope returned nothing")
        return text

    def _ask_host(self, name: str, args: list[Any], timeout: float) -> Any:
        host = self._host
        strings = [_to_str(a) for a in args]
        try:
            if name == "TykMakeHttpRequest":
                return host.make_http_request(strings[0], timeout=timeout)
            if name == "TykGetKeyData":
                return host.get_key_data(strings[0], strings[1], timeout=timeout)
            if name == "TykSetKeyData":
                host.set_key_data(strings[0], strings[1], strings[2], timeout=timeout)
                return None
            if name == "TykBatchRequest":
                return host.batch_request(strings[0], timeout=timeout)
        except Exception as exc:
            host.error(f"{name} failed: {type(exc).__name__}: {exc}")
            return None
        raise JsError(f"unknown gateway built-in {name!r}")

    def _emit_logs(self, logs: list[list[str]]) -> None:
        for kind, line in logs:
            if kind == "rawlog":
                self._host.rawlog(line)
            elif kind == "error":
                self._host.error(line)
            else:
                self._host.log(line)

    def _replace(self, old: JsVm) -> None:
        with self._lock:
            if self._vm is not old:
                return  # another thread already rebuilt it
            self._vm = self._build()
            self._calls = _VmCalls(self._vm)
            self.rebuilds += 1
        old.close()

    def close(self) -> None:
        self._vm.close()


@final
class _VmCalls:
    """How one VM is called: the envelope function, and the targets registered in it (each
    middleware or virtual-endpoint function, on its first call: no source is compiled per call).
    Used on the VM's thread only; replaced with the VM after a rebuild."""

    def __init__(self, vm: JsVm) -> None:
        self.vm = vm
        self.run_text: JsFunction = vm.function("__tyk.runText")
        self._registered: set[str] = set()

    def target(self, function: str) -> str:
        if function not in self._registered:
            call_expression(function)  # refuses anything but a dotted name, before it reaches code
            self.vm.evaluate(
                f"__tyk.register({json.dumps(function)},"
                f" function (args) {{ return {function}(...args); }});",
                filename="<register>",
                timeout=_LIBRARY_TIMEOUT,
            )
            self._registered.add(function)
        return function


@attrs.define(eq=False)
class JsCall:
    """One call of a global function, made in steps: each step runs it from the start with the
    gateway answers recorded so far (suspend and replay, module docstring)."""

    function: str
    #: The arguments as one JSON array (the script gets them as fresh objects on every run).
    args_text: str
    #: ``[[key, answer], ...]`` in the order the script asked.
    answers: list[list[Any]] = attrs.field(factory=list)
    #: What the function returned, once a step finished.
    out: Any = None

    @classmethod
    def start(cls, function: str, *args: Any) -> JsCall:
        return cls(function=function, args_text=_encode_json(args))


@attrs.frozen(kw_only=True)
class JsPending:
    """A gateway built-in the script called and is waiting for: its name and arguments."""

    name: str
    args: list[Any]
    key: Any


def middleware_result(name: str, out: Any) -> dict[str, Any]:
    """What ``name.DoProcessRequest`` returned, as the object Tyk decodes, or :class:`JsError`."""
    if out is None:
        raise JsError(f"middleware {name} returned no request object")
    return _json_object(out, f"middleware {name}")


def virtual_result(function: str, out: Any) -> dict[str, Any]:
    """What a virtual endpoint's ``function`` returned (``TykJsResponse``'s JSON text), as the
    object Tyk decodes, or :class:`JsError`."""
    if out is None:
        raise JsError(f"virtual endpoint {function} returned nothing")
    return _json_object(out, f"virtual endpoint {function}")


def _json_object(out: Any, what: str) -> dict[str, Any]:
    # Tyk's wrapper returns a JSON *string*; a script may also hand back an object directly.
    if isinstance(out, str):
        try:
            out = json.loads(out)
        except ValueError as exc:
            raise JsError(f"{what} returned data that is not JSON: {exc}") from None
    if not isinstance(out, dict):
        raise JsError(f"{what} returned {type(out).__name__}, not an object")
    return out
