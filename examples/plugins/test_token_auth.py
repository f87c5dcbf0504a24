"""Tests for ``token_auth.py``, written as its author would, with the kit.

The auth hook creates the session; the harness hands back the session as stored after the request,
so what the Post hook writes in ``meta_data`` can be checked.
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


async def test_the_post_hook_notes_the_latest_path_in_the_stored_session() -> None:
    token = [("Authorization", "Bearer secret-token-bob")]
    async with open_harness(API) as gateway:
        await gateway.request("GET", gateway.path("orders"), headers=token)
        await gateway.request("GET", gateway.path("orders/7"), headers=token)
        stored = await gateway.get_session("secret-token-bob")
    # The auth hook builds the session anew on every request: it describes the latest one.
    assert stored is not None
    assert stored.meta_data == {"user": "bob", "last_path": "/plugins/auth/orders/7"}
