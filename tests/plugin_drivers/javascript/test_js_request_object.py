"""Tyk's JS request object both ways (pure), and through the real engine's TykJS wrapper."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_drivers.javascript.request_object import (
    GatewayRequest,
    JsErrorReply,
    JsForcedReply,
    JsResultError,
    ReturnOverrides,
    apply_js_request,
    canonical_header_name,
    override_reply,
    parse_js_result,
    to_js_request,
    updated_meta_data,
)
from plugin_drivers.javascript.scripts import ApiScripts, JsSource

REQUEST = GatewayRequest(
    method="POST",
    scheme="https",
    host="api.example.com",
    url="/users?b=2&a=1&a=3",
    request_uri="/v1/users?b=2&a=1&a=3",
    headers=(("content-type", "text/plain"), ("x-multi", "1"), ("X-Multi", "2")),
    body=b"hello",
)


def test_request_object_has_every_tyk_field() -> None:
    obj = to_js_request(REQUEST)
    assert obj == {
        "Headers": {
            "Content-Type": ["text/plain"],
            "X-Multi": ["1", "2"],
            "Host": ["api.example.com"],
        },
        "SetHeaders": {},
        "DeleteHeaders": [],
        "Body": base64.b64encode(b"hello").decode(),
        "URL": "/users?b=2&a=1&a=3",
        "Params": {"b": ["2"], "a": ["1", "3"]},
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
        "Method": "POST",
        "RequestURI": "/v1/users?b=2&a=1&a=3",
        "Scheme": "https",
    }


def returned(**request: Any) -> dict[str, Any]:
    base = to_js_request(REQUEST)
    base.update(request)
    return {"Request": base}


def test_changes_apply_in_tyk_order() -> None:
    result = parse_js_result(
        returned(
            Body=base64.b64encode(b"new body").decode(),
            URL="/other?z=9&a=1",
            DeleteHeaders=["X-MULTI", "content-type"],
            SetHeaders={"x-multi": "set", "X-New": "n"},
            DeleteParams=["z"],
            AddParams={"a": "only", "n": "x y"},
            ExtendedParams={"a": ["more"], "e": ["1", "2"]},
            Method="DELETE",
        )
    )
    out = apply_js_request(REQUEST, result.request)
    assert out.body == b"new body"
    # Set after delete; names canonical; query from the new URL, re-encoded with sorted keys.
    assert out.headers == (("X-Multi", "set"), ("X-New", "n"))
    assert out.url == "/other?a=only&a=more&e=1&e=2&n=x+y"
    assert out.method == "POST"  # Tyk does not apply Method


def test_ignore_body_keeps_the_original() -> None:
    result = parse_js_result(returned(Body="!!not base64!!", IgnoreBody=True))
    assert apply_js_request(REQUEST, result.request).body == b"hello"


def test_fields_match_case_insensitively_and_the_last_spelling_wins() -> None:
    result = parse_js_result(
        {
            "request": {
                "url": "/x",
                "body": "",
                "setheaders": {"A": "1"},
                "returnoverrides": {
                    "responsecode": 403,
                    "ResponseCode": 418,
                    "responseerror": "no",
                },
            },
            "sessionmeta": {"k": "v"},
            "authvalue": "key",
        }
    )
    assert result.request.set_headers == (("A", "1"),)
    assert result.request.return_overrides.response_code == 418
    assert result.session_meta == {"k": "v"}
    assert result.auth_value == "key"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("SetHeaders", {"A": 1}, "SetHeaders.A must be a string"),
        ("DeleteHeaders", "A", "DeleteHeaders must be an array"),
        ("Body", "***", "not base64"),
        ("IgnoreBody", "yes", "IgnoreBody must be true or false"),
        ("ReturnOverrides", {"ResponseCode": "200"}, "ResponseCode must be an integer"),
    ],
)
def test_wrong_types_are_clear_errors(field: str, value: Any, message: str) -> None:
    with pytest.raises(JsResultError, match=message):
        parse_js_result(returned(**{field: value}))


@pytest.mark.parametrize("url", ["", "relative/path", "/bad\nurl", "http:/x"])
def test_urls_go_would_reject_are_errors(url: str) -> None:
    result = parse_js_result(returned(URL=url))
    with pytest.raises(JsResultError, match="URL"):
        apply_js_request(REQUEST, result.request)


def test_absolute_url_keeps_path_and_query() -> None:
    result = parse_js_result(returned(URL="http://elsewhere/p?q=1"))
    assert apply_js_request(REQUEST, result.request).url == "/p?q=1"


def test_return_overrides_rules() -> None:
    assert override_reply(ReturnOverrides()) is None
    assert override_reply(
        ReturnOverrides(response_code=403, response_body="b", response_error="denied")
    ) == JsErrorReply(code=403, message="denied", headers=())
    assert override_reply(
        ReturnOverrides(response_code=400, response_body="raw", override_error=True)
    ) == JsForcedReply(code=400, body="raw", headers=())
    assert override_reply(
        ReturnOverrides(response_code=200, response_body="hi", response_headers=(("A", "b"),))
    ) == JsForcedReply(code=200, body="hi", headers=(("A", "b"),))


def test_meta_data_is_replaced_wholesale_only_after_auth_with_require_session() -> None:
    result = parse_js_result({"Request": {"URL": "/"}, "SessionMeta": {"new": 1}})
    current = {"old": 1, "new": 0}
    assert updated_meta_data(current, result, pre=False, use_session=True) == {"new": 1}
    assert updated_meta_data(current, result, pre=True, use_session=True) is None
    assert updated_meta_data(current, result, pre=False, use_session=False) is None
    assert updated_meta_data({"new": 1}, result, pre=False, use_session=True) is None


def test_canonical_header_names_follow_go() -> None:
    assert canonical_header_name("x-api-KEY") == "X-Api-Key"
    assert canonical_header_name("content-md5") == "Content-Md5"
    assert canonical_header_name("bad name") == "bad name"


class _SilentHost:
    def log(self, message: str) -> None: ...
    def rawlog(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def make_http_request(self, request_json: str, *, timeout: float) -> str | None: ...
    def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None: ...
    def set_key_data(self, key: str, s: str, r: str, *, timeout: float) -> None: ...
    def batch_request(self, request_json: str, *, timeout: float) -> str | None: ...


def test_header_setting_middleware_end_to_end_through_the_engine() -> None:
    api = ApiScripts(
        api_id="a",
        sources=[
            JsSource(
                name="hdr.js",
                text="""
                var hdr = new TykJS.TykMiddleware.NewMiddleware({});
                hdr.NewProcessRequest(function (request) {
                    request.SetHeaders["X-Seen"] = request.Headers["X-Multi"].join(",");
                    request.DeleteHeaders.push("Content-Type");
                    request.AddParams["from"] = "js";
                    request.Body = request.Body + "!";
                    return hdr.ReturnData(request, {});
                });
                """,
            )
        ],
        host=_SilentHost(),
    )
    out = api.run_middleware("hdr", to_js_request(REQUEST), {}, {}, timeout=1)
    applied = apply_js_request(REQUEST, parse_js_result(out).request)
    api.close()
    assert applied.headers == (("x-multi", "1"), ("X-Multi", "2"), ("X-Seen", "1,2"))
    assert applied.url == "/users?a=1&a=3&b=2&from=js"
    assert applied.body == b"hello!"


header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True)
texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
requests = st.builds(
    GatewayRequest,
    method=st.sampled_from(["GET", "POST", "PUT"]),
    scheme=st.sampled_from(["http", "https"]),
    host=st.just("h.example"),
    url=st.lists(st.tuples(texts.filter(bool), texts), max_size=4).map(
        lambda pairs: (
            "/p"
            + ("?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else "")
            .replace("#", "")
            .replace("+", "")
            .replace("%", "")
        )
    ),
    request_uri=st.just("/p"),
    headers=st.lists(st.tuples(header_names, texts), max_size=5).map(tuple),
    body=st.binary(max_size=64),
)


@given(requests)
def test_unchanged_object_gives_back_the_same_request(request: GatewayRequest) -> None:
    """Returning the object untouched changes nothing but Go's query re-encoding."""
    result = parse_js_result({"Request": to_js_request(request)})
    out = apply_js_request(request, result.request)
    assert out.body == request.body
    assert out.headers == request.headers
    again = apply_js_request(out, parse_js_result({"Request": to_js_request(out)}).request)
    assert again == out  # the re-encoding is stable
    assert override_reply(result.request.return_overrides) is None


@given(requests, st.dictionaries(header_names, texts, max_size=4))
def test_set_headers_replace_every_value_of_that_name(
    request: GatewayRequest, set_headers: dict[str, str]
) -> None:
    obj = to_js_request(request)
    obj["SetHeaders"] = set_headers
    out = apply_js_request(request, parse_js_result({"Request": obj}).request)
    expected: dict[str, str] = {}
    for name, value in set_headers.items():
        expected[name.lower()] = value  # names differing in case: the later one wins
    for folded, value in expected.items():
        assert [v for n, v in out.headers if n.lower() == folded] == [value]


def test_translation_module_stays_pure() -> None:
    """The driver may call it anywhere: no engine, no Trio, no sockets, no clock."""
    import ast
    import inspect

    import plugin_drivers.javascript.request_object as module

    tree = ast.parse(inspect.getsource(module))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= {
        "__future__",
        "base64",
        "binascii",
        "collections",
        "functools",
        "re",
        "typing",
        "urllib",
        "attrs",
    }


def test_untouched_return_overrides_need_no_decoding_but_wrong_types_still_fail() -> None:
    base = {"Request": {"URL": "/", "Body": "", "ReturnOverrides": dict(_EMPTY_OVERRIDES_FOR_TEST)}}
    assert parse_js_result(base).request.return_overrides.response_code == 0
    for field, wrong in (("ResponseCode", False), ("OverrideError", 0)):
        bad = {
            "Request": {
                **base["Request"],
                "ReturnOverrides": {**_EMPTY_OVERRIDES_FOR_TEST, field: wrong},
            }
        }
        with pytest.raises(JsResultError, match=field):
            parse_js_result(bad)


_EMPTY_OVERRIDES_FOR_TEST = {
    "ResponseCode": 0,
    "ResponseError": "",
    "ResponseBody": "",
    "ResponseHeaders": None,
    "OverrideError": False,
}


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4)
_STRINGS = st.lists(st.text(max_size=3), max_size=3)
_STRING_MAPS = st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3)
# Mostly values of the type each field has, sometimes anything (the decoders' error paths).
_FIELD_VALUES = (
    _STRINGS
    | _STRING_MAPS
    | st.sampled_from(["", "aGk=", "/a?b=1", "not base64!"])
    | _JSON_SCALARS
    | st.lists(_JSON_SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=3), _JSON_SCALARS, max_size=3)
)
_REQUEST_KEYS = st.sampled_from(
    ["Body", "URL", "SetHeaders", "DeleteHeaders", "AddParams", "DeleteParams",
     "ExtendedParams", "IgnoreBody", "Headers", "Params", "ReturnOverrides", "url", "BODY"]
)  # fmt: skip


@settings(max_examples=400)
@given(
    request=st.dictionaries(_REQUEST_KEYS, _FIELD_VALUES, max_size=6),
    top=st.dictionaries(
        st.sampled_from(["SessionMeta", "Session", "AuthValue", "sessionmeta"]),
        _FIELD_VALUES,
        max_size=2,
    ),
)
def test_the_fast_decoding_agrees_with_the_general_one(
    request: dict[str, Any], top: dict[str, Any]
) -> None:
    """The shortcut for the usual answer (``_parse_plain``) decodes exactly as the general way,
    and leaves everything it does not fully check (errors included) to it."""
    from plugin_drivers.javascript.request_object import _parse_general, _parse_plain

    result = {"Request": request, **top}
    plain = _parse_plain(result)
    try:
        general = _parse_general(result)
    except JsResultError:
        assert plain is None
        return
    assert plain is None or plain == general
