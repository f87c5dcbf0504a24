"""Virtual endpoints' request object and reply, as Tyk builds and decodes them (pure parts)."""

from __future__ import annotations

from typing import Any

import pytest

from plugin_drivers.javascript.request_object import JsResultError
from plugin_drivers.javascript.virtual import (
    form_params,
    go_parse_query,
    parse_virtual_reply,
    virtual_request_object,
)


def test_request_object_has_tyk_fields_and_no_host() -> None:
    obj = virtual_request_object(
        method="GET",
        scheme="https",
        url="/api/hello?name=a+b&x=%C3%A9&x=2",
        headers=[("host", "gw"), ("x-thing", "1"), ("X-Thing", "2"), ("accept", "*/*")],
        body=b"",
    )
    assert obj == {
        "Headers": {"X-Thing": ["1", "2"], "Accept": ["*/*"]},
        "Body": "",
        "URL": "/api/hello?name=a+b&x=%C3%A9&x=2",
        "Params": {"name": ["a b"], "x": ["é", "2"]},
        "Scheme": "https",
    }


def test_body_is_text_not_base64() -> None:
    obj = virtual_request_object(
        method="POST", scheme="http", url="/v", headers=[], body=b'{"a": 1}\xff'
    )
    assert obj["Body"] == '{"a": 1}\ufffd'


def test_form_body_fields_come_before_query_fields() -> None:
    obj = virtual_request_object(
        method="POST",
        scheme="http",
        url="/v?a=q&b=2",
        headers=[("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")],
        body=b"a=form&c=%20x",
    )
    assert obj["Params"] == {"a": ["form", "q"], "c": [" x"], "b": ["2"]}
    assert obj["Body"] == "a=form&c=%20x"  # still there, unparsed


@pytest.mark.parametrize(
    ("method", "content_type"),
    [("GET", "application/x-www-form-urlencoded"), ("POST", "application/json"), ("POST", "")],
)
def test_body_fields_only_for_urlencoded_post_put_patch(method: str, content_type: str) -> None:
    assert form_params(method, content_type, "q=1", b"a=1") == {"q": ["1"]}


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        ("", []),
        ("a=1&&b", [("a", "1"), ("b", "")]),
        ("a=1;b=2&c=3", [("c", "3")]),  # Go refuses pairs with ";"
        ("bad=%zz&ok=%41", [("ok", "A")]),  # and pairs with a broken escape
        ("k%20x=v+w", [("k x", "v w")]),
        ("e=%ff", [("e", "\ufffd")]),
    ],
)
def test_go_parse_query(query: str, pairs: list[tuple[str, str]]) -> None:
    assert go_parse_query(query) == pairs


def _reply(response: Any, meta: Any = None) -> dict[str, Any]:
    return {"Response": response, "SessionMeta": meta}


def test_reply_with_type_keeps_it() -> None:
    reply = parse_virtual_reply(
        _reply(
            {"Body": '{"ok":true}', "Headers": {"content-type": "application/json"}, "Code": 201},
            {"n": 1},
        )
    )
    assert reply.status == 201
    assert reply.headers == ((b"Content-Type", b"application/json"),)
    assert reply.body == b'{"ok":true}'
    assert reply.session_meta == {"n": 1}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"ok": true}', b"text/plain; charset=utf-8"),
        ("<html><body>hi</body></html>", b"text/html; charset=utf-8"),
        ("\u0000\u0001binary", b"application/octet-stream"),
    ],
)
def test_reply_without_type_gets_the_sniffed_one(body: str, expected: bytes) -> None:
    reply = parse_virtual_reply(_reply({"Body": body, "Headers": {"X-A": "1"}, "Code": 200}))
    assert reply.headers == ((b"X-A", b"1"), (b"Content-Type", expected))


def test_empty_body_gets_no_type() -> None:
    reply = parse_virtual_reply(_reply({"Body": "", "Code": 204}))
    assert reply.headers == ()
    assert reply.session_meta == {}


def test_fields_match_without_case_and_names_are_canonical() -> None:
    reply = parse_virtual_reply(
        {"response": {"body": "x", "headers": {"x-my-header": "a\r\nb "}, "code": 200}}
    )
    assert reply.headers[0] == (b"X-My-Header", b"a  b")  # CR LF -> spaces, trimmed (Go)
    assert reply.body == b"x"


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (_reply({"Body": "x"}), "Response.Code 0 is not a status"),
        (_reply({"Body": "x", "Code": 99}), "Response.Code 99"),
        (_reply({"Body": "x", "Code": 1000}), "Response.Code 1000"),
        (_reply({"Body": "x", "Code": 200.5}), "must be an integer"),
        (_reply({"Body": "x", "Code": "200"}), "must be an integer"),
        (_reply({"Body": 5, "Code": 200}), "Response.Body must be a string"),
        (_reply({"Headers": {"A": 1}, "Code": 200}), "Response.Headers.A must be a string"),
        (_reply({"Headers": {"Bad Name": "1"}, "Code": 200}), "not a valid header name"),
        (_reply({"Headers": {"A": "x\u0000y"}, "Code": 200}), "control character"),
        (_reply("nope"), "Response must be an object"),
        (_reply({"Code": 200}, meta=[1]), "SessionMeta must be an object"),
        (
            _reply({"Headers": {"location": "tyk://self/other"}, "Code": 302}),
            "internal loops",
        ),
    ],
)
def test_bad_replies_are_refused(out: dict[str, Any], message: str) -> None:
    with pytest.raises(JsResultError, match=message):
        parse_virtual_reply(out)
