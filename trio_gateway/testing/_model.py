"""What the harness hands back: requests, what the upstream saw, the hook trace, the result.

Plain frozen data, so that a failure report can print any of it and a child process can send it
back to its parent (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, final

import attrs

from .._apidef.model import Stage
from .._session.model import Session

__all__ = [
    "ClientRequest",
    "HookCall",
    "Result",
    "SeenRequest",
    "UpstreamReply",
]

#: Header pairs as the kit hands them out: names and values decoded as latin-1 (byte for byte).
HeaderPairs = tuple[tuple[str, str], ...]


def _pairs(headers: Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]]) -> HeaderPairs:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((_text(k), _text(v)) for k, v in items)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _first(headers: HeaderPairs, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _all(headers: HeaderPairs, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


@final
@attrs.frozen(kw_only=True)
class ClientRequest:
    """A request a client sends to the gateway.

    ``path`` is the request target's path (percent-encoded as it goes on the wire), ``query`` the
    query string without ``?``. Headers are pairs in order (repeats and case kept); a ``Host``
    header is added when there is none.
    """

    method: str = "GET"
    path: str = "/"
    query: str = ""
    headers: HeaderPairs = attrs.field(default=(), converter=_pairs)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return _first(self.headers, name)

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body.decode("latin-1"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientRequest:
        return cls(
            method=data["method"],
            path=data["path"],
            query=data["query"],
            headers=[tuple(pair) for pair in data["headers"]],
            body=data["body"].encode("latin-1"),
        )


@final
@attrs.frozen(kw_only=True)
class SeenRequest:
    """What the recording upstream received, parsed from the bytes the gateway sent."""

    method: str
    path: str
    query: str
    headers: HeaderPairs
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (any case), or None."""
        return _first(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        return _all(self.headers, name)

    def echo(self) -> dict[str, Any]:
        """The default upstream's JSON answer for this request."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body.decode("utf-8", "replace"),
        }


@final
@attrs.frozen(kw_only=True)
class UpstreamReply:
    """What the recording upstream answers (a scripted upstream returns one per request)."""

    status: int = 200
    headers: HeaderPairs = attrs.field(default=(), converter=_pairs)
    body: bytes = b""

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> UpstreamReply:
        return cls(
            status=status,
            headers=(("Content-Type", "application/json"),),
            body=json.dumps(doc).encode(),
        )


def echo_upstream(request: SeenRequest) -> UpstreamReply:
    """The default upstream: a JSON echo of method, path, query, headers and body."""
    return UpstreamReply.json(request.echo())


@final
@attrs.frozen(kw_only=True)
class HookCall:
    """One hook call of one request, as the kit's tracing wrapper around the driver saw it."""

    stage: Stage
    #: The hook's function name and its label (``pre[0] add_header``).
    name: str
    label: str
    #: ``continue``, ``respond``, ``error``, ``timeout`` or ``cancelled``.
    outcome: str
    #: Seconds on the Trio clock (a mock clock under autojump: the hook's simulated time).
    duration: float
    #: Wall-clock seconds of the longest stretch the hook ran without yielding to Trio (how long
    #: it held the event loop).
    longest_step: float = 0.0
    #: ``TypeName: message`` of the exception the call raised (outcome ``error``).
    error: str | None = None
    #: The status of a ``respond`` decision.
    status: int | None = None
    #: For RESPONSE hooks that continued: the response as the hook left it (status, headers,
    #: body), before the gateway repairs its framing for the wire.
    response_after: tuple[int, HeaderPairs, bytes] | None = None

    def describe(self) -> str:
        text = f"{self.label}: {self.outcome} in {self.duration * 1000:.1f} ms"
        if self.status is not None:
            text += f" (status {self.status})"
        if self.error:
            text += f" ({self.error})"
        return text

    def to_dict(self) -> dict[str, Any]:
        doc = attrs.asdict(self, recurse=False)
        doc["stage"] = self.stage.value
        if self.response_after is not None:
            status, headers, body = self.response_after
            doc["response_after"] = [status, [list(p) for p in headers], body.decode("latin-1")]
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HookCall:
        doc = dict(data)
        doc["stage"] = Stage(doc["stage"])
        after = doc.get("response_after")
        if after is not None:
            status, headers, body = after
            doc["response_after"] = (
                status,
                tuple(tuple(p) for p in headers),
                body.encode("latin-1"),
            )
        return cls(**doc)


def format_trace(trace: Sequence[HookCall]) -> str:
    if not trace:
        return "  (no hook ran)"
    return "\n".join("  " + call.describe() for call in trace)


@final
@attrs.frozen(kw_only=True)
class Result:
    """What one request through the harness produced."""

    #: What the client got.
    status: int
    headers: HeaderPairs
    body: bytes
    #: What the upstream received (None when it was not called: a hook or the gateway answered).
    upstream: SeenRequest | None
    #: The session the request was authenticated with, as stored after the request (None on
    #: keyless APIs, or when no hook created one).
    session: Session | None
    session_key: str
    #: The hooks that ran, in order.
    trace: tuple[HookCall, ...]

    def header(self, name: str) -> str | None:
        return _first(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        return _all(self.headers, name)

    def json(self) -> Any:
        return json.loads(self.body)

    def calls(self, stage: Stage | None = None) -> list[HookCall]:
        return [c for c in self.trace if stage is None or c.stage is stage]
