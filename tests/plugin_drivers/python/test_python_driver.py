"""The native Python driver: loading, async and sync hooks, threads, limiter, blocking reports."""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from plugin_drivers import create_driver
from plugin_drivers.python import PythonDriver
from trio_gateway._apidef.model import ApiDefinition, FailureMode, MiddlewareConfig, PluginRef
from trio_gateway._config.model import GatewayConfig, HooksConfig
from trio_gateway._exchange import BytesBody, Request, Response
from trio_gateway._gateway import build_snapshot
from trio_gateway._pipeline import ApiPipeline, Exchange, HookDefaults, build_pipeline
from trio_gateway.errors import PluginDriverError

EXAMPLE_PLUGINS = Path(__file__).resolve().parents[3] / "examples" / "plugins"

PLUGIN = """
from trio_gateway.hooks import Respond

async def add(ctx):
    ctx.request.set_header("x-added", ctx.api.api_id)

def sync_add(ctx):
    body = ctx.request.body
    ctx.request.set_header("x-sync", str(len(body or b"")))

async def deny(ctx):
    return ctx.respond(400, "no")

def returns_junk(ctx):
    return 42

async def raises(ctx):
    raise RuntimeError("boom")

def two_args(ctx, other):
    pass

not_callable = 3
"""


def api_with(tmp_path: Path, mw: MiddlewareConfig, *, keyless: bool = True) -> ApiDefinition:
    source = tmp_path / "apps" / "api.json"
    source.parent.mkdir(exist_ok=True)
    source.write_text("{}")
    return ApiDefinition(
        api_id="py-api",
        listen_path="/py/",
        target_url="http://127.0.0.1:8091/",
        use_keyless=keyless,
        source=str(source),
        middleware=mw,
    )


@pytest.fixture
def plugin_file(tmp_path: Path) -> str:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text(PLUGIN)
    return "../plugins/mine.py"  # relative to the API definition's folder


def request(body: bytes | None = None) -> Request:
    return Request(
        method="POST",
        path="/py/x",
        query="",
        headers=[(b"host", b"h")],
        body_source=BytesBody(body) if body is not None else None,
    )


async def pipeline_for(api: ApiDefinition, **driver: Any) -> ApiPipeline:
    return await build_pipeline(
        api, HookDefaults(), driver_factory=lambda n: PythonDriver(**driver)
    )


async def test_registry_knows_python() -> None:
    assert isinstance(create_driver("python"), PythonDriver)


async def test_blocking_threshold_from_the_gateway_config_reaches_the_driver(
    tmp_path: Path, plugin_file: str
) -> None:
    # gateway config (hooks.blocking_threshold) -> DriverSettings -> the driver's factory.
    config = GatewayConfig(hooks=HooksConfig(blocking_threshold=2.5))
    mw = MiddlewareConfig(driver="python", pre=(PluginRef(name="add", path=plugin_file),))
    snapshot = await build_snapshot([api_with(tmp_path, mw)], config)
    try:
        (runtime,) = snapshot.runtimes.values()
        assert runtime.pipeline is not None
        driver = runtime.pipeline.driver
        assert isinstance(driver, PythonDriver)
        assert driver.blocking_threshold == 2.5
    finally:
        await snapshot.aclose()


async def test_async_and_sync_hooks_from_a_file(tmp_path: Path, plugin_file: str) -> None:
    mw = MiddlewareConfig(
        driver="python",
        pre=(PluginRef(name="add", path=plugin_file), PluginRef(name="sync_add", path=plugin_file)),
    )
    api = api_with(tmp_path, mw)
    pipeline = await build_pipeline(api, HookDefaults())  # through the real registry
    req = request(b"hello")
    assert await pipeline.run_request(req, Exchange(api=api)) is None
    assert req.header(b"x-added") == b"py-api"
    assert req.header(b"x-sync") == b"5"  # the thread saw the whole body, read up front
    await pipeline.aclose()


async def test_respond_and_module_function(
    tmp_path: Path, plugin_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkg_for_hooks.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pkg_for_hooks", raising=False)
    api = api_with(
        tmp_path, MiddlewareConfig(driver="python", post=(PluginRef(name="pkg_for_hooks:deny"),))
    )
    pipeline = await pipeline_for(api)
    answer = await pipeline.run_request(request(), Exchange(api=api))
    assert answer is not None
    assert (answer.status, answer.body_bytes) == (400, b"no")


@pytest.mark.parametrize(
    ("plugin", "match"),
    [
        (PluginRef(name="add", path="missing.py"), "plugin file not found"),
        (PluginRef(name="nothere", path="PLUGIN"), "has no function 'nothere'"),
        (PluginRef(name="two_args", path="PLUGIN"), "must take exactly one argument"),
        (PluginRef(name="not_callable", path="PLUGIN"), "is not callable"),
        (PluginRef(name="hook", path="BROKEN"), "importing .* failed: ZeroDivisionError"),
        (PluginRef(name="no_such_module_xyz:hook"), "importing module 'no_such_module_xyz' failed"),
        (PluginRef(name="plain_name"), "neither a .py path nor a 'module:function'"),
        (PluginRef(name="x", path="hooks.js"), "is neither a .py file nor a folder"),
        (PluginRef(name="x", path="../plugins"), "plugins has no middleware.py"),
    ],
)
async def test_load_errors_name_api_and_hook(
    tmp_path: Path, plugin_file: str, plugin: PluginRef, match: str
) -> None:
    (tmp_path / "plugins" / "broken.py").write_text("1 / 0\n")
    path = {"PLUGIN": plugin_file, "BROKEN": "../plugins/broken.py"}.get(plugin.path, plugin.path)
    api = api_with(
        tmp_path, MiddlewareConfig(driver="python", pre=(attrs.evolve(plugin, path=path),))
    )
    with pytest.raises(PluginDriverError, match=rf"API 'py-api': hook pre\[0\] .*{match}"):
        await pipeline_for(api)


@pytest.mark.parametrize(("name", "status"), [("returns_junk", 500), ("raises", 500)])
async def test_bad_returns_and_exceptions_are_errors(
    tmp_path: Path, plugin_file: str, name: str, status: int
) -> None:
    api = api_with(
        tmp_path, MiddlewareConfig(driver="python", pre=(PluginRef(name=name, path=plugin_file),))
    )
    pipeline = await pipeline_for(api)
    answer = await pipeline.run_request(request(), Exchange(api=api))
    assert answer is not None
    assert answer.status == status
    assert pipeline.statistics().errors == 1


# -- threads -------------------------------------------------------------------------------

RELEASE = threading.Event()
STARTED = threading.Event()


def blocking_hook(ctx: Any) -> None:
    STARTED.set()
    RELEASE.wait(10)  # bounded: the test releases it
    ctx.request.set_header("x-late", "1")  # on a detached copy: must never reach the request


async def test_abandoned_thread_stays_counted_and_a_waiting_call_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    module = type(sys)("blocking_hooks_for_test")
    module.hook = blocking_hook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "blocking_hooks_for_test", module)
    RELEASE.clear()
    STARTED.clear()
    plugin = PluginRef(name="blocking_hooks_for_test:hook", timeout=0.5)
    mw = MiddlewareConfig(
        driver="python", pre=(plugin,), failure_mode=FailureMode.OPEN, thread_limit=1
    )
    api = api_with(tmp_path, mw)
    driver = PythonDriver()
    pipeline = await build_pipeline(api, HookDefaults(), driver_factory=lambda n: driver)

    first = request()
    start = trio.current_time()
    assert await pipeline.run_request(first, Exchange(api=api)) is None  # fail open: continue
    assert trio.current_time() - start == pytest.approx(0.5)
    assert driver.statistics().threads_alive == 1
    assert driver.statistics().threads_abandoned == 1

    # The only thread is still held by the abandoned call: the next call waits for it for its
    # whole deadline, then gets the timeout answer; nothing was started, nothing abandoned.
    start = trio.current_time()
    assert await pipeline.run_request(request(), Exchange(api=api)) is None
    assert trio.current_time() - start == pytest.approx(0.5)
    stats = pipeline.statistics()
    assert (stats.timeouts, stats.unavailable, stats.failed_open) == (2, 0, 2)
    assert driver.statistics().threads_abandoned == 1
    assert driver.statistics().thread_waits == 1

    RELEASE.set()
    limiter = next(iter(driver._loaded.values())).limiter
    # Waiting for a real thread: let the mock clock run at real speed instead of jumping.
    autojump_clock.autojump_threshold = math.inf
    autojump_clock.rate = 1.0
    with trio.fail_after(10):
        async with limiter:  # free again once the abandoned thread returned
            pass
    assert driver.statistics().threads_alive == 0
    assert first.header(b"x-late") is None


async def test_a_call_waits_for_a_busy_thread_within_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = type(sys)("blocking_hooks_for_wait")
    module.hook = blocking_hook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "blocking_hooks_for_wait", module)
    RELEASE.clear()
    STARTED.clear()
    # Real clock: the deadline (10 s) only bounds the test; the release comes from the test.
    plugin = PluginRef(name="blocking_hooks_for_wait:hook", timeout=10)
    api = api_with(tmp_path, MiddlewareConfig(driver="python", pre=(plugin,), thread_limit=1))
    driver = PythonDriver()
    pipeline = await build_pipeline(api, HookDefaults(), driver_factory=lambda n: driver)
    answers: list[Response | None] = []

    async def one() -> None:
        answers.append(await pipeline.run_request(request(), Exchange(api=api)))

    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one)
                await trio.to_thread.run_sync(STARTED.wait, 10)  # the first call holds the thread
                nursery.start_soon(one)
                await trio.testing.wait_all_tasks_blocked()
                assert driver.statistics().thread_waits == 1  # the second found it busy ...
                assert answers == []
                RELEASE.set()  # ... and gets it once the first returns
    finally:
        RELEASE.set()
    assert answers == [None, None]
    stats = pipeline.statistics()
    assert (stats.timeouts, stats.unavailable, stats.errors) == (0, 0, 0)
    assert driver.statistics().threads_abandoned == 0


async def test_sync_hook_timeout_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    module = type(sys)("blocking_hooks_for_test2")
    module.hook = blocking_hook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "blocking_hooks_for_test2", module)
    RELEASE.clear()
    api = api_with(
        tmp_path,
        MiddlewareConfig(
            driver="python",
            post=(PluginRef(name="blocking_hooks_for_test2:hook", timeout=0.2),),
            thread_limit=1,
        ),
    )
    driver = PythonDriver()
    pipeline = await build_pipeline(api, HookDefaults(), driver_factory=lambda n: driver)
    try:
        answer = await pipeline.run_request(request(), Exchange(api=api))
        assert answer is not None
        assert answer.status == 504
    finally:
        RELEASE.set()
    limiter = next(iter(driver._loaded.values())).limiter
    # Waiting for a real thread: let the mock clock run at real speed instead of jumping.
    autojump_clock.autojump_threshold = math.inf
    autojump_clock.rate = 1.0
    with trio.fail_after(10):
        async with limiter:  # the abandoned thread returned its token
            pass


# -- blocking async hooks ------------------------------------------------------------------


class FakeWallClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_async_hook_blocking_the_loop_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeWallClock()

    async def hog(ctx: Any) -> None:
        await trio.lowlevel.checkpoint()
        clock.now += 0.5  # as if it ran 0.5 s without yielding
        await trio.lowlevel.checkpoint()
        clock.now += 0.01  # a short step: fine

    module = type(sys)("hog_hooks_for_test")
    module.hog = hog  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hog_hooks_for_test", module)
    api = api_with(
        tmp_path, MiddlewareConfig(driver="python", pre=(PluginRef(name="hog_hooks_for_test:hog"),))
    )
    driver = PythonDriver(wall_clock=clock, blocking_threshold=0.1)
    pipeline = await build_pipeline(api, HookDefaults(), driver_factory=lambda n: driver)
    assert await pipeline.run_request(request(), Exchange(api=api)) is None
    assert driver.statistics().blocking_reports == {"pre[0] hog_hooks_for_test:hog": 1}
    assert "blocked the event loop" in caplog.text
    assert "hog_hooks_for_test:hog" in caplog.text


async def test_cancel_reaches_an_async_hook_through_the_step_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    cleaned = []

    async def waits(ctx: Any) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(True)

    module = type(sys)("wait_hooks_for_test")
    module.waits = waits  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wait_hooks_for_test", module)
    api = api_with(
        tmp_path,
        MiddlewareConfig(driver="python", pre=(PluginRef(name="wait_hooks_for_test:waits"),)),
    )
    pipeline = await pipeline_for(api)
    answer = await pipeline.run_request(request(), Exchange(api=api))
    assert answer is not None
    assert answer.status == 504
    assert cleaned == [True]


async def test_response_hook_in_thread_rewrites_the_response(tmp_path: Path) -> None:
    examples = EXAMPLE_PLUGINS
    plugin = PluginRef(name="wrap_response", path=str(examples / "rewrite_response.py"))
    api = api_with(tmp_path, MiddlewareConfig(driver="python", response=(plugin,)))
    pipeline = await pipeline_for(api)
    upstream = Response(
        status=200, headers=[(b"content-type", b"application/json")], body_bytes=b'{"a": 1}'
    )
    answer = await pipeline.run_response(request(), upstream, Exchange(api=api))
    assert answer.body_bytes == b'{"data": {"a": 1}, "status": 200, "api": "py-api"}'
    assert answer.header(b"content-length") == str(len(answer.body_bytes)).encode()


async def test_a_plugin_whose_import_hangs_fails_its_api_within_the_load_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    from trio_gateway._pipeline import build

    monkeypatch.setattr(build, "PLUGIN_LOAD_TIMEOUT", 5.0)
    release = threading.Event()
    # The plugin's import waits on an event the test holds (a hung import: a network call, a
    # lock); the load is abandoned at the bound, and the import thread ends when released.
    monkeypatch.setattr(sys.modules[__name__], "HANG", release, raising=False)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "hangs.py").write_text(
        f"import sys\nsys.modules[{__name__!r}].HANG.wait(30)\nasync def hook(ctx): pass\n"
    )
    mw = MiddlewareConfig(
        driver="python", pre=(PluginRef(name="hook", path="../plugins/hangs.py"),)
    )
    try:
        started = trio.current_time()
        with pytest.raises(PluginDriverError, match="longer than 5s to load"):
            await build_pipeline(api_with(tmp_path, mw), HookDefaults())
        assert trio.current_time() - started == pytest.approx(5.0)
    finally:
        release.set()
