"""Request -> API: path normalisation and listen-path routing (pure, on the hot path).

Rules (Tyk's, with the path normalised first so that routing and every later access rule see the
same path):

* APIs bound to a ``domain`` equal to the request's host (case-insensitive, port ignored) are tried
  first, then APIs without a domain.
* Within a group the longest listen path wins, matched on segment boundaries: ``/orders`` and
  ``/orders/`` both match ``/orders``, ``/orders/x``, never ``/ordersx``. ``/`` matches everything.
* Query strings are not part of routing; the caller keeps them byte for byte.

Everything that can be decided per API is decided in :meth:`Router.build`; :meth:`Router.match` does
a handful of dict look-ups, one per path segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final
from urllib.parse import urlsplit

import attrs

from ._apidef.model import ApiDefinition
from ._paths import listen_path_key, normalise_path

__all__ = ["RouteMatch", "Router", "Target", "listen_path_key", "normalise_path"]

def _host_only(host: str) -> str:
    """A ``Host`` header value -> lower-case host without the port (IPv6 kept in brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    colon = host.rfind(":")
    return host[:colon] if colon != -1 else host


@final
@attrs.frozen(kw_only=True)
class Target:
    """An API's upstream, parsed once at build time."""

    scheme: str  # "http" | "https"
    host: str  # as written, without brackets for IPv6 (what a socket connect takes)
    port: int
    #: The ``Host`` header value for the upstream (port only when not the scheme's default).
    host_header: str
    #: The target URL's own path without its trailing slash ("" for none); joined before the path.
    base_path: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        default_port = 443 if scheme == "https" else 80
        port = parts.port or default_port
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default_port else f"{shown}:{port}"
        return cls(
            scheme=scheme,
            host=host,
            port=port,
            host_header=host_header,
            base_path=parts.path.rstrip("/"),
        )

    def join(self, path: str) -> str:
        """The upstream request path: ``base_path`` + ``path`` (which starts with ``/``)."""
        return self.base_path + path


@final
@attrs.frozen(kw_only=True)
class RouteMatch:
    """The API a request goes to and the path to send upstream (query string not included)."""

    api: ApiDefinition
    target: Target
    #: The normalised request path, as routing and access rules saw it.
    path: str
    #: The part of ``path`` after the listen path, starting with ``/`` (what endpoint rules match).
    api_path: str
    #: The path for the upstream request line: listen path stripped if configured, under the target.
    upstream_path: str


@attrs.frozen
class _Route:
    api: ApiDefinition
    target: Target
    key_len: int
    strip: bool


def _route_for(api: ApiDefinition) -> tuple[str, _Route]:
    key = listen_path_key(api.listen_path)
    return key, _Route(api, Target.from_url(api.target_url), len(key), api.strip_listen_path)


@final
@attrs.frozen
class Router:
    """An immutable routing table; build a new one on reload and swap it."""

    _by_domain: dict[str, dict[str, _Route]]
    _any_domain: dict[str, _Route]
    apis: tuple[ApiDefinition, ...]

    @classmethod
    def build(cls, apis: Sequence[ApiDefinition]) -> Router:
        """Index ``apis``; on a duplicate (domain, listen path) the first one wins."""
        by_domain: dict[str, dict[str, _Route]] = {}
        any_domain: dict[str, _Route] = {}
        for api in apis:
            key, route = _route_for(api)
            table = by_domain.setdefault(api.domain.lower(), {}) if api.domain else any_domain
            table.setdefault(key, route)
        return cls(by_domain, any_domain, tuple(apis))

    def match(self, host: str | None, path: str) -> RouteMatch | None:
        """The API for a request to ``host`` (a Host header value) and ``path`` (no query)."""
        path = normalise_path(path)
        route: _Route | None = None
        if host and self._by_domain:
            table = self._by_domain.get(_host_only(host))
            if table is not None:
                route = _longest(table, path)
        if route is None:
            route = _longest(self._any_domain, path)
            if route is None:
                return None
        api_path = path[route.key_len :] or "/"
        upstream = route.target.join(api_path if route.strip else path)
        return RouteMatch(
            api=route.api, target=route.target, path=path, api_path=api_path, upstream_path=upstream
        )


def _longest(table: dict[str, _Route], path: str) -> _Route | None:
    """The route with the longest key that is ``path`` or a prefix ending at a ``/``."""
    if not table:
        return None
    end = len(path)
    while True:
        candidate = path[:end]
        route = table.get(candidate)
        if route is not None:
            return route
        if end == 0:
            return None
        end = path.rfind("/", 0, end)  # next shorter prefix on a segment boundary
        if end == -1:
            return None
