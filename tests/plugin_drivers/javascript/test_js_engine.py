"""The engine layer with the real engine: limits, errors, threads."""

from __future__ import annotations

import threading
import time

import pytest

from plugin_drivers.javascript.engine import (
    JsError,
    JsLoadError,
    JsMemoryError,
    JsTimeoutError,
    JsVm,
    JsVmClosedError,
)

MiB = 1024 * 1024


@pytest.fixture
def vm():
    machine = JsVm(memory_limit=32 * MiB, name="test")
    yield machine
    machine.close()


def test_call_passes_json_in_and_out(vm: JsVm) -> None:
    vm.evaluate(
        "function mw(req, cfg) { req.SetHeaders['X-A'] = cfg.v + 1; return req; }",
        filename="mw.js",
        timeout=1,
    )
    out = vm.call_json("mw", {"SetHeaders": {}, "Body": "é"}, {"v": 41}, timeout=1)
    assert out == {"SetHeaders": {"X-A": 42}, "Body": "é"}


@pytest.mark.slow
def test_time_limit_stops_an_endless_loop_and_the_vm_keeps_working(vm: JsVm) -> None:
    vm.evaluate(
        "var calls = 0; function spin() { while (true) {} } function ok() { return ++calls; }",
        filename="spin.js",
        timeout=1,
    )
    start = time.monotonic()
    with pytest.raises(JsTimeoutError):
        vm.call_json("spin", timeout=0.2)
    # Processor time: on a busy machine the wall-clock time can be longer, never shorter.
    assert 0.2 <= time.monotonic() - start < 5
    assert vm.call_json("ok", timeout=1) == 1  # globals survived, the VM answers
    assert vm.call_json("ok", timeout=1) == 2


@pytest.mark.slow
def test_endless_loop_at_load_time_is_stopped_and_names_the_file(vm: JsVm) -> None:
    with pytest.raises(JsTimeoutError, match=r"loop\.js"):
        vm.evaluate("while (true) {}", filename="loop.js", timeout=0.1)


def test_memory_cap_stops_an_allocating_script(vm: JsVm) -> None:
    vm.evaluate(
        "function hog() { var a = []; while (true) { a.push('x'.repeat(1000) + a.length); } }"
        " function ok() { return 'ok'; }",
        filename="hog.js",
        timeout=1,
    )
    with pytest.raises(JsMemoryError, match="memory cap"):
        vm.call_json("hog", timeout=30)
    vm.collect_garbage()
    assert vm.memory_used() < 32 * MiB
    assert vm.call_json("ok", timeout=1) == "ok"


def test_syntax_error_names_file_line_and_column(vm: JsVm) -> None:
    with pytest.raises(JsLoadError) as caught:
        vm.evaluate("var ok = 1;\nvar x = ;", filename="/plugins/bad.js", timeout=1)
    assert caught.value.filename == "/plugins/bad.js"
    assert "SyntaxError" in str(caught.value)
    assert "/plugins/bad.js:2:" in str(caught.value)
    assert "<input>" not in str(caught.value)


def test_error_thrown_at_load_time_is_a_load_error(vm: JsVm) -> None:
    with pytest.raises(JsLoadError, match=r"init\.js.*boom"):
        vm.evaluate("throw new Error('boom')", filename="init.js", timeout=1)


def test_runtime_errors_are_reported(vm: JsVm) -> None:
    with pytest.raises(JsError, match="ReferenceError: missing is not defined"):
        vm.call_json("missing.DoProcessRequest", {}, timeout=1)


def test_only_dotted_names_are_called(vm: JsVm) -> None:
    with pytest.raises(ValueError, match="not a JavaScript function name"):
        vm.call_json("x; while(true){}", timeout=1)


def test_calls_from_many_threads_are_serialised_on_the_vm_thread(vm: JsVm) -> None:
    vm.evaluate("var n = 0; function inc() { n += 1; return n; }", filename="n.js", timeout=1)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            vm.call_json("inc", timeout=1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert vm.call_json("inc", timeout=1) == 401


def test_closed_vm_refuses_calls() -> None:
    machine = JsVm(memory_limit=8 * MiB)
    machine.close()
    machine.close()  # idempotent
    with pytest.raises(JsVmClosedError):
        machine.call_json("x", timeout=1)


def test_a_job_withdrawn_before_it_starts_never_runs(vm: JsVm) -> None:
    """The driver withdraws a step whose caller gave up before the VM reached it: it must not
    run, and only one side (the VM thread or the canceller) may own a job."""
    import outcome

    from plugin_drivers.javascript.engine import JsJob

    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    outcomes: list[object] = []

    def blocking() -> None:
        started.set()
        release.wait(timeout=30)
        ran.append("first")

    first = JsJob(blocking, outcomes.append)
    second = JsJob(lambda: ran.append("second"), outcomes.append)
    vm.post_jobs([first, second])
    assert started.wait(timeout=30)
    assert JsVm.withdraw(second)  # queued behind the running job: taken back
    assert not JsVm.withdraw(first)  # already running: the VM thread owns it
    release.set()
    third = vm.submit(lambda: ran.append("third"))  # queued after both: the thread went on
    third.result(timeout=30)
    assert ran == ["first", "third"]
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], outcome.Value)
