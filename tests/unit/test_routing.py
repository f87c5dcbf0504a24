from __future__ import annotations

import pytest

from trio_gateway._apidef.model import ApiDefinition
from trio_gateway._routing import Router, Target, listen_path_key, normalise_path


def api(
    api_id: str,
    listen_path: str,
    *,
    domain: str = "",
    target: str = "http://up:8080/",
    strip: bool = False,
) -> ApiDefinition:
    return ApiDefinition(
        api_id=api_id,
        listen_path=listen_path,
        target_url=target,
        domain=domain,
        strip_listen_path=strip,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("//a///b", "/a/b"),
        ("/a//", "/a/"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/../../b", "/b"),
        ("/a/%2F/b", "/a/%2F/b"),  # an encoded slash is data, not a separator
        ("/a%2Fb/../c", "/c"),
        ("/a/%2e%2e/b", "/b"),  # encoded dots are dots (RFC 3986 §6.2.2.2)
        ("/a/.%2E/b", "/b"),
        ("/a/%2e/b", "/a/b"),
        ("/a/...", "/a/..."),
        ("/a/..b", "/a/..b"),
        ("/%41", "/%41"),
        ("a/b", "/a/b"),
    ],
)
def test_normalise_path(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected
    assert normalise_path(expected) == expected


def test_listen_path_key() -> None:
    assert listen_path_key("/orders/") == listen_path_key("/orders") == "/orders"
    assert listen_path_key("/") == ""


ROUTER = Router.build(
    [
        api("root", "/"),
        api("orders", "/orders/"),
        api("orders-v2", "/orders/v2"),
        api("shop-orders", "/orders", domain="shop.example.com"),
        api("shop-only", "/only-shop/", domain="shop.example.com"),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "api_id"),
    [
        (None, "/orders", "orders"),
        (None, "/orders/", "orders"),
        (None, "/orders/x/y", "orders"),
        (None, "/ordersx", "root"),
        (None, "/orders/v2", "orders-v2"),
        (None, "/orders/v2/items", "orders-v2"),
        (None, "/orders/v22", "orders"),
        (None, "/", "root"),
        (None, "/anything", "root"),
        ("shop.example.com", "/orders/x", "shop-orders"),
        ("SHOP.Example.com:8443", "/orders", "shop-orders"),
        ("shop.example.com", "/anything", "root"),  # falls back to APIs without a domain
        ("shop.example.com", "/only-shop/a", "shop-only"),
        ("other.example.com", "/only-shop/a", "root"),
        ("other.example.com", "/orders", "orders"),
        (None, "//orders//x", "orders"),
        (None, "/x/../orders/v2", "orders-v2"),
        (None, "/orders/v2/../x", "orders"),
    ],
)
def test_match_rules(host: str | None, path: str, api_id: str) -> None:
    match = ROUTER.match(host, path)
    assert match is not None
    assert match.api.api_id == api_id


def test_no_match_without_a_root_api() -> None:
    router = Router.build([api("orders", "/orders")])
    assert router.match(None, "/ordersx") is None
    assert router.match(None, "/") is None
    assert router.match("h", "/orders/1") is not None
    assert Router.build([]).match(None, "/") is None


def test_first_api_wins_on_duplicate_route() -> None:
    router = Router.build([api("a", "/x/"), api("b", "/x")])
    match = router.match(None, "/x")
    assert match is not None
    assert match.api.api_id == "a"


@pytest.mark.parametrize(
    ("listen", "strip", "target", "path", "upstream", "api_path"),
    [
        ("/orders/", True, "http://u/", "/orders/x", "/x", "/x"),
        ("/orders/", True, "http://u/", "/orders", "/", "/"),
        ("/orders/", True, "http://u/base/", "/orders/x", "/base/x", "/x"),
        ("/orders/", True, "http://u/base", "/orders/x/", "/base/x/", "/x/"),
        ("/orders/", False, "http://u/base/", "/orders/x", "/base/orders/x", "/x"),
        ("/orders/", False, "http://u", "/orders/x", "/orders/x", "/x"),
        ("/", True, "http://u/base/", "/a/b", "/base/a/b", "/a/b"),
        ("/orders/", True, "http://u/", "/orders/%2F/../y", "/y", "/y"),
        ("/orders/", True, "http://u/", "/orders/a%2Fb", "/a%2Fb", "/a%2Fb"),
    ],
)
def test_upstream_path(
    listen: str, strip: bool, target: str, path: str, upstream: str, api_path: str
) -> None:
    match = Router.build([api("a", listen, strip=strip, target=target)]).match(None, path)
    assert match is not None
    assert match.upstream_path == upstream
    assert match.api_path == api_path
    assert match.path == normalise_path(path)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "host_header", "base_path"),
    [
        ("http://up.internal:8080/", "http", "up.internal", 8080, "up.internal:8080", ""),
        ("http://up/", "http", "up", 80, "up", ""),
        ("https://up/base/", "https", "up", 443, "up", "/base"),
        ("https://up:8443/a/b", "https", "up", 8443, "up:8443", "/a/b"),
        ("http://[::1]:9000/", "http", "::1", 9000, "[::1]:9000", ""),
        ("HTTP://UP:80", "http", "up", 80, "up", ""),
    ],
)
def test_target(
    url: str, scheme: str, host: str, port: int, host_header: str, base_path: str
) -> None:
    target = Target.from_url(url)
    assert (target.scheme, target.host, target.port) == (scheme, host, port)
    assert target.host_header == host_header
    assert target.base_path == base_path
    assert target.tls is (scheme == "https")


def test_match_exposes_the_precomputed_target() -> None:
    router = Router.build([api("a", "/a/", target="https://up:8443/b/")])
    first = router.match(None, "/a/1")
    second = router.match(None, "/a/2")
    assert first is not None
    assert second is not None
    assert first.target is second.target
    assert first.target.host_header == "up:8443"


def test_ipv6_host_header_with_domain() -> None:
    router = Router.build([api("v6", "/", domain="[::1]")])
    match = router.match("[::1]:8080", "/x")
    assert match is not None
    assert match.api.api_id == "v6"
