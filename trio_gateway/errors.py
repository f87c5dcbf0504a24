"""The public exception tree.

Every error the gateway raises on purpose derives from :class:`GatewayError`. Each class carries a
``status_hint``: the HTTP status the server answers with when the error ends a request. Policy
decisions (a 403 for a denied key, a 429 for a rate limit) are not exceptions; they are responses.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ApiDefinitionError",
    "BundleError",
    "ClientProtocolError",
    "ConfigError",
    "GatewayError",
    "HookError",
    "HookTimeout",
    "PluginDriverError",
    "ProtocolError",
    "SessionStoreError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
]


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""

    status_hint: ClassVar[int] = 500
    #: The message a client may see (never internal detail).
    public_message: ClassVar[str] = "There was a problem proxying the request"


class ConfigError(GatewayError):
    """Gateway settings that cannot be used. ``messages`` lists each problem on its own line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class ApiDefinitionError(ConfigError):
    """An API definition that cannot be served. The API is skipped; the others still load."""

    def __init__(self, source: str, messages: list[str], api_id: str = "") -> None:
        super().__init__([f"{source}: {m}" for m in messages])
        self.source = source
        self.api_id = api_id


class ProtocolError(GatewayError):
    """A peer broke the HTTP protocol."""


class ClientProtocolError(ProtocolError):
    """The client sent something we cannot accept; ``status`` is 400, 413 or 431."""

    status_hint = 400

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UpstreamError(GatewayError):
    """The upstream could not give us a response."""

    status_hint = 502


class UpstreamProtocolError(UpstreamError, ProtocolError):
    """The upstream's response was not valid HTTP/1.1."""

    status_hint = 502


class UpstreamConnectError(UpstreamError):
    """No connection to the upstream could be made (refused, DNS, TLS handshake)."""

    status_hint = 502


class HookError(GatewayError):
    """A plugin hook failed: it raised, returned something invalid, or its driver is unavailable."""

    status_hint = 500
    public_message = "Middleware error"


class PluginDriverError(HookError):
    """A plugin driver could not load or reach its plugins."""


class HookTimeout(HookError):
    """A plugin hook overstayed its deadline."""

    status_hint = 504
    #: What the client reads, at every stage (docs/tyk-differences.md).
    public_message = "Upstream service reached hard timeout."


class SessionStoreError(GatewayError):
    """The session store cannot be reached or answered nonsense. Keyed APIs answer 503."""

    status_hint = 503
    public_message = "Service Unavailable"


class BundleError(GatewayError):
    """A plugin bundle could not be fetched, verified, unpacked or read.

    The API naming it answers 503 while the others serve; the message is Tyk's reason.
    """

    status_hint = 503
    public_message = "Service Unavailable"

    def __init__(self, bundle: str, reason: str) -> None:
        super().__init__(f"bundle {bundle!r}: {reason}")
        self.bundle = bundle
        self.reason = reason

