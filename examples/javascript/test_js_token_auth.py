"""Tests for ``token_auth.js``, written as its author would, with the kit.

The auth hook returns the session (``ReturnAuthData``) keyed by the token; the harness hands back
the session as stored after the request.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_gateway import load_config
from trio_gateway.testing import open_harness

API = Path(__file__).resolve().parent / "apps" / "token-auth.json"
CONFIG, _ = load_config(None, {}, {"javascript.enable": True})


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer ", "Bearer secret-token-eve", "Basic x y"]
)
async def test_no_known_bearer_token_no_entry(authorization: str | None) -> None:
    headers = [] if authorization is None else [("Authorization", authorization)]
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request(headers=headers)
    assert result.status == 403
    assert result.json() == {"error": "Key not authorised"}
    assert result.upstream is None


async def test_a_known_token_gets_a_session_and_the_user_goes_upstream() -> None:
    async with open_harness(API, config=CONFIG) as gateway:
        result = await gateway.request(headers=[("Authorization", "Bearer secret-token-ann")])
    assert result.status == 200
    assert result.upstream is not None
    assert result.upstream.header_values("X-User") == ["ann"]
    assert result.upstream.header("Authorization") is None
    assert result.session_key == "secret-token-ann"
    assert result.session is not None
    assert result.session.meta_data["user"] == "ann"
    assert result.session.meta_data["last_path"] == "/js/auth/"
