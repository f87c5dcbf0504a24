"""API definitions end to end: what a folder of Tyk definitions serves (and refuses to serve)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.client import fetch
from tests.helpers.upstream import RawUpstream, ReceivedRequest, start_upstream

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"

#: Headers that differ per request: the request id, and the trace the gateway starts for each.
_PER_REQUEST = {b"x-request-id", b"traceparent"}


def examples_aimed_at(upstream: RawUpstream, apps: Path) -> None:
    """Copy examples/apps/ into ``apps``, pointing their upstream at ``upstream``."""
    apps.mkdir()
    for source in EXAMPLES.glob("*.json"):
        document: dict[str, Any] = json.loads(source.read_text())
        if "x-tyk-api-gateway" in document:
            url = document["x-tyk-api-gateway"]["upstream"]["url"]
            document["x-tyk-api-gateway"]["upstream"]["url"] = _retarget(url, upstream)
        else:
            document["proxy"]["target_url"] = _retarget(document["proxy"]["target_url"], upstream)
        (apps / source.name).write_text(json.dumps(document))


def _retarget(url: str, upstream: RawUpstream) -> str:
    assert url.startswith("http://127.0.0.1:8091/")
    return upstream.url + url.removeprefix("http://127.0.0.1:8091")


def comparable(request: ReceivedRequest) -> tuple[str, bytes, list[tuple[bytes, bytes]], bytes]:
    headers = sorted((k.lower(), v) for k, v in request.headers if k.lower() not in _PER_REQUEST)
    return request.method, request.target, headers, bytes(request.body)


async def test_classic_and_oas_definitions_of_one_api_behave_the_same(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    examples_aimed_at(upstream, apps)
    gw = await start_gateway(nursery, apps)
    assert gw.report.errors == []
    assert sorted(api.api_id for api in gw.report.apis) == ["orders-classic", "orders-oas"]

    cases = [
        ("GET", "/items/7?expand=lines&x=%2F", None),
        ("POST", "/items", b'{"sku": "A-1"}'),
        ("GET", "", None),
    ]
    for method, rest, body in cases:
        headers = [("Host", "shop.example"), ("X-Forwarded-For", "198.51.100.9")]
        classic = await fetch(gw.address, method, "/orders-classic" + rest, headers, body)
        oas = await fetch(gw.address, method, "/orders-oas" + rest, headers, body)
        assert classic.status == oas.status == 200
        assert classic.header(b"content-type") == oas.header(b"content-type")
        assert comparable(upstream.requests[-2]) == comparable(upstream.requests[-1])

    assert [r.target for r in upstream.requests[::2]] == [
        b"/orders/items/7?expand=lines&x=%2F",
        b"/orders/items",
        b"/orders/",
    ]


async def test_broken_definitions_beside_good_ones(nursery: trio.Nursery, tmp_path: Path) -> None:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    write_keyless_api(apps, api_id="good", listen_path="/good/", target_url=upstream.url)
    (apps / "not-json.json").write_text('{"api_id": "half", "proxy": ')
    write_keyless_api(apps, api_id="bad-field", listen_path="/bad/", target_url=upstream.url)
    bad = json.loads((apps / "bad-field.json").read_text())
    bad["proxy"]["strip_listen_path"] = "sometimes"
    (apps / "bad-field.json").write_text(json.dumps(bad))
    write_keyless_api(apps, api_id="zz-same-path", listen_path="/good/", target_url=upstream.url)
    gw = await start_gateway(nursery, apps)

    assert [api.api_id for api in gw.report.apis] == ["good"]
    errors = "\n".join(gw.report.errors)
    assert "not-json.json" in errors
    assert "bad-field.json" in errors
    assert "strip_listen_path" in errors
    # The duplicate listen path names both files.
    duplicate = next(e for e in gw.report.errors if "zz-same-path.json" in e)
    assert "good.json" in duplicate

    assert (await fetch(gw.address, "GET", "/good/x")).status == 200
    assert (await fetch(gw.address, "GET", "/bad/x")).status == 404
    assert [r.target for r in upstream.requests] == [b"/x"]


async def test_unsupported_security_key_refuses_its_api(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    write_keyless_api(apps, api_id="open", listen_path="/open/", target_url=upstream.url)
    write_keyless_api(
        apps,
        api_id="allow-list",
        listen_path="/private/",
        target_url=upstream.url,
        enable_ip_whitelisting=True,
        allowed_ips=["10.0.0.0/8"],
    )
    write_keyless_api(
        apps, api_id="jwt", listen_path="/jwt/", target_url=upstream.url, enable_jwt=True
    )
    gw = await start_gateway(nursery, apps)

    assert [api.api_id for api in gw.report.apis] == ["open"]
    allow = next(e for e in gw.report.errors if "allow-list.json" in e)
    assert "enable_ip_whitelisting" in allow
    jwt = next(e for e in gw.report.errors if "jwt.json" in e)
    assert "enable_jwt" in jwt

    # Never served without the feature: the request does not reach the upstream.
    assert (await fetch(gw.address, "GET", "/private/admin")).status == 404
    assert (await fetch(gw.address, "GET", "/jwt/x")).status == 404
    assert (await fetch(gw.address, "GET", "/open/x")).status == 200
    assert [r.target for r in upstream.requests] == [b"/x"]


def oas_api(api_id: str, listen_path: str, target_url: str, **upstream: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": api_id, "version": "1.0.0"},
        "paths": {},
        "x-tyk-api-gateway": {
            "info": {"id": api_id, "name": api_id, "state": {"active": True}},
            "upstream": {"url": target_url, **upstream},
            "server": {"listenPath": {"value": listen_path, "strip": True}},
        },
    }


async def test_preserve_host_header_classic_and_oas(nursery: trio.Nursery, tmp_path: Path) -> None:
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    url = upstream.url + "/"
    write_keyless_api(
        apps,
        api_id="classic",
        listen_path="/classic/",
        target_url=url,
        proxy={"listen_path": "/classic/", "target_url": url, "strip_listen_path": True,
               "preserve_host_header": True},
    )  # fmt: skip
    (apps / "oas.json").write_text(
        json.dumps(oas_api("oas", "/oas/", url, preserveHostHeader={"enabled": True}))
    )
    (apps / "oas-plain.json").write_text(json.dumps(oas_api("oas-plain", "/plain/", url)))
    gw = await start_gateway(nursery, apps)
    assert gw.report.errors == []

    for path in ("/classic/x", "/oas/x", "/plain/x"):
        assert (await fetch(gw.address, "GET", path, [("Host", "public.example")])).status == 200

    host, port = upstream.address
    assert [r.header(b"host") for r in upstream.requests] == [
        b"public.example",
        b"public.example",
        f"{host}:{port}".encode(),
    ]


async def test_tyk_file_mode_pair_loads_as_one_api(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Tyk writes an OAS API as X.json (Classic, is_oas) beside X-oas.json: one API, served."""
    upstream = await start_upstream(nursery)
    apps = tmp_path / "apps"
    write_keyless_api(
        apps, api_id="pair", listen_path="/pair/", target_url=upstream.url, is_oas=True
    )
    (apps / "pair-oas.json").write_text(
        json.dumps(oas_api("pair", "/pair/", upstream.url + "/from-oas/"))
    )
    gw = await start_gateway(nursery, apps)

    assert gw.report.errors == []
    assert [api.api_id for api in gw.report.apis] == ["pair"]
    assert (await fetch(gw.address, "GET", "/pair/x")).status == 200
    assert [r.target for r in upstream.requests] == [b"/from-oas/x"]
