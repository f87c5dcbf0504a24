"""Tyk-style ``@Hook`` plugins in the python driver: Tyk's call shapes and return rules, deadlines
and abandoned threads, the ``gateway`` module's store calls, and what load refuses."""

from __future__ import annotations

import logging
import math
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from plugin_drivers.python import PythonDriver
from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
from trio_gateway._exchange import BytesBody, Request
from trio_gateway._pipeline import ApiPipeline, Exchange, HookDefaults, build_pipeline
from trio_gateway._session.memory import MemorySessionStore
from trio_gateway.errors import PluginDriverError

PLUGIN = """
import tyk_style_test_support as support
from tyk.decorators import Hook
from tyk.gateway import TykGateway as tyk


@Hook
def Blocks(request, session, spec):
    support.STARTED.set()
    support.RELEASE.wait(10)  # bounded: the test releases it
    request.add_header("X-Late", "1")  # on the call's own Object: never reaches the request
    return request, session


@Hook
def WrongShape(request, session, spec):
    return request


@Hook
def ReturnsNewMetadata(request, session, metadata, spec):
    session.rate = 5
    return request, session, {"token": "from-returned-dict", "n": 7}


@Hook
def ChangesSessionInPost(request, session, metadata, spec):
    session.rate = 99999
    metadata["sneaky"] = "yes"
    return request, session, metadata


@Hook
def ReadsBody(request, session, spec):
    request.add_header("X-Body", request.object.body.upper())
    request.object.raw_body = b"replaced"
    return request, session


@Hook
def UsesStore(request, session, spec):
    tyk.store_data("k", "v", 10)
    request.add_header("X-Got", repr(tyk.get_data("k")))
    return request, session
"""


class Support:
    """The module plugin code imports by plain name to meet the test (threading events)."""

    def __init__(self) -> None:
        self.STARTED = threading.Event()
        self.RELEASE = threading.Event()


@pytest.fixture
def support(monkeypatch: pytest.MonkeyPatch) -> Support:
    module = Support()
    monkeypatch.setitem(sys.modules, "tyk_style_test_support", module)  # type: ignore[arg-type]
    return module


@pytest.fixture
def plugin(tmp_path: Path, support: Support) -> str:
    path = tmp_path / "plugins" / "middleware.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return str(path.parent)  # the folder: its middleware.py is loaded


def api_with(tmp_path: Path, *, keyless: bool = True, **stages: Any) -> ApiDefinition:
    return ApiDefinition(
        api_id="tyk-api",
        org_id="org",
        listen_path="/t/",
        target_url="http://127.0.0.1:8091/",
        use_keyless=keyless,
        custom_plugin_auth=not keyless,
        source=str(tmp_path / "api.json"),
        middleware=MiddlewareConfig(driver="python", **stages),
    )


def request(body: bytes = b"") -> Request:
    return Request(
        method="POST",
        path="/t/x",
        query="",
        headers=[(b"host", b"h"), (b"content-length", str(len(body)).encode())],
        body_source=BytesBody(body),
    )


async def pipeline_for(api: ApiDefinition, driver: PythonDriver) -> ApiPipeline:
    return await build_pipeline(api, HookDefaults(), driver_factory=lambda n: driver)


async def test_a_thread_past_its_deadline_is_abandoned_counted_and_never_writes(
    tmp_path: Path,
    plugin: str,
    support: Support,
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = api_with(
        tmp_path, pre=(PluginRef(name="Blocks", path=plugin, timeout=0.5),), thread_limit=1
    )
    driver = PythonDriver()
    pipeline = await pipeline_for(api, driver)
    first = request()
    try:
        start = trio.current_time()
        answer = await pipeline.run_request(first, Exchange(api=api))
        assert answer is not None
        assert answer.status == 504  # our deadline, Tyk's own would never come
        assert trio.current_time() - start == pytest.approx(0.5)
        stats = driver.statistics()
        assert (stats.threads_abandoned, stats.threads_alive) == (1, 1)
    finally:
        support.RELEASE.set()
    limiter = next(iter(driver._loaded.values())).limiter
    autojump_clock.autojump_threshold = math.inf  # wait for a real thread at real speed
    autojump_clock.rate = 1.0
    with trio.fail_after(10):
        async with limiter:  # the abandoned thread returned its token
            pass
    assert driver.statistics().threads_alive == 0
    assert first.header(b"x-late") is None


async def test_a_return_without_tyks_shape_is_a_middleware_error(
    tmp_path: Path, plugin: str
) -> None:
    api = api_with(tmp_path, pre=(PluginRef(name="WrongShape", path=plugin),))
    pipeline = await pipeline_for(api, PythonDriver())
    answer = await pipeline.run_request(request(), Exchange(api=api))
    assert answer is not None
    assert answer.status == 500
    assert pipeline.statistics().errors == 1


async def test_auth_metadata_returned_as_a_new_dict_is_merged_into_the_session(
    tmp_path: Path, plugin: str
) -> None:
    api = api_with(
        tmp_path, keyless=False, auth_check=PluginRef(name="ReturnsNewMetadata", path=plugin)
    )
    pipeline = await pipeline_for(api, PythonDriver())
    exchange = Exchange(api=api)
    assert await pipeline.run_request(request(), exchange) is None
    assert exchange.session_key == "from-returned-dict"
    assert exchange.session is not None
    assert exchange.session.rate == 5
    assert exchange.session.meta_data == {"token": "from-returned-dict", "n": "7"}
    assert exchange.session.org_id == "org"


async def test_session_changes_outside_custom_auth_are_ignored_as_in_tyk(
    tmp_path: Path, plugin: str
) -> None:
    api = api_with(
        tmp_path,
        keyless=False,
        auth_check=PluginRef(name="ReturnsNewMetadata", path=plugin),
        post=(PluginRef(name="ChangesSessionInPost", path=plugin),),
    )
    pipeline = await pipeline_for(api, PythonDriver())
    exchange = Exchange(api=api)
    assert await pipeline.run_request(request(), exchange) is None
    assert exchange.session is not None
    assert exchange.session.rate == 5
    assert "sneaky" not in exchange.session.meta_data


async def test_the_body_goes_in_and_only_raw_body_comes_back(tmp_path: Path, plugin: str) -> None:
    api = api_with(tmp_path, pre=(PluginRef(name="ReadsBody", path=plugin),))
    pipeline = await pipeline_for(api, PythonDriver())
    req = request(b"hello")
    assert await pipeline.run_request(req, Exchange(api=api)) is None
    assert req.header(b"x-body") == b"HELLO"
    assert req.body_bytes == b"replaced"
    assert req.header(b"content-length") == b"8"


async def test_store_calls_without_a_store_answer_empty_and_log_once(
    tmp_path: Path, plugin: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = api_with(tmp_path, pre=(PluginRef(name="UsesStore", path=plugin),))
    pipeline = await pipeline_for(api, PythonDriver())  # built outside a gateway: no store
    req = request()
    assert await pipeline.run_request(req, Exchange(api=api)) is None
    assert req.header(b"x-got") == b"b''"
    lines = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(lines) == 1, lines  # the second failure within the interval is only counted
    assert "store_data failed" in lines[0]


async def test_store_calls_reach_the_drivers_store(tmp_path: Path, plugin: str) -> None:
    store = MemorySessionStore()
    api = api_with(tmp_path, pre=(PluginRef(name="UsesStore", path=plugin),))
    pipeline = await pipeline_for(api, PythonDriver(store=store))
    req = request()
    assert await pipeline.run_request(req, Exchange(api=api)) is None
    assert req.header(b"x-got") == b"b'v'"
    assert await store.get_data("k") == b"v"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("@Event\ndef Hooked(event, spec):\n    pass\n", "is an @Event handler"),
        ("@CustomKeyCheck\ndef Hooked(r, s, m, spec):\n    pass\n", "legacy @CustomKeyCheck"),
        ("@Hook\ndef Hooked(*args):\n    pass\n", "takes 0 positional parameters"),
        ("import tyk.nothing\n", "No module named 'tyk.nothing'"),
    ],
)
async def test_what_tyk_cannot_call_is_refused_at_load(
    tmp_path: Path, source: str, reason: str
) -> None:
    path = tmp_path / "bad.py"
    path.write_text("from tyk.decorators import *\n" + textwrap.dedent(source))
    api = api_with(tmp_path, pre=(PluginRef(name="Hooked", path=str(path)),))
    with pytest.raises(PluginDriverError, match=rf"API 'tyk-api': hook pre\[0\] .*{reason}"):
        await pipeline_for(api, PythonDriver())


async def test_print_to_a_file_still_writes_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "out.txt"
    path = tmp_path / "printer.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import sys
            from tyk.decorators import Hook

            @Hook
            def Printer(request, session, spec):
                with open({str(out)!r}, "w") as f:
                    print("to the file", file=f)
                print("to stderr", file=sys.stderr)
                return request, session
            """
        )
    )
    api = api_with(tmp_path, pre=(PluginRef(name="Printer", path=str(path)),))
    pipeline = await pipeline_for(api, PythonDriver())
    assert await pipeline.run_request(request(), Exchange(api=api)) is None
    assert out.read_text() == "to the file\n"
    records = [r for r in caplog.records if "plugin output" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "plugin output api=tyk-api: to stderr")
    ]


def test_only_tyk_style_hooks_load_protobuf(tmp_path: Path) -> None:
    # A gateway whose Python plugins are native (or analytics plugins) never loads protobuf.
    (tmp_path / "native.py").write_text("async def hook(ctx):\n    pass\n")
    (tmp_path / "tyk.py").write_text(
        "from tyk.decorators import Hook\n\n@Hook\ndef Hooked(request, session, spec):\n"
        "    return request, session\n"
    )
    code = textwrap.dedent(
        f"""
        import sys
        import trio
        from plugin_drivers.python import PythonDriver
        from trio_gateway._apidef.model import ApiDefinition, MiddlewareConfig, PluginRef
        from trio_gateway._pipeline import HookDefaults
        from trio_gateway._pipeline.build import build_chain

        def protobuf():
            return any(name.startswith("google.protobuf") for name in sys.modules)

        async def load(name, path):
            plugin = PluginRef(name=name, path=path)
            api = ApiDefinition(
                api_id="a", listen_path="/", target_url="http://127.0.0.1:1/",
                middleware=MiddlewareConfig(driver="python", pre=(plugin,)),
            )
            driver = PythonDriver()
            await driver.load(api, build_chain(api, HookDefaults()).hooks)
            await driver.aclose()

        trio.run(load, "hook", {str(tmp_path / "native.py")!r})
        print(protobuf())
        trio.run(load, "Hooked", {str(tmp_path / "tyk.py")!r})
        print(protobuf())
        """
    )
    import subprocess

    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


async def test_every_import_form_of_tyks_names_works(tmp_path: Path) -> None:
    path = tmp_path / "imports.py"
    path.write_text(
        textwrap.dedent(
            """
            import tyk
            import tyk.session as tyk_session
            import tyk.decorators
            from tyk.request import TykCoProcessRequest
            from tyk.decorators import Hook
            from gateway import TykGateway
            from tyk.gateway import TykGateway as Same
            import coprocess_object_pb2 as object_pb
            from coprocess_session_state_pb2 import SessionState

            assert TykGateway is Same
            assert tyk_session.TykSession is SessionState

            @tyk.decorators.Hook
            def Imports(request, session, spec):
                assert isinstance(request, TykCoProcessRequest)
                assert isinstance(session, SessionState)
                request.add_header("X-Object", object_pb.Object.__name__)
                return request, session
            """
        )
    )
    api = api_with(tmp_path, pre=(PluginRef(name="Imports", path=str(path)),))
    pipeline = await pipeline_for(api, PythonDriver())
    req = request()
    assert await pipeline.run_request(req, Exchange(api=api)) is None
    assert req.header(b"x-object") == b"Object"
