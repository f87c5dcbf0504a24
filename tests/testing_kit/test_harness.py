"""The harness: real loader, real driver, real pipeline, a recording upstream, a hook trace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_gateway.hooks import Stage
from trio_gateway.testing import SeenRequest, UpstreamReply, open_harness

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples" / "apps-plugins"


def api(**middleware: Any) -> dict[str, Any]:
    return {
        "api_id": "kit",
        "org_id": "org",
        "use_keyless": True,
        "proxy": {
            "listen_path": "/kit/",
            "target_url": "http://example.invalid/base/",
            "strip_listen_path": True,
        },
        "custom_middleware": {"driver": "python", **middleware},
    }


def hook(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": "plugins/harness_plugins.py", **extra}


@pytest.mark.parametrize("sockets", [False, True])
async def test_custom_auth_example_result_trace_and_session(sockets: bool) -> None:
    async with open_harness(EXAMPLES / "token-auth.json", sockets=sockets) as h:
        denied = await h.request("GET", h.path("me"))
        assert denied.status == 403
        assert denied.upstream is None
        assert [(c.label, c.outcome, c.status) for c in denied.trace] == [
            ("auth[0] authenticate", "respond", 403)
        ]
        ok = await h.request(
            "GET", h.path("me"), headers={"Authorization": "Bearer secret-token-ann"}
        )
        assert ok.status == 200
        assert ok.upstream is not None
        assert ok.upstream.header("x-user") == "ann"
        assert ok.upstream.header("authorization") is None
        assert ok.json()["path"] == "/me"  # the default upstream echoes the request
        assert ok.session_key == "secret-token-ann"
        assert ok.session is not None
        assert ok.session.meta_data == {"user": "ann", "last_path": "/plugins/auth/me"}
        assert [(c.stage, c.outcome) for c in ok.trace] == [
            (Stage.AUTH, "continue"),
            (Stage.POST, "continue"),
        ]


@pytest.mark.parametrize("sockets", [False, True])
async def test_dict_definition_scripted_upstream_sees_the_wire_request(sockets: bool) -> None:
    def upstream(seen: SeenRequest) -> UpstreamReply:
        return UpstreamReply(status=201, headers={"X-Up": "1"}, body=seen.body[::-1])

    async with open_harness(
        api(pre=[hook("tag")]), base_dir=HERE, upstream=upstream, sockets=sockets
    ) as h:
        r = await h.request(
            "POST",
            "/kit/a%2Fb/c",
            query="q=%C3%A9&q=2",
            headers=[("X-Rep", "1"), ("x-rep", "2")],
            body=b"\xff\x00body",
        )
    assert (r.status, r.header("x-up"), r.body) == (201, "1", b"ydob\x00\xff")
    seen = r.upstream
    assert seen is not None
    assert (seen.method, seen.path, seen.query) == ("POST", "/base/a%2Fb/c", "q=%C3%A9&q=2")
    assert seen.header_values("x-rep") == ["1", "2"]
    assert seen.header("x-tagged") == "yes"
    assert seen.header("content-length") == "6"
    assert seen.header("x-trio-gateway-testing-trace") is None


async def test_a_hook_past_its_deadline_costs_no_wall_time_under_autojump(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_harness(api(pre=[hook("slow", timeout=2)]), base_dir=HERE) as h:
        start = time.perf_counter()
        r = await h.request()
        wall = time.perf_counter() - start
    assert r.status == 504
    assert [(c.outcome, round(c.duration, 3)) for c in r.trace] == [("timeout", 2.0)]
    assert r.upstream is None
    assert wall < 1.0


async def test_a_respond_decision_is_traced_with_its_status() -> None:
    async with open_harness(api(post=[hook("teapot")]), base_dir=HERE) as h:
        r = await h.request()
    assert (r.status, r.body) == (418, b"short and stout")
    assert r.trace[0].describe().startswith("post[0] teapot: respond")


@pytest.mark.parametrize("sockets", [False, True])
async def test_a_body_over_a_hooks_read_limit_gets_413_in_process_as_over_sockets(
    sockets: bool,
) -> None:
    """``read_body(limit=N)`` over N is the client's error: 413, as the real server answers it
    (the in-process transport used to answer 400 "There was a problem proxying the request")."""
    async with open_harness(api(pre=[hook("reads_capped")]), base_dir=HERE, sockets=sockets) as h:
        result = await h.request("POST", h.path("upload"), body=b"z" * 5000)
    assert result.status == 413
    assert result.json() == {"error": "Request Entity Too Large"}
    assert result.upstream is None


async def test_whitespace_around_a_header_value_is_dropped_by_both_transports() -> None:
    """The server's parser drops it (RFC 9110 section 5.5); the in-process transport must too,
    or a hook sees ``"Bearer "`` only in-process (found by test_strategies.py)."""
    definition = api(pre=[hook("quote_token")])
    headers = {"X-Token": " Bearer \t"}
    async with (
        open_harness(definition, base_dir=HERE) as memory,
        open_harness(definition, base_dir=HERE, sockets=True) as tcp,
    ):
        seen = [(await h.request("GET", h.path(), headers=headers)).upstream for h in (memory, tcp)]
    assert [s.header("X-Quoted") for s in seen if s is not None] == ["'Bearer'", "'Bearer'"]
