"""The control API's front door: health checks, the secret check, and where it is mounted.

``GET /hello`` and ``GET /ready`` answer without a secret. Everything under ``/tyk/`` needs
``X-Tyk-Authorization: <secret>``, compared in constant time so that response timing does not
reveal how much of a guess was right. With no secret configured the admin API is off and
``/tyk/...`` is routed like any other path (there is never a default secret).

On the main listener the admin paths are matched before API routing (:func:`mount`); with
``control_api_port`` set, ``/tyk/`` is served only on that port's own listener.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

import attrs

from .._exchange import Request, Response
from .._server import Handler
from .routes import AdminRoutes, json_response, status_message

__all__ = [
    "ADMIN_DENIED_MESSAGE",
    "AdminFront",
    "is_admin_path",
    "mount",
    "secret_matches",
]

ADMIN_DENIED_MESSAGE = "Attempted administrative access with invalid or missing key!"
_HEALTH_PATHS = frozenset({"/hello", "/ready"})


def _gateway_version() -> str:
    try:
        return version("trio-gateway")
    except PackageNotFoundError:
        return "unknown"


def secret_matches(secret: str, presented: bytes | None) -> bool:
    """Constant-time comparison of the configured secret with the header's value."""
    if not secret or presented is None:
        return False
    return hmac.compare_digest(secret.encode(), presented)


def is_admin_path(path: str) -> bool:
    return path.startswith("/tyk/") or path == "/tyk"


@attrs.define(eq=False)
class AdminFront:
    """Health checks and the secret check in front of :class:`AdminRoutes`."""

    secret: str
    #: None when the admin API is off (no secret): ``/tyk/`` is not ours then.
    routes: AdminRoutes | None
    #: False while the gateway drains (``/ready`` answers 503 then).
    ready: Callable[[], bool] = lambda: True
    _version: str = attrs.field(factory=_gateway_version, init=False)

    def claims(self, path: str) -> bool:
        """Whether this front answers ``path`` (rather than API routing)."""
        if path in _HEALTH_PATHS:
            return True
        return self.routes is not None and is_admin_path(path)

    async def handle(self, request: Request) -> Response:
        """Answer a request that :meth:`claims` its path (anything else: 404)."""
        path = request.path
        if path in _HEALTH_PATHS:
            return self._health(request, path)
        if self.routes is None or not is_admin_path(path):
            return status_message(404, "Not found")
        if not secret_matches(self.secret, request.header(b"x-tyk-authorization")):
            return status_message(403, ADMIN_DENIED_MESSAGE)
        if path == "/tyk":
            return status_message(404, "Not found")
        return await self.routes.dispatch(request)

    def _health(self, request: Request, path: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return status_message(405, "Method not supported")
        healthy = path == "/hello" or self.ready()
        return json_response(
            200 if healthy else 503,
            {
                "status": "pass" if healthy else "fail",
                "version": self._version,
                "description": "trio-gateway",
                "details": {},
            },
        )


def mount(front: AdminFront, fallback: Handler) -> Handler:
    """A handler that answers the admin and health paths itself and passes the rest on."""
    claims = front.claims
    admin = front.handle

    # Not ``async``: it hands back the chosen handler's own awaitable, so every proxied request
    # does not pay for one more coroutine (created, and passed through at each of its waits).
    def handle(request: Request) -> Awaitable[Response]:
        if claims(request.path):
            return admin(request)
        return fallback(request)

    return handle
