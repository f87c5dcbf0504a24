"""Tests for ``token_auth.py``, written as its author would, with the kit.

The auth hook creates the session; the harness hands back the session as stored after the request,
so the Post hook's visit counter can be checked across requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parents[1] / "apps-plugins" / "token-auth.json"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer secret-token-eve", "Basic secret-token-ann"],
)
async def test_no_known_bearer_token_no_entry(authorization: str | None) -> None:
    headers = [] if authorization is None else [("Authorization", authorization)]
    async with open_harness(API) as gateway:
        result = await gateway.request(headers=headers)
    assert result.status == 403
    assert result.json() == {"error": "Key not authorised"}
    assert result.upstream is None
    assert result.session is None


async def test_a_known_token_gets_a_session_and_the_user_goes_upstream() -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request(headers=[("Authorization", "Bearer secret-token-ann")])
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.header_values("X-User") == ["ann"]
    assert result.upstream.header("Authorization") is None  # the token stays at the gateway
    assert result.session_key == "secret-token-ann"
    assert result.session is not None
    assert result.session.meta_data["user"] == "ann"


async def test_each_user_is_told_apart() -> None:
    async with open_harness(API) as gateway:
        ann = await gateway.request(headers=[("Authorization", "Bearer secret-token-ann")])
        bob = await gateway.request(headers=[("Authorization", "bearer secret-token-bob")])
    assert ann.upstream is not None
    assert bob.upstream is not None
    assert ann.upstream.header("X-User") == "ann"
    assert bob.upstream.header("X-User") == "bob"


async def test_the_post_hook_writes_meta_data_that_is_stored() -> None:
    async with open_harness(API) as gateway:
        result = await gateway.request(headers=[("Authorization", "Bearer secret-token-bob")])
    # The auth hook builds a new session on every request, so the count starts again each time.
    assert result.session is not None
    assert result.session.meta_data == {"user": "bob", "visits": 1}
