"""The hand-written Object encoding equals what the generated classes build (``wire``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_drivers.coprocess import object_encoder, wire
from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb
from trio_gateway._exchange import Request, Response
from trio_gateway._session.model import AccessDefinition, Session
from trio_gateway.hooks import CONTINUE, ApiInfo, Stage

texts = st.text(max_size=20)
header_names = st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z")
header_values = st.binary(max_size=20)


@given(
    stage=st.sampled_from([Stage.PRE, Stage.POST_AUTH, Stage.POST, Stage.ENDPOINT, Stage.AUTH]),
    hook_name=texts,
    path=st.from_regex(r"\A/[a-z0-9/%]{0,20}\Z"),
    query=st.from_regex(r"\A([a-z]{1,3}=[a-z0-9]{0,3}&?){0,3}\Z"),
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    body=st.one_of(st.binary(max_size=50), texts.map(str.encode)),
    raw_body_only=st.booleans(),
    config_data=st.one_of(st.none(), st.dictionaries(texts, st.integers(), max_size=3)),
    bundle=texts,
    method=st.sampled_from(["GET", "POST", "PATCH"]),
)
def test_request_stage_objects_match(
    stage: Stage,
    hook_name: str,
    path: str,
    query: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    raw_body_only: bool,
    config_data: dict[str, Any] | None,
    bundle: str,
    method: str,
) -> None:
    request = Request(method=method, path=path, query=query, headers=headers, body_bytes=body)
    api = ApiInfo(api_id="a1", org_id="o1", name="n", config_data=config_data)
    kwargs: dict[str, Any] = {
        "stage": stage,
        "hook_name": hook_name,
        "api": api,
        "request": request,
        "body": body,
        "raw_body_only": raw_body_only,
        "bundle": bundle,
    }
    expected = wire.build_object(**kwargs)
    encoded = object_encoder.encode_object(**kwargs)
    assert pb.Object.FromString(encoded) == expected
    # The spec encoded once per API gives the same message.
    spec = object_encoder.encode_spec(api, bundle)
    assert object_encoder.encode_object(**kwargs, spec=spec) == encoded


@pytest.mark.parametrize("with_session", [False, True])
def test_response_stage_and_session_match(with_session: bool) -> None:
    request = Request(method="GET", path="/p", query="", headers=[(b"host", b"h")])
    response = Response(
        status=201, headers=[(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-y", b"z")]
    )
    session = Session(
        rate=5, per=1, meta_data={"token": "t", "n": 3}, access_rights={"a1": AccessDefinition()}
    )
    api = ApiInfo(api_id="a1", org_id="o1", name="n", config_data=None)
    kwargs: dict[str, Any] = {
        "stage": Stage.RESPONSE,
        "hook_name": "r",
        "api": api,
        "request": request,
        "body": b"",
        "session": session if with_session else None,
        "response": response,
        "response_body": b"\xff binary",
    }
    expected = wire.build_object(**kwargs)
    assert pb.Object.FromString(object_encoder.encode_object(**kwargs)) == expected
    assert expected.HasField("session")


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("/p?a=1", "/p", "a=1"),  # unchanged: the fast path
        ("//evil/x?a=1", "/x", "a=1"),  # splitting changes it: the full path
        ("/p#frag?a=1", "/p", "a=1"),
        ("/q?a=1", "/q", "a=1"),
    ],
)
def test_unchanged_url_fast_path_agrees_with_the_full_parse(
    url: str, path: str, query: str
) -> None:
    request = Request(method="GET", path="/p", query="a=1", headers=[])
    reply = pb.Object()
    reply.request.url = url
    reply.request.method = "post"
    reply.request.return_overrides.response_code = -1
    assert wire.apply_request_reply(reply, request) is CONTINUE
    assert (request.path, request.query, request.method) == (path, query, "POST")
