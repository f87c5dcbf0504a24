"""The strategies make what a client may send and the gateway accepts, the same through both
transports; hook contexts follow Tyk's per-stage table."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings

from trio_gateway.hooks import ReadOnlyError, Session, Stage
from trio_gateway.testing import ClientRequest, Result, open_harness
from trio_gateway.testing.strategies import hook_contexts, requests, sessions

API: dict[str, Any] = {
    "api_id": "plain",
    "org_id": "o",
    "use_keyless": True,
    "proxy": {"listen_path": "/p/", "target_url": "http://up.invalid/", "strip_listen_path": True},
}
PER_TRANSPORT = {"host", "x-request-id", "traceparent"}


def _seen(result: Result) -> tuple[Any, ...]:
    up = result.upstream
    assert up is not None, (result.status, result.body)
    headers = [(k.lower(), v) for k, v in up.headers if k.lower() not in PER_TRANSPORT]
    return (up.method, up.path, up.query, sorted(headers), up.body)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests("/p/"))
def test_generated_requests_pass_the_parser_and_both_transports_agree(
    request: ClientRequest,
) -> None:
    async def main() -> tuple[Result, Result]:
        async with open_harness(API) as memory, open_harness(API, sockets=True) as tcp:
            return await memory.send(request), await tcp.send(request)

    in_process, over_tcp = trio.run(main)
    # Never a 400 from the parser; a path whose dot segments climb out of the listen path is
    # routed elsewhere (404), the same way through both transports.
    assert over_tcp.status == in_process.status
    assert over_tcp.status in (200, 404)
    if over_tcp.status == 404:
        return
    assert _seen(in_process) == _seen(over_tcp)
    assert _seen(over_tcp)[0] == request.method
    assert _seen(over_tcp)[4] == request.body


@settings(max_examples=50, deadline=None)
@given(hook_contexts(Stage.PRE), hook_contexts(Stage.RESPONSE), hook_contexts(Stage.POST))
def test_hook_contexts_follow_the_stage_table(pre: Any, resp: Any, post: Any) -> None:
    assert pre.session is None
    assert pre.response is None
    pre.request.set_header("X-Ok", "1")
    assert resp.response is not None
    with pytest.raises(ReadOnlyError):
        resp.request.set_header("X-No", "1")
    assert post.session is not None
    post.session.meta_data["k"] = 1
    with pytest.raises(ReadOnlyError):
        pre.set_session("k", Session())


@settings(max_examples=50, deadline=None)
@given(sessions(expired=True, over_quota=True, now=1_000_000.0))
def test_expired_over_quota_sessions_are_what_they_say(session: Session) -> None:
    assert 0 < session.expires < 1_000_000
    assert session.quota_max > 0
    assert session.quota_remaining == 0
