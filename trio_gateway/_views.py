"""The views a hook sees the exchange through (public as ``trio_gateway.hooks.*``).

They enforce Tyk's table of what each stage may read and change (see :mod:`trio_gateway.hooks`):
a write the stage may not make raises :class:`ReadOnlyError` naming the stage, and values that
would not survive the trip to a wire are refused at once (``ValueError`` in the plugin's own
line). Built lazily by :class:`~trio_gateway.hooks.HookContext`.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Iterator, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, final

import attrs

from ._apidef.model import Stage
from ._exchange import Request, Response
from ._proto.writer import check_method, check_name, check_target, check_value
from ._session.model import Session

if TYPE_CHECKING:
    from .hooks import HookContext

__all__ = ["ReadOnlyError", "RequestView", "ResponseView", "SessionView", "refuse"]


class ReadOnlyError(PermissionError):
    """A hook tried to change a part of the exchange its stage may only read (or not see)."""



def refuse(what: str, stage: Stage) -> ReadOnlyError:
    return ReadOnlyError(f"{what} is read-only in the {stage.value} stage")


class _HeaderOps:
    """Header helpers over a ``list[tuple[bytes, bytes]]`` (names matched case-insensitively)."""

    __slots__ = ()
    _what: ClassVar[str]

    def _headers_list(self) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    def _check_writable(self) -> None:
        raise NotImplementedError

    @property
    def headers(self) -> list[tuple[str, str]]:
        """A copy of all headers, decoded as latin-1 (change them with the helpers)."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers_list()]

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        key = name.lower().encode("latin-1")
        for k, v in self._headers_list():
            if k.lower() == key:
                return v.decode("latin-1")
        return default

    def get_all_headers(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._headers_list() if k.lower() == key]

    def set_header(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``.

        Raises ``ValueError`` if ``name`` is not a token or ``value`` holds CR, LF, NUL or another
        control character (RFC 9110 §5): such a header would split the message it goes in.
        """
        self._check_writable()
        key, raw = _field(name, value)
        headers = self._headers_list()
        headers[:] = [(k, v) for k, v in headers if k.lower() != key]
        headers.append((key, raw))

    def add_header(self, name: str, value: str) -> None:
        """Add one more value of ``name``, keeping the others (``ValueError`` as for
        :meth:`set_header`)."""
        self._check_writable()
        self._headers_list().append(_field(name, value))

    def delete_header(self, name: str) -> None:
        """Remove every value of ``name`` (no error when absent)."""
        self._check_writable()
        key = name.lower().encode("latin-1")
        headers = self._headers_list()
        headers[:] = [(k, v) for k, v in headers if k.lower() != key]


def _field(name: str, value: str) -> tuple[bytes, bytes]:
    """A header as bytes (name lower-cased), refused with ``ValueError`` if it is not one."""
    key = name.lower().encode("latin-1")
    raw = value.encode("latin-1")
    check_name(key)
    check_value(raw)
    return key, raw


def _ascii(text: str, what: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"a request {what} must be ASCII: {text!r}") from None


@final
class RequestView(_HeaderOps):
    """The request as a hook sees it: changeable before the upstream, read-only in RESPONSE."""

    __slots__ = ("_request", "_stage", "_writable")
    _what = "the request"

    def __init__(self, request: Request, stage: Stage) -> None:
        self._request = request
        self._stage = stage
        self._writable = stage is not Stage.RESPONSE

    def _headers_list(self) -> list[tuple[bytes, bytes]]:
        return self._request.headers

    def _check_writable(self) -> None:
        if not self._writable:
            raise refuse("the request", self._stage)

    @property
    def method(self) -> str:
        return self._request.method

    @method.setter
    def method(self, value: str) -> None:
        self._check_writable()
        method = value.upper()
        check_method(_ascii(method, "method"))
        self._request.method = method

    @property
    def path(self) -> str:
        """The full normalised path, listen path included (as in Tyk), percent-encoded."""
        return self._request.path

    @path.setter
    def path(self, value: str) -> None:
        self._check_writable()
        if not value.startswith("/"):
            raise ValueError(f"a request path must start with '/': {value!r}")
        check_target(_ascii(value, "path"))
        self._request.path = value

    @property
    def query(self) -> str:
        """The raw query string, without ``?``."""
        return self._request.query

    @query.setter
    def query(self, value: str) -> None:
        self._check_writable()
        if value:
            check_target(_ascii(value, "query"))
        self._request.query = value

    @property
    def query_params(self) -> list[tuple[str, str]]:
        """The decoded query parameters, in order."""
        return urllib.parse.parse_qsl(self._request.query, keep_blank_values=True)

    def get_query_param(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.query_params:
            if key == name:
                return value
        return default

    def set_query_param(self, name: str, value: str) -> None:
        """Replace every ``name`` parameter with one ``name=value``; others stay byte for byte."""
        self._check_writable()
        kept = _query_without(self._request.query, name)
        kept.append(urllib.parse.quote_plus(name) + "=" + urllib.parse.quote_plus(value))
        self._request.query = "&".join(kept)

    def delete_query_param(self, name: str) -> None:
        self._check_writable()
        self._request.query = "&".join(_query_without(self._request.query, name))

    @property
    def body(self) -> bytes | None:
        """The whole body if in memory (read or replaced), else None: see :meth:`read_body`."""
        return self._request.body_bytes

    async def read_body(self, limit: int = 0) -> bytes:
        """Read the whole body (once; later calls return it again). Bounded by ``limit``, or by
        the gateway's ``hooks.max_body_bytes`` when 0: a longer body is answered 413 (before it
        is read, when its Content-Length says so)."""
        return await self._request.read_body(limit)

    def set_body(self, data: bytes | str) -> None:
        """Replace the body (Content-Length follows it)."""
        self._check_writable()
        raw = data.encode() if isinstance(data, str) else data
        self._request.set_body(raw)
        if self.get_header("content-length") is not None:
            self.set_header("content-length", str(len(raw)))

    @property
    def client_addr(self) -> str:
        return self._request.client_addr

    @property
    def scheme(self) -> str:
        return self._request.scheme

    @property
    def request_id(self) -> str:
        return self._request.request_id


def _query_without(query: str, name: str) -> list[str]:
    kept = []
    for part in query.split("&") if query else ():
        key = part.split("=", 1)[0]
        if urllib.parse.unquote_plus(key) != name:
            kept.append(part)
    return kept


@final
class ResponseView(_HeaderOps):
    """The upstream's response, changeable by RESPONSE hooks (the only stage that sees it)."""

    __slots__ = ("_response",)
    _what = "the response"

    def __init__(self, response: Response) -> None:
        self._response = response

    def _headers_list(self) -> list[tuple[bytes, bytes]]:
        return self._response.headers

    def _check_writable(self) -> None:
        return None

    @property
    def status(self) -> int:
        return self._response.status

    @status.setter
    def status(self, value: int) -> None:
        # A final status: interim (1xx) answers are the gateway's to send.
        if not 200 <= value <= 599:
            raise ValueError(f"not an HTTP status for a final response: {value!r}")
        self._response.status = value
        self._response.reason = b""

    @property
    def body(self) -> bytes | None:
        """The whole upstream body (the server buffers it for RESPONSE hooks)."""
        return self._response.body_bytes

    def set_body(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._response.body_bytes = raw
        self._response.body_source = None
        self._response.transfer_coding = b""  # the new body is as given, not gzip-coded & co.
        self.delete_header("transfer-encoding")
        self.set_header("content-length", str(len(raw)))


@final
class _MetaDataView(MutableMapping[str, Any]):
    """``session.meta_data``: writable in POST_AUTH/POST/ENDPOINT (and AUTH), else read-only."""

    __slots__ = ("_ctx", "_data", "_writable")

    def __init__(self, data: dict[str, Any], ctx: HookContext, writable: bool) -> None:
        self._data = data
        self._ctx = ctx
        self._writable = writable

    def _check(self) -> None:
        if not self._writable:
            raise refuse("session.meta_data", self._ctx.stage)
        self._ctx._meta_data_changed = True

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._check()
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        self._check()
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"meta_data({self._data!r})"


def _frozen_copy(value: Any) -> Any:
    """A read-only rendering of a session field (so in-place edits cannot slip through)."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen_copy(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen_copy(v) for v in value)
    if attrs.has(type(value)):
        return copy.deepcopy(value)  # a detached copy: edits to it change nothing, by design
    return value


@final
class SessionView:
    """The session, read-only except ``meta_data`` in POST_AUTH, ENDPOINT and POST.

    Any :class:`Session` field reads as an attribute (``ctx.session.rate``); containers come back
    as read-only copies. ``key`` is the session's key.
    """

    __slots__ = ("_ctx", "_meta", "_session")

    def __init__(self, session: Session, ctx: HookContext) -> None:
        self._session = session
        self._ctx = ctx
        writable = ctx.stage in _META_WRITABLE
        self._meta = _MetaDataView(session.meta_data, ctx, writable)

    @property
    def key(self) -> str:
        return self._ctx._session_key

    @property
    def meta_data(self) -> MutableMapping[str, Any]:
        return self._meta

    def __getattr__(self, name: str) -> Any:
        session = object.__getattribute__(self, "_session")
        if name.startswith("_") or not hasattr(session, name):
            raise AttributeError(f"a session has no field {name!r}")
        return _frozen_copy(getattr(session, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in SessionView.__slots__:
            object.__setattr__(self, name, value)
            return
        raise refuse(f"session.{name}", self._ctx.stage)


_META_WRITABLE: Final = frozenset({Stage.AUTH, Stage.POST_AUTH, Stage.ENDPOINT, Stage.POST})
