"""Tyk's JavaScript request object, both ways, as pure functions over plain data.

Going in (``to_js_request``): the fields of Tyk's ``MiniRequestObject`` (``tyk-compat.md`` §6.2;
``gateway/mw_js_plugin.go``): ``Headers`` as arrays under Go-canonical names with ``Host``
included, the empty change sets, ``Body`` base64-encoded (as Go encodes a ``[]byte``; the TykJS
wrapper decodes it before the user's function runs), ``URL``, ``Params`` (query, arrays),
``ReturnOverrides`` zeroed, ``IgnoreBody``, ``Method``, ``RequestURI``, ``Scheme``.

Coming back (``parse_js_result`` then ``apply_js_request``), in Tyk's order: the body (unless
``IgnoreBody``), the URL (parsed as Go's ``url.ParseRequestURI`` would; a URL it rejects is an
error here, where Tyk would go on with a broken URL), ``DeleteHeaders``, ``SetHeaders``,
``DeleteParams``, ``AddParams`` (set), ``ExtendedParams`` (append), then the query re-encoded
with its keys sorted, as Go's ``url.Values.Encode`` does. ``Method`` is not applied, as in Tyk.
Field names match case-insensitively, as Go's JSON decoder matches struct fields (the last of
several spellings wins, as there). This module does no I/O and imports no Trio.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, quote_plus, urlsplit

import attrs

__all__ = [
    "GatewayRequest",
    "JsErrorReply",
    "JsForcedReply",
    "JsRequestChanges",
    "JsResult",
    "JsResultError",
    "ReturnOverrides",
    "apply_js_request",
    "canonical_header_name",
    "go_field",
    "go_string",
    "go_string_map",
    "override_reply",
    "parse_js_result",
    "to_js_request",
    "to_js_request_parts",
    "updated_meta_data",
]

Headers = tuple[tuple[str, str], ...]


class JsResultError(ValueError):
    """What a middleware returned cannot be applied (wrong type, unparseable URL, bad base64)."""


@attrs.frozen(kw_only=True)
class GatewayRequest:
    """The parts of a request the JS object is made from and changes apply to.

    ``url`` is the request's current path and query (after any earlier rewrite);
    ``request_uri`` the target as the client sent it.
    """

    method: str
    scheme: str
    host: str
    url: str
    request_uri: str
    headers: Headers
    body: bytes


@attrs.frozen(kw_only=True)
class ReturnOverrides:
    response_code: int = 0
    response_error: str = ""
    response_body: str = ""
    response_headers: tuple[tuple[str, str], ...] = ()
    override_error: bool = False


@attrs.frozen(kw_only=True)
class JsRequestChanges:
    """The request part of what a middleware returned, decoded and type-checked."""

    body: bytes | None  # None when IgnoreBody
    url: str
    delete_headers: tuple[str, ...]
    set_headers: tuple[tuple[str, str], ...]
    delete_params: tuple[str, ...]
    add_params: tuple[tuple[str, str], ...]
    extended_params: tuple[tuple[str, tuple[str, ...]], ...]
    return_overrides: ReturnOverrides


@attrs.frozen(kw_only=True)
class JsResult:
    """All of a middleware's answer: the request changes and the session parts."""

    request: JsRequestChanges
    session_meta: Mapping[str, Any] | None  # ReturnData's second argument
    session: Mapping[str, Any] | None  # ReturnAuthData's
    auth_value: str


@attrs.frozen(kw_only=True)
class JsErrorReply:
    """Tyk answers with its standard error body carrying ``message``."""

    code: int
    message: str
    headers: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class JsForcedReply:
    """Tyk answers with exactly this body."""

    code: int
    body: str
    headers: tuple[tuple[str, str], ...]


_EMPTY_OVERRIDES: Final[Mapping[str, Any]] = {
    "ResponseCode": 0,
    "ResponseError": "",
    "ResponseBody": "",
    "ResponseHeaders": None,
    "OverrideError": False,
}


@functools.lru_cache(maxsize=1024)
def canonical_header_name(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-api-key`` -> ``X-Api-Key``.

    Like Go, a name with a byte that is not a token character is returned unchanged. Cached
    (bounded): every header of every request to a JS hook goes through here, and a request
    carries the same few names again and again.
    """
    if not name or any(not (c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")) for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def to_js_request_parts(request: GatewayRequest) -> dict[str, Any]:
    """What :func:`to_js_request` holds that is not a constant: the TykJS wrapper builds the
    whole object from this, in Tyk's field order (``tyk_library.js``, ``requestObject``), so
    the constant fields are neither encoded here nor parsed there (docs/performance.md)."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(canonical_header_name(name), []).append(value)
    headers.setdefault("Host", [request.host])
    params: dict[str, list[str]] = {}
    if "?" in request.url:
        for key, value in parse_qsl(urlsplit(request.url).query, keep_blank_values=True):
            params.setdefault(key, []).append(value)
    return {
        "Headers": headers,
        "Body": base64.b64encode(request.body).decode("ascii"),
        "URL": request.url,
        "Params": params,
        "Method": request.method,
        "RequestURI": request.request_uri,
        "Scheme": request.scheme,
    }


def to_js_request(request: GatewayRequest) -> dict[str, Any]:
    """The request object a Tyk middleware receives (before the wrapper decodes ``Body``)."""
    parts = to_js_request_parts(request)
    return {
        "Headers": parts["Headers"],
        "SetHeaders": {},
        "DeleteHeaders": [],
        "Body": parts["Body"],
        "URL": parts["URL"],
        "Params": parts["Params"],
        "AddParams": {},
        "ExtendedParams": {},
        "DeleteParams": [],
        "ReturnOverrides": dict(_EMPTY_OVERRIDES),
        "IgnoreBody": False,
        "Method": parts["Method"],
        "RequestURI": parts["RequestURI"],
        "Scheme": parts["Scheme"],
    }


def go_field(obj: Mapping[str, Any], name: str) -> Any:
    """Field ``name`` of a decoded JSON object as Go's decoder fills a struct field: an exact
    or case-insensitive key, the last one winning; None when absent."""
    found: Any = None
    folded = name.lower()
    for key, value in obj.items():
        if key.lower() == folded:
            found = value
    return found


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON gives: skips the slow ABC check below
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JsResultError(f"{what} must be an object, not {type(value).__name__}")
    return value


def go_string(value: Any, what: str) -> str:
    """A JSON string field as Go decodes it into a ``string`` (absent: ""); else
    :class:`JsResultError` naming ``what``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise JsResultError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not value and (value is None or type(value) is list):
        return ()
    if not isinstance(value, list):
        raise JsResultError(f"{what} must be an array, not {type(value).__name__}")
    return tuple(go_string(item, f"{what} item") for item in value)


def go_string_map(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    """A JSON object of strings as Go decodes a ``map[string]string`` (absent: empty)."""
    if not value and (value is None or type(value) is dict):
        return ()
    return tuple((k, go_string(v, f"{what}.{k}")) for k, v in _object(value, what).items())


def _int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise JsResultError(f"{what} must be an integer, not {value!r}")
    return int(value)


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise JsResultError(f"{what} must be true or false, not {value!r}")
    return value


#: Each field name Tyk's JSON objects use, folded to lower case.
_LOWER: Final[Mapping[str, str]] = {
    name: name.lower()
    for name in (
        "Request",
        "SessionMeta",
        "Session",
        "AuthValue",
        "Headers",
        "SetHeaders",
        "DeleteHeaders",
        "Body",
        "URL",
        "Params",
        "AddParams",
        "ExtendedParams",
        "DeleteParams",
        "ReturnOverrides",
        "IgnoreBody",
        "Method",
        "RequestURI",
        "Scheme",
        "StatusCode",
        "ResponseCode",
        "ResponseError",
        "ResponseBody",
        "ResponseHeaders",
        "OverrideError",
    )
}


def _folded(value: Any, what: str) -> dict[str, Any]:
    """A JSON object with its keys folded to lower case, a later spelling of a key winning: one
    pass, then each field is one lookup (the same matching as :func:`go_field`)."""
    obj = _object(value, what)
    if obj.keys() <= _LOWER.keys():  # Tyk's own spellings (the usual case): no key to fold twice
        return {_LOWER[key]: item for key, item in obj.items()}
    return {key.lower(): item for key, item in obj.items()}


_NO_OVERRIDES: Final = ReturnOverrides()


def _untouched_overrides(value: Any) -> bool:
    """Whether ``value`` is ReturnOverrides as the script got it (the usual case)."""
    return (
        type(value) is dict
        and value == _EMPTY_OVERRIDES
        and type(value["ResponseCode"]) is int  # == would also take 0.0 and false
        and type(value["OverrideError"]) is bool
    )


def _overrides(value: Any) -> ReturnOverrides:
    if _untouched_overrides(value):  # nothing to decode
        return _NO_OVERRIDES
    obj = _folded(value, "ReturnOverrides")
    return ReturnOverrides(
        response_code=_int(obj.get("responsecode"), "ReturnOverrides.ResponseCode"),
        response_error=go_string(obj.get("responseerror"), "ReturnOverrides.ResponseError"),
        response_body=go_string(obj.get("responsebody"), "ReturnOverrides.ResponseBody"),
        response_headers=go_string_map(
            obj.get("responseheaders"), "ReturnOverrides.ResponseHeaders"
        ),
        override_error=_bool(obj.get("overrideerror"), "ReturnOverrides.OverrideError"),
    )


_TOP_FIELDS: Final = frozenset(("Request", "SessionMeta", "Session", "AuthValue"))
_REQUEST_FIELDS: Final = frozenset(
    (
        "Headers", "SetHeaders", "DeleteHeaders", "Body", "URL", "Params", "AddParams",
        "ExtendedParams", "DeleteParams", "ReturnOverrides", "IgnoreBody", "Method",
        "RequestURI", "Scheme", "StatusCode",
    )
)  # fmt: skip


def _plain_strings(value: Any) -> bool:
    return value is None or (type(value) is list and all(type(v) is str for v in value))


def _plain_string_map(value: Any) -> bool:
    return value is None or (type(value) is dict and all(type(v) is str for v in value.values()))


def _no_extended_params(value: Any) -> bool:
    return value is None or (type(value) is dict and not value)


def _parse_plain(result: Any) -> JsResult | None:
    """:func:`parse_js_result` for the usual answer, or None to take the general way: Tyk's own
    field names, every field of its JSON type, the overrides untouched, no extended params.
    Checks inline, a few dozen fewer calls per request (docs/performance.md)."""
    if type(result) is not dict or not result.keys() <= _TOP_FIELDS:
        return None
    request = result.get("Request")
    if type(request) is not dict or not request.keys() <= _REQUEST_FIELDS:
        return None
    ignore_body = request.get("IgnoreBody", False)
    encoded = request.get("Body")
    url = request.get("URL")
    delete_headers = request.get("DeleteHeaders")
    set_headers = request.get("SetHeaders")
    delete_params = request.get("DeleteParams")
    add_params = request.get("AddParams")
    overrides = request.get("ReturnOverrides")
    meta = result.get("SessionMeta")
    session = result.get("Session")
    auth_value = result.get("AuthValue")
    if not (
        type(ignore_body) is bool
        and (encoded is None or type(encoded) is str)
        and (url is None or type(url) is str)
        and _plain_strings(delete_headers)
        and _plain_string_map(set_headers)
        and _plain_strings(delete_params)
        and _plain_string_map(add_params)
        and _no_extended_params(request.get("ExtendedParams"))
        and (overrides is None or _untouched_overrides(overrides))
        and (meta is None or type(meta) is dict)
        and (session is None or type(session) is dict)
        and (auth_value is None or type(auth_value) is str)
    ):
        return None
    body: bytes | None = None
    if not ignore_body:
        if not encoded:
            body = b""
        else:
            try:
                body = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return None  # the general way reports it
    return JsResult(
        request=JsRequestChanges(
            body=body,
            url=url or "",
            delete_headers=tuple(delete_headers) if delete_headers else (),
            set_headers=tuple(set_headers.items()) if set_headers else (),
            delete_params=tuple(delete_params) if delete_params else (),
            add_params=tuple(add_params.items()) if add_params else (),
            extended_params=(),
            return_overrides=_NO_OVERRIDES,
        ),
        session_meta=meta,
        session=session,
        auth_value=auth_value or "",
    )


def parse_js_result(result: Mapping[str, Any]) -> JsResult:
    """Decode a middleware's returned object (after ``JSON.parse``) the way Go decodes it."""
    plain = _parse_plain(result)
    return plain if plain is not None else _parse_general(result)


def _parse_general(result: Mapping[str, Any]) -> JsResult:
    top = _folded(result, "the result")
    request = _folded(top.get("request"), "Request")
    ignore_body = _bool(request.get("ignorebody"), "Request.IgnoreBody")
    body: bytes | None = None
    if not ignore_body:
        encoded = go_string(request.get("body"), "Request.Body")
        try:
            body = base64.b64decode(encoded, validate=True) if encoded else b""
        except (binascii.Error, ValueError) as exc:
            raise JsResultError(f"Request.Body is not base64: {exc}") from None
    extended = _object(request.get("extendedparams"), "Request.ExtendedParams") or {}
    changes = JsRequestChanges(
        body=body,
        url=go_string(request.get("url"), "Request.URL"),
        delete_headers=_strings(request.get("deleteheaders"), "Request.DeleteHeaders"),
        set_headers=go_string_map(request.get("setheaders"), "Request.SetHeaders"),
        delete_params=_strings(request.get("deleteparams"), "Request.DeleteParams"),
        add_params=go_string_map(request.get("addparams"), "Request.AddParams"),
        extended_params=tuple(
            (k, _strings(v, f"Request.ExtendedParams.{k}")) for k, v in extended.items()
        ),
        return_overrides=_overrides(request.get("returnoverrides")),
    )
    meta = top.get("sessionmeta")
    session = top.get("session")
    return JsResult(
        request=changes,
        session_meta=None if meta is None else _object(meta, "SessionMeta"),
        session=None if session is None else _object(session, "Session"),
        auth_value=go_string(top.get("authvalue"), "AuthValue"),
    )


_URL_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _parse_request_uri(url: str) -> tuple[str, str]:
    """(path, query) of ``url`` where Go's ``url.ParseRequestURI`` accepts it."""
    if not url:
        raise JsResultError("Request.URL is empty")
    if _URL_CONTROL.search(url) is not None:
        raise JsResultError("Request.URL contains a control character")
    if url.startswith("/"):
        path, _, query = url.partition("?")
        return path, query
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise JsResultError(f"Request.URL is neither an absolute path nor an absolute URL: {url!r}")
    return parts.path or "/", parts.query


def _encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    # url.Values.Encode: keys sorted, each key's values in order, QueryEscape on both.
    ordered = sorted(pairs, key=lambda kv: kv[0])
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in ordered)


def apply_js_request(request: GatewayRequest, changes: JsRequestChanges) -> GatewayRequest:
    """The request after a middleware's changes, in Tyk's order (module docstring)."""
    body = request.body if changes.body is None else changes.body
    path, query = _parse_request_uri(changes.url)

    headers = list(request.headers)
    for name in changes.delete_headers:
        folded = name.lower()
        headers = [(n, v) for n, v in headers if n.lower() != folded]
    for name, value in changes.set_headers:
        folded = name.lower()
        headers = [(n, v) for n, v in headers if n.lower() != folded]
        headers.append((canonical_header_name(name), value))

    if query or changes.delete_params or changes.add_params or changes.extended_params:
        params = parse_qsl(query, keep_blank_values=True)
        for key in changes.delete_params:
            params = [(k, v) for k, v in params if k != key]
        for key, value in changes.add_params:
            params = [(k, v) for k, v in params if k != key]
            params.append((key, value))
        for key, values in changes.extended_params:
            params.extend((key, v) for v in values)
        encoded = _encode_query(params)
        url = f"{path}?{encoded}" if encoded else path
    else:  # nothing to re-encode (the usual case: a path without a query)
        url = path
    return GatewayRequest(
        method=request.method,
        scheme=request.scheme,
        host=request.host,
        url=url,
        request_uri=request.request_uri,
        headers=tuple(headers),
        body=body,
    )


def override_reply(overrides: ReturnOverrides) -> JsErrorReply | JsForcedReply | None:
    """The answer ``ReturnOverrides`` asks for, by Tyk's rules, or None to go on.

    ``ResponseError``, when set, replaces ``ResponseBody``; a code of 400 or more without
    ``OverrideError`` gives Tyk's standard error body; any other non-zero code sends the body as is.
    """
    body = overrides.response_error or overrides.response_body
    code = overrides.response_code
    if code == 0:
        return None
    if code >= 400 and not overrides.override_error:
        return JsErrorReply(code=code, message=body, headers=overrides.response_headers)
    return JsForcedReply(code=code, body=body, headers=overrides.response_headers)


def updated_meta_data(
    current: Mapping[str, Any], result: JsResult, *, pre: bool, use_session: bool
) -> dict[str, Any] | None:
    """The session's new ``meta_data``, or None to leave the session alone.

    Only hooks after authentication with ``require_session`` write back, and then the returned
    ``SessionMeta`` replaces ``meta_data`` wholesale: keys it lacks are deleted.
    """
    if pre or not use_session:
        return None
    new = dict(result.session_meta or {})
    return None if new == dict(current) else new
