"""Virtual endpoints (Classic ``extended_paths.virtual``, OAS ``virtualEndpoint``) load as
ENDPOINT hooks of the JavaScript driver; bad entries are refused naming file and field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from apidef_builders import make_classic, make_oas, messages_of

from trio_gateway._apidef.classic import parse_classic
from trio_gateway._apidef.model import EndpointPlugin, PluginRef, VirtualEndpoint, VirtualSource
from trio_gateway._apidef.oas import parse_oas
from trio_gateway.errors import ApiDefinitionError

SRC = "apps/x.json"
EP = "version_data.versions.Default.extended_paths"
OPS = "x-tyk-api-gateway.middleware.operations"
SCRIPT = "function hello(request, session, config) { return TykJsResponse({Code: 200}, {}); }"
BLOB = base64.b64encode(SCRIPT.encode()).decode()


def _classic(*entries: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = make_classic(**changes)
    doc["version_data"]["versions"]["Default"]["extended_paths"] = {"virtual": list(entries)}
    return doc


def _entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "response_function_name": "hello",
        "function_source_type": "file",
        "function_source_uri": "virtual/hello.js",
        "path": "/hello",
        "method": "get",
        "use_session": False,
        "proxy_on_error": False,
        "disabled": False,
    }
    entry.update(changes)
    return entry


def _refused(doc: dict[str, Any], oas: bool = False) -> str:
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, SRC) if oas else parse_classic(doc, SRC)
    return messages_of(excinfo)


def test_classic_file_entry_becomes_an_otto_endpoint_hook() -> None:
    api = parse_classic(_classic(_entry(use_session=True, timeout=2)), SRC)
    virtual = VirtualEndpoint(
        function_name="hello", source=VirtualSource.FILE, path="virtual/hello.js", use_session=True
    )
    assert api.middleware.driver == "otto"
    assert api.middleware.endpoints == (
        EndpointPlugin(
            path="/hello",
            method="GET",
            plugin=PluginRef(
                name="hello",
                path="virtual/hello.js",
                require_session=True,
                timeout=2.0,
                virtual=virtual,
            ),
        ),
    )
    assert api.warnings == ()


def test_classic_blob_is_decoded_at_load() -> None:
    entry = _entry(function_source_type="blob", function_source_uri=BLOB, proxy_on_error=True)
    (endpoint,) = parse_classic(_classic(entry), SRC).middleware.endpoints
    assert endpoint.plugin.virtual == VirtualEndpoint(
        function_name="hello", source=VirtualSource.BLOB, code=SCRIPT, proxy_on_error=True
    )


def test_classic_disabled_entry_is_left_out() -> None:
    api = parse_classic(_classic(_entry(disabled=True)), SRC)
    assert api.middleware.endpoints == ()
    assert api.middleware.driver == ""


def test_virtual_endpoints_come_before_go_plugin_entries() -> None:
    doc = _classic(_entry(), custom_middleware={"driver": "otto"})
    doc["version_data"]["versions"]["Default"]["extended_paths"]["go_plugin"] = [
        {"path": "/p", "method": "GET", "plugin_path": "p.js", "func_name": "P"}
    ]
    names = [e.plugin.name for e in parse_classic(doc, SRC).middleware.endpoints]
    assert names == ["hello", "P"]


def test_javascript_driver_name_is_kept() -> None:
    api = parse_classic(_classic(_entry(), custom_middleware={"driver": "javascript"}), SRC)
    assert api.middleware.driver == "javascript"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"response_function_name": ""}, f"{EP}.virtual[0].response_function_name: must not be"),
        ({"function_source_type": "url"}, f"{EP}.virtual[0].function_source_type: must be"),
        ({"function_source_type": None}, f"{EP}.virtual[0].function_source_type: required"),
        ({"function_source_uri": ""}, f"{EP}.virtual[0].function_source_uri: must not be empty"),
        ({"path": None}, f"{EP}.virtual[0].path: required"),
        ({"method": ""}, f"{EP}.virtual[0].method: must not be empty"),
        ({"use_session": "yes"}, f"{EP}.virtual[0].use_session:"),
        ({"timeout": -1}, f"{EP}.virtual[0].timeout: must be a number of seconds"),
        (
            {"function_source_type": "blob", "function_source_uri": "not base64!"},
            f"{EP}.virtual[0].function_source_uri: not valid base64",
        ),
        (
            {"function_source_type": "blob", "function_source_uri": "/w==" * 1},
            f"{EP}.virtual[0].function_source_uri: the decoded script is not UTF-8",
        ),
    ],
)
def test_classic_errors_name_file_and_field(changes: dict[str, Any], expected: str) -> None:
    assert f"{SRC}: {expected}" in _refused(_classic(_entry(**changes)))


def test_other_driver_beside_virtual_endpoints_is_refused() -> None:
    doc = _classic(_entry(), custom_middleware={"driver": "grpc"})
    text = _refused(doc)
    assert f"{SRC}: custom_middleware.driver: virtual endpoints (GET /hello) run on the " in text
    assert "driver is 'grpc'" in text


def _oas(virtual: dict[str, Any], **more: Any) -> dict[str, Any]:
    return make_oas(
        {
            "paths": {"/hello": {"post": {"operationId": "helloPOST"}}},
            "x.middleware.operations": {"helloPOST": {"virtualEndpoint": virtual, **more}},
        }
    )


def test_oas_file_endpoint() -> None:
    doc = _oas(
        {
            "enabled": True,
            "functionName": "hello",
            "path": "virtual/hello.js",
            "requireSession": True,
            "proxyOnError": True,
        }
    )
    api = parse_oas(doc, SRC)
    assert api.middleware.driver == "otto"
    (endpoint,) = api.middleware.endpoints
    assert (endpoint.path, endpoint.method) == ("/hello", "POST")
    assert endpoint.plugin.require_session
    assert endpoint.plugin.virtual == VirtualEndpoint(
        function_name="hello",
        source=VirtualSource.FILE,
        path="virtual/hello.js",
        use_session=True,
        proxy_on_error=True,
    )


def test_oas_body_wins_over_path_and_deprecated_name_is_read() -> None:
    doc = _oas({"enabled": True, "name": "hello", "body": BLOB, "path": "ignored.js"})
    (endpoint,) = parse_oas(doc, SRC).middleware.endpoints
    assert endpoint.plugin.virtual == VirtualEndpoint(
        function_name="hello", source=VirtualSource.BLOB, code=SCRIPT
    )


def test_oas_virtual_endpoint_runs_before_the_post_plugin() -> None:
    doc = _oas(
        {"enabled": True, "functionName": "hello", "path": "h.js"},
        postPlugins=[{"enabled": True, "functionName": "P", "path": "p.js"}],
    )
    doc["x-tyk-api-gateway"]["middleware"]["global"] = {"pluginConfig": {"driver": "otto"}}
    names = [e.plugin.name for e in parse_oas(doc, SRC).middleware.endpoints]
    assert names == ["hello", "P"]


def test_oas_disabled_virtual_endpoint_is_left_out() -> None:
    api = parse_oas(_oas({"enabled": False, "functionName": "hello", "path": "h.js"}), SRC)
    assert api.middleware.endpoints == ()


@pytest.mark.parametrize(
    ("virtual", "expected"),
    [
        ({"enabled": True, "path": "h.js"}, "virtualEndpoint.functionName: required"),
        ({"enabled": True, "functionName": "f"}, "virtualEndpoint.path: required"),
        ({"enabled": True, "functionName": "f", "body": "%%"}, "virtualEndpoint.body: not valid"),
        (
            {"enabled": True, "functionName": "f", "path": "h.js", "requireSession": 1},
            "virtualEndpoint.requireSession:",
        ),
    ],
)
def test_oas_errors_name_file_and_field(virtual: dict[str, Any], expected: str) -> None:
    assert f"{SRC}: {OPS}.helloPOST.{expected}" in _refused(_oas(virtual), oas=True)


def test_oas_unknown_operation_is_refused() -> None:
    doc = make_oas(
        {
            "x.middleware.operations": {
                "ghost": {"virtualEndpoint": {"enabled": True, "functionName": "f", "path": "a"}}
            }
        }
    )
    assert f"{OPS}.ghost: no operation with this operationId in paths" in _refused(doc, oas=True)


def test_oas_other_driver_beside_virtual_endpoints_is_refused() -> None:
    doc = _oas({"enabled": True, "functionName": "hello", "path": "h.js"})
    doc["x-tyk-api-gateway"]["middleware"]["global"] = {"pluginConfig": {"driver": "python"}}
    text = _refused(doc, oas=True)
    assert "x-tyk-api-gateway.middleware.global.pluginConfig.driver: virtual endpoints" in text
