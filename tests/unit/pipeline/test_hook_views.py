"""Every visibility rule of the issue's table, through the typed views."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pipeline_support import make_api, make_request

from trio_gateway._apidef.model import FailureMode, PluginRef, Stage
from trio_gateway._exchange import Response
from trio_gateway.hooks import (
    HOOK_API_VERSION,
    ApiInfo,
    HookContext,
    HookRef,
    ReadOnlyError,
    RequestView,
    Respond,
    Session,
)

API = make_api()


def ctx_for(stage: Stage, *, session: Session | None = None) -> HookContext:
    hook = HookRef(
        stage=stage,
        plugin=PluginRef(name="h"),
        index=0,
        timeout=1.0,
        failure_mode=FailureMode.CLOSED,
    )
    response = Response(status=200, headers=[(b"content-type", b"text/plain")], body_bytes=b"up")
    return HookContext._create(
        stage=stage,
        api=ApiInfo.from_api(API),
        hook=hook,
        request=make_request(),
        session=session if session is not None else Session(meta_data={"k": "v"}, rate=5),
        session_key="key-1",
        response=response,
    )


def test_version_and_no_public_constructor() -> None:
    assert HOOK_API_VERSION == 1
    with pytest.raises(TypeError):
        HookContext()


@pytest.mark.parametrize("stage", list(Stage))
def test_config_is_visible_everywhere(stage: Stage) -> None:
    ctx = ctx_for(stage)
    assert (ctx.api.api_id, ctx.api.org_id) == ("api-1", "org-1")
    assert ctx.api.config_data == {"greeting": "hi"}
    assert ctx.hook_name == "h"


@pytest.mark.parametrize("stage", [Stage.PRE, Stage.AUTH])
def test_no_session_before_auth(stage: Stage) -> None:
    assert ctx_for(stage).session is None


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.RESPONSE])
def test_response_only_in_response_stage(stage: Stage) -> None:
    assert ctx_for(stage).response is None
    assert ctx_for(Stage.RESPONSE).response is not None


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.RESPONSE])
def test_request_writable_before_upstream(stage: Stage) -> None:
    ctx = ctx_for(stage)
    ctx.request.set_header("X-New", "1")
    ctx.request.delete_header("x-in")
    ctx.request.set_query_param("b", "two words")
    ctx.request.delete_query_param("a")
    ctx.request.set_body(b"new")
    ctx.request.method = "post"
    ctx.request.path = "/api/other"
    raw = ctx.raw_request
    assert raw.headers == [(b"host", b"example"), (b"x-new", b"1")]
    assert raw.query == "b=two+words"
    assert (raw.body_bytes, raw.method, raw.path) == (b"new", "POST", "/api/other")


@pytest.mark.parametrize(
    "write",
    [
        lambda r: r.set_header("a", "b"),
        lambda r: r.add_header("a", "b"),
        lambda r: r.delete_header("host"),
        lambda r: r.set_query_param("a", "2"),
        lambda r: r.delete_query_param("a"),
        lambda r: r.set_body(b"x"),
        lambda r: setattr(r, "method", "PUT"),
        lambda r: setattr(r, "path", "/x"),
        lambda r: setattr(r, "query", ""),
    ],
)
def test_request_is_read_only_in_response(write: object) -> None:
    ctx = ctx_for(Stage.RESPONSE)
    before = (list(ctx.raw_request.headers), ctx.raw_request.query)
    with pytest.raises(ReadOnlyError, match="request is read-only in the response stage"):
        write(ctx.request)  # type: ignore[operator]
    assert (ctx.raw_request.headers, ctx.raw_request.query) == before
    assert ctx.request.get_header("HOST") == "example"  # reading still works


@pytest.mark.parametrize("stage", [Stage.POST_AUTH, Stage.ENDPOINT, Stage.POST])
def test_meta_data_writable_after_auth_rest_read_only(stage: Stage) -> None:
    ctx = ctx_for(stage)
    assert ctx.session is not None
    assert ctx.session.key == "key-1"
    assert ctx.session.rate == 5
    ctx.session.meta_data["new"] = 1
    del ctx.session.meta_data["k"]
    assert ctx.raw_session is not None
    assert ctx.raw_session.meta_data == {"new": 1}
    assert ctx._meta_data_changed
    with pytest.raises(
        ReadOnlyError, match=f"session.rate is read-only in the {stage.value} stage"
    ):
        ctx.session.rate = 10
    with pytest.raises(AttributeError):
        ctx.session.tags.append("x")  # containers come back read-only
    with pytest.raises(ReadOnlyError, match="session is read-only"):
        ctx.set_session("k2")


def test_session_read_only_in_response() -> None:
    ctx = ctx_for(Stage.RESPONSE)
    assert ctx.session is not None
    assert ctx.session.meta_data["k"] == "v"
    with pytest.raises(ReadOnlyError, match="meta_data is read-only in the response stage"):
        ctx.session.meta_data["k"] = "changed"
    assert ctx.raw_session is not None
    assert ctx.raw_session.meta_data == {"k": "v"}
    assert not ctx._meta_data_changed


def test_custom_auth_creates_the_session_with_the_api_org() -> None:
    ctx = ctx_for(Stage.AUTH)
    assert ctx.session is None
    session = ctx.set_session("token-1", Session(org_id="someone-else", rate=3))
    assert session.org_id == "org-1"
    assert ctx.session is not None
    assert ctx.session.key == "token-1"
    ctx.session.meta_data["user"] = "ann"
    with pytest.raises(ValueError, match="empty"):
        ctx.set_session("")


@pytest.mark.parametrize("stage", [Stage.PRE, Stage.POST])
def test_set_session_refused_outside_auth(stage: Stage) -> None:
    with pytest.raises(ReadOnlyError, match=f"in the {stage.value} stage"):
        ctx_for(stage).set_session("k")


def test_response_view_edits() -> None:
    ctx = ctx_for(Stage.RESPONSE)
    resp = ctx.response
    assert resp is not None
    assert (resp.status, resp.body) == (200, b"up")
    resp.status = 201
    resp.set_body("changed")
    resp.add_header("X-A", "1")
    assert ctx.raw_response is not None
    assert ctx.raw_response.status == 201
    assert ctx.raw_response.body_bytes == b"changed"
    assert (b"content-length", b"7") in ctx.raw_response.headers
    assert resp.get_all_headers("x-a") == ["1"]
    with pytest.raises(ValueError, match="HTTP status"):
        resp.status = 99
    with pytest.raises(ValueError, match="final response"):
        resp.status = 101


def test_query_helpers_keep_other_params_byte_for_byte() -> None:
    ctx = ctx_for(Stage.PRE)
    ctx.request.query = "x=%2F%20&a=1&a=2&flag"
    ctx.request.set_query_param("a", "3")
    assert ctx.request.query == "x=%2F%20&flag&a=3"
    assert ctx.request.query_params == [("x", "/ "), ("flag", ""), ("a", "3")]
    assert ctx.request.get_query_param("missing", "d") == "d"


def test_respond_builds_a_response() -> None:
    decision = HookContext.respond(400, "bad", {"Content-Type": "text/plain"})
    assert decision == Respond(status=400, headers={"Content-Type": "text/plain"}, body="bad")
    response = decision.to_response()
    assert (response.status, response.body_bytes) == (400, b"bad")
    assert response.headers == [(b"Content-Type", b"text/plain")]  # the case given is kept


def test_fork_isolates_until_merged() -> None:
    ctx = ctx_for(Stage.POST)
    fork = ctx._fork()
    fork.request.set_header("x-fork", "1")
    assert fork.session is not None
    fork.session.meta_data["f"] = 1
    assert ctx.raw_request.header(b"x-fork") is None
    assert ctx.raw_session is not None
    assert "f" not in ctx.raw_session.meta_data
    ctx._merge(fork)
    assert ctx.raw_request.header(b"x-fork") == b"1"
    assert ctx.raw_session.meta_data["f"] == 1
    assert ctx._meta_data_changed


SPLITTING_CHANGES: dict[str, Callable[[RequestView], None]] = {
    "header-value-crlf": lambda r: r.set_header("X-A", "a\r\nX-Injected: 1"),
    "added-header-value-lf": lambda r: r.add_header("X-A", "a\nb"),
    "header-name-colon": lambda r: r.set_header("X-A: b", "v"),
    "method-with-space": lambda r: setattr(r, "method", "GET /admin"),
    "method-non-ascii": lambda r: setattr(r, "method", "G\u00c9T"),
    "path-with-space": lambda r: setattr(r, "path", "/a b"),
    "path-non-ascii": lambda r: setattr(r, "path", "/caf\u00e9"),
    "query-crlf": lambda r: setattr(r, "query", "a=1\r\n"),
}


@pytest.mark.parametrize("change", SPLITTING_CHANGES.values(), ids=SPLITTING_CHANGES.keys())
def test_values_that_would_split_a_head_are_refused_where_they_are_set(
    change: Callable[[RequestView], None],
) -> None:
    """The plugin author's own line raises (the pipeline would refuse the value anyway)."""
    ctx = ctx_for(Stage.PRE)
    raw = ctx.raw_request
    before = list(raw.headers), raw.method, raw.path, raw.query
    with pytest.raises(ValueError, match=r"invalid|unsupported|ASCII"):
        change(ctx.request)
    assert (list(raw.headers), raw.method, raw.path, raw.query) == before


def test_response_header_values_are_checked_too() -> None:
    response = ctx_for(Stage.RESPONSE).response
    assert response is not None
    with pytest.raises(ValueError, match="invalid header value"):
        response.set_header("X-A", "a\r\n\r\nHTTP/1.1 200 OK")
