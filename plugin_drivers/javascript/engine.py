"""One JavaScript VM, with a time limit per call and a memory cap, behind an engine-neutral API.

The engine is QuickJS-NG through the ``quickjs-ng`` wheel (chosen by measurement:
docs/decisions.md, "JavaScript engine"). Nothing outside this module imports ``quickjs``; another
engine fits behind the same :class:`JsVm` methods and exceptions.

No Python callbacks. The binding refuses to call into Python while a time limit is set, so a
VM built here has none: everything a script calls runs in JavaScript, and the built-ins that need
the gateway suspend the script instead (``scripts.py`` explains how).

Thread discipline. The QuickJS binding's authors report crashes when one runtime is used from
several threads, even one after another (QuickJS records the C stack of the thread that made the
runtime for its stack-overflow check). So every VM owns one thread of its own: it is created there
and every engine call runs there. Callers either block on the VM thread's answer (the methods),
or hand it whole jobs: :class:`JsJob` (a function and a callback the VM thread calls with its
outcome) through :meth:`JsVm.post` or, several at once, :meth:`JsVm.post_jobs` (the driver's hot
path: no future, no condition variable, a job that has not started can be withdrawn), or
:meth:`JsVm.submit` for a ``concurrent.futures`` future. Inside a job the methods
run inline. Jobs run one at a time, in arrival order, from a C queue (``queue.SimpleQueue``): a
job costs the VM thread no Python-level locking.

Time limit. QuickJS stops a script from its interrupt handler once the call has used ``timeout``
seconds of *processor* time (the binding measures with C ``clock()``); a script waiting in a
Python callback uses none. On an idle machine that is the wall-clock time; on a loaded one the
wall-clock time until the stop can be longer (docs/javascript.md has the figures). After the stop
the VM is usable (tested).

Memory cap. QuickJS refuses allocations past ``memory_limit`` bytes; the script gets an
"out of memory" error, which we raise as :class:`JsMemoryError`. The VM stays usable, but whatever
the script kept in globals stays allocated, so the owner should rebuild the VM
(:class:`~plugin_drivers.javascript.scripts.ApiScripts` does).
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import queue
import re
import threading
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, final

import outcome
import quickjs

log = logging.getLogger("trio_gateway.plugins.jsvm")

__all__ = [
    "JsError",
    "JsFunction",
    "JsJob",
    "JsLoadError",
    "JsMemoryError",
    "JsTimeoutError",
    "JsVm",
    "JsVmClosedError",
    "call_expression",
]

T = TypeVar("T")

# The binding names every source "<input>"; we put the real file name back in messages.
_INPUT_POSITION: Final = re.compile(r"<input>(?::(\d+))?(?::(\d+))?")
# A dotted JavaScript name (`obj`, `TykJS.mw`), the only thing we splice into code we evaluate.
_JS_NAME: Final = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


class JsError(Exception):
    """A script failed: a thrown error, a name that is not defined, a bad return value."""


class JsLoadError(JsError):
    """A source file could not be evaluated (syntax error, or an error thrown at load time)."""

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename


class JsTimeoutError(JsError):
    """The call used its whole time limit and was stopped."""


class JsMemoryError(JsError):
    """The script tried to allocate past the VM's memory cap and was stopped."""


class JsVmClosedError(JsError):
    """The VM was closed before the call could run."""


def call_expression(function: str, *args: Any) -> str:
    """JavaScript source for ``function(args...)``, the arguments as JSON literals.

    ``function`` must be a dotted name: it usually comes from an API definition, and nothing
    else from outside is ever spliced into code.
    """
    if not _JS_NAME.fullmatch(function):
        raise ValueError(f"not a JavaScript function name: {function!r}")
    literals = ", ".join(json.dumps(arg, ensure_ascii=False) for arg in args)
    return f"{function}({literals})"


def _message(exc: BaseException, filename: str) -> str:
    text = str(exc).strip()
    return _INPUT_POSITION.sub(
        lambda m: filename + "".join(f":{g}" for g in m.groups() if g is not None), text
    )


@final
class JsFunction:
    """A handle on a function in one VM (:meth:`JsVm.function`), for :meth:`JsVm.call_text`."""

    __slots__ = ("_native", "_vm")

    def __init__(self, vm: JsVm, native: Any) -> None:
        self._vm = vm
        self._native = native


@final
class JsJob(Generic[T]):
    """A job posted to a VM's thread (:meth:`JsVm.post`)."""

    __slots__ = ("_claim", "done", "fn")

    def __init__(self, fn: Callable[[], T], done: Callable[[outcome.Outcome[T]], None]) -> None:
        self.fn = fn
        self.done = done
        # Whoever pops the one item owns the job: the VM thread (it runs) or
        # :meth:`JsVm.withdraw` (it never will). ``list.pop`` is atomic, so no lock is needed.
        self._claim = [True]

    def claim(self) -> bool:
        try:
            self._claim.pop()
        except IndexError:
            return False
        return True


@final
class JsVm:
    """One JavaScript global environment with its own thread; see the module docstring.

    All methods are synchronous and may be called from any thread; on the VM's own thread (inside
    a job) they run inline. ``timeout`` is in seconds.
    """

    def __init__(self, *, memory_limit: int, name: str = "js") -> None:
        self._name = name
        self._memory_limit = memory_limit
        # Jobs, and None to stop. Unbounded by design: a caller holds one of its plugin's
        # thread-limit tokens for each job it posts, so the queue is as long as that limit.
        self._jobs: queue.SimpleQueue[JsJob[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()  # guards _closed against a racing close()
        self._thread = threading.Thread(target=self._serve, name=f"jsvm-{name}", daemon=True)
        self._thread.start()
        try:
            self._context: Any = self._run(self._make_context)
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        return self._name

    def _make_context(self) -> Any:
        context = quickjs.Context()
        context.set_memory_limit(self._memory_limit)
        return context

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                break
            if job.claim():
                result = outcome.capture(job.fn)
                try:
                    job.done(result)
                except BaseException:  # a broken callback must not stop the VM's other jobs
                    log.exception(
                        "JavaScript VM %s: a job's completion callback failed", self._name
                    )
        self._context = None  # the engine is freed on the thread that made it

    def on_vm_thread(self) -> bool:
        """Whether the caller is this VM's own thread (inside a job)."""
        return threading.current_thread() is self._thread

    def post(self, fn: Callable[[], T], done: Callable[[outcome.Outcome[T]], None]) -> JsJob[T]:
        """Run ``fn`` on this VM's thread, then ``done(its outcome)`` there (``done`` must not
        raise, and should only hand the outcome on: it delays the jobs after it)."""
        job = JsJob(fn, done)
        with self._lock:
            if self._closed:
                raise JsVmClosedError(f"JavaScript VM {self._name} is closed")
            self._jobs.put(job)
        return job

    def post_jobs(self, jobs: list[JsJob[Any]]) -> None:
        """Queue jobs made earlier (``JsJob(fn, done)``); a closed VM fails each (``done`` with
        :class:`JsVmClosedError`)."""
        with self._lock:
            if not self._closed:
                for job in jobs:
                    self._jobs.put(job)
                return
        for job in jobs:
            if job.claim():
                job.done(outcome.Error(JsVmClosedError(f"JavaScript VM {self._name} is closed")))

    @staticmethod
    def withdraw(job: JsJob[Any]) -> bool:
        """Take back a posted job: True if it had not started (it never will, and its ``done``
        is not called); False if it has started or finished."""
        return job.claim()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on this VM's thread; a future for its value."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()

        def done(result: outcome.Outcome[T]) -> None:
            if isinstance(result, outcome.Error):
                future.set_exception(result.error)
            else:
                future.set_result(result.unwrap())

        self.post(fn, done)
        return future

    def _run(self, fn: Callable[[], T]) -> T:
        if self.on_vm_thread():
            if self._closed:
                raise JsVmClosedError(f"JavaScript VM {self._name} is closed")
            return fn()
        # No wait bound here: the engine's own time limit ends every call we submit.
        return self.submit(fn).result()

    def evaluate(self, source: str, *, filename: str, timeout: float) -> None:
        """Run ``source`` in the global scope (a script file); raise :class:`JsLoadError`."""

        def run() -> None:
            self._context.set_time_limit(timeout)
            try:
                self._context.eval(source)
            except quickjs.JSException as exc:
                raise self._classify(exc, filename, load=True) from None
            finally:
                self._context.set_time_limit(-1)

        self._run(run)

    def eval_text(self, code: str, *, timeout: float, filename: str = "<call>") -> str | None:
        """Evaluate an expression whose value is a string (or undefined); return it."""

        def run() -> str | None:
            self._context.set_time_limit(timeout)
            try:
                out = self._context.eval(code)
            except quickjs.JSException as exc:
                raise self._classify(exc, filename, load=False) from None
            finally:
                self._context.set_time_limit(-1)
            if out is None or isinstance(out, str):
                return out
            raise JsError(f"{filename}: returned {type(out).__name__}, not text")

        return self._run(run)

    def eval_json(self, code: str, *, timeout: float, filename: str = "<call>") -> Any:
        """Evaluate an expression whose value is JSON text (or undefined); return it decoded."""
        out = self.eval_text(code, timeout=timeout, filename=filename)
        return None if out is None else json.loads(out)

    def call_json(self, function: str, *args: Any, timeout: float) -> Any:
        """Call the global ``function`` (dotted name) with JSON-able ``args``; return its value.

        The arguments reach the script as plain objects (JSON literals, as Tyk passes them); the
        result comes back through ``JSON.stringify``, so objects and arrays arrive as Python
        dicts and lists, and ``undefined`` as ``None``.
        """
        code = (
            f"(function () {{ var r = {call_expression(function, *args)};"
            f" return r === undefined ? undefined : JSON.stringify(r); }})()"
        )
        return self.eval_json(code, timeout=timeout)

    def function(self, expression: str) -> JsFunction:
        """A handle on the function ``expression`` evaluates to (our own code, never a user's
        text), to call with :meth:`call_text` without compiling source per call."""

        def run() -> JsFunction:
            native = self._context.eval(expression)
            if not isinstance(native, quickjs.Object):
                raise JsError(f"{expression} is not a function")
            return JsFunction(self, native)

        return self._run(run)

    def call_text(
        self, function: JsFunction, *args: str, timeout: float, filename: str = "<call>"
    ) -> str | None:
        """Call ``function`` with string arguments; its value, a string (or undefined)."""
        if function._vm is not self:
            raise JsError("the function belongs to another VM")
        if threading.current_thread() is not self._thread:
            return self._run(
                functools.partial(
                    self.call_text, function, *args, timeout=timeout, filename=filename
                )
            )
        # On the VM's thread (the driver's hot path): no closure, no hop.
        if self._closed:
            raise JsVmClosedError(f"JavaScript VM {self._name} is closed")
        context = self._context
        context.set_time_limit(timeout)
        try:
            out = function._native(*args)
        except quickjs.JSException as exc:
            raise self._classify(exc, filename, load=False) from None
        finally:
            context.set_time_limit(-1)
        if out is None or isinstance(out, str):
            return out
        raise JsError(f"{filename}: returned {type(out).__name__}, not text")

    def set_global_text(self, name: str, text: str) -> None:
        """Make the global ``name`` the string ``text`` (no parsing: a large text costs a copy)."""
        if not _JS_NAME.fullmatch(name) or "." in name:
            raise ValueError(f"not a JavaScript global name: {name!r}")
        self._run(lambda: self._context.set(name, text))

    def collect_garbage(self) -> None:
        self._run(lambda: self._context.gc())

    def memory_used(self) -> int:
        """Bytes the engine has allocated for this VM."""
        return int(self._run(lambda: self._context.memory()["memory_used_size"]))

    def close(self) -> None:
        """Free the VM and stop its thread; jobs already posted run first (their time limits
        bound them)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        # From a job on the VM's own thread (a rebuild after the memory cap) the thread cannot
        # wait for itself: it ends once that job is done.
        if not self.on_vm_thread():
            self._thread.join()

    def _classify(self, exc: BaseException, filename: str, *, load: bool) -> JsError:
        text = str(exc)
        if text.startswith("InternalError: interrupted"):
            return JsTimeoutError(f"{filename}: stopped at its time limit")
        # When the cap is hit while the engine builds its own error, what arrives is a bare
        # `null` (about half the time, measured); a script that throws null itself looks the
        # same, and is treated the same: the call fails either way, and a rebuild is harmless.
        if text.startswith("InternalError: out of memory") or text.strip() == "null":
            return JsMemoryError(
                f"{filename}: stopped at the VM's memory cap ({self._memory_limit} bytes)"
            )
        if load:
            return JsLoadError(filename, _message(exc, filename))
        return JsError(_message(exc, filename))
