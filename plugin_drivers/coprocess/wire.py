"""The gateway's exchange <-> Tyk's coprocess ``Object`` (pure: no I/O, no clock).

What goes out follows Tyk's ``BuildObject`` and what comes back follows ``ObjectPostProcess``,
the ``return_overrides`` decision, the custom-auth flow and the response-hook merge
(docs/tyk-compat.md §1.4, §4.3–4.7). The same translation can serve any driver that speaks the
coprocess message (Tyk-style Python plugins use it too).

Deliberate differences from Tyk (listed in docs/grpc-driver.md): error bodies are valid JSON (Tyk
escapes ``'`` as ``\\'``), and a reply that lacks ``request``/``return_overrides`` is a hook error
(Tyk's handler dereferences nil and panics).
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from trio_gateway.drivers import (
    CONTINUE,
    ERROR_HEADERS,
    ApiInfo,
    Decision,
    Headers,
    Request,
    Respond,
    Response,
    Session,
    Stage,
    error_body,
)

from .proto import coprocess_common_pb2 as common_pb
from .proto import coprocess_object_pb2 as object_pb
from .session import session_from_proto, session_to_proto

__all__ = [
    "HOOK_TYPES",
    "AuthResult",
    "WireError",
    "apply_auth_reply",
    "apply_request_reply",
    "apply_response_reply",
    "build_object",
    "canonical_header_key",
    "error_body",
    "event_payload",
    "fill_response",
    "first_values",
    "go_json",
    "query_first_values",
    "session_from_proto",
    "session_to_proto",
    "utf8_or_none",
]

#: Per-endpoint plugins travel as ``Post``: Tyk's protocol has no type of its own for them.
HOOK_TYPES: Final[Mapping[Stage, int]] = {
    Stage.PRE: common_pb.Pre,
    Stage.AUTH: common_pb.CustomKeyCheck,
    Stage.POST_AUTH: common_pb.PostKeyAuth,
    Stage.ENDPOINT: common_pb.Post,
    Stage.POST: common_pb.Post,
    Stage.RESPONSE: common_pb.Response,
}

_EMPTY_MD5: Final = hashlib.md5(b"").hexdigest()
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_FRAMING: Final = (b"content-length", b"transfer-encoding")


class WireError(ValueError):
    """A reply the gateway cannot apply (Tyk answers these with 500 ``Middleware error``)."""


@attrs.frozen(kw_only=True)
class AuthResult:
    """What a custom-auth reply authenticated: the key (``meta_data["token"]``) and its session."""

    token: str
    session: Session


# ------------------------------------------------------------------------------------------------
# Outgoing


def canonical_header_key(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-custom-header`` -> ``X-Custom-Header``.

    Names with a character outside the token set come back unchanged, as in Go.
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


#: Header names as sent (bytes) -> canonical names: the same few names arrive on every request.
_canonical_names: dict[bytes, str] = {}
_CANONICAL_CACHE_SIZE: Final = 1024


def _canonical(key: bytes) -> str:
    name = _canonical_names.get(key)
    if name is None:
        if len(_canonical_names) >= _CANONICAL_CACHE_SIZE:
            _canonical_names.clear()  # many distinct names: start over rather than grow
        name = _canonical_names[key] = canonical_header_key(key.decode("latin-1"))
    return name


def first_values(headers: Headers) -> dict[str, str]:
    """Header name (canonical) -> its first value, as Tyk's ``Object`` carries headers."""
    out: dict[str, str] = {}
    for key, value in headers:
        name = _canonical(key)
        if name not in out:
            out[name] = value.decode("latin-1")
    return out


def query_first_values(query: str) -> dict[str, str]:
    """Query parameter -> its first value (``params``)."""
    out: dict[str, str] = {}
    if not query:
        return out
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        out.setdefault(key, value)
    return out


def utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def request_url(request: Request, response: Response | None) -> str:
    """``request.url`` as Tyk sends it: in a Response hook, the absolute upstream URL (Tyk's
    reverse proxy rewrites the request's URL in place before the response chain runs)."""
    if response is not None and response.upstream_url:
        return response.upstream_url
    return request.path + ("?" + request.query if request.query else "")


def go_json(value: Any) -> str:
    """JSON as Go's ``json.Marshal`` writes a decoded ``interface{}``: compact, map keys sorted,
    ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, numbers as float64 in Go's shortest form
    (``1.0`` -> ``1``, ``1e21`` -> ``1e+21``), text as UTF-8."""
    parts: list[str] = []
    _go_json(value, parts)
    return "".join(parts)


_GO_STRING_ESCAPES: Final = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    for raw, escaped in _GO_STRING_ESCAPES.items():
        out = out.replace(raw, escaped)
    return out


def _go_float(number: float) -> str:
    if not math.isfinite(number):
        raise ValueError(f"config_data holds {number!r}, which JSON cannot carry")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    shortest = repr(number)  # the shortest digits that round-trip, as Go's precision -1
    if 1e-6 <= abs(number) < 1e21:
        # Go's 'f' format: no exponent, no trailing ".0".
        text = format(decimal.Decimal(shortest), "f")
        return text[:-2] if text.endswith(".0") else text
    # Go's 'e' format, with encoding/json's cleanup of "e-07" to "e-7".
    mantissa, _, exponent = shortest.partition("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa.removesuffix('.0')}e{sign}{int(exponent.lstrip('+-'))}"


def _go_json(value: Any, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_go_string(value))
    elif isinstance(value, int):
        # Go decodes every JSON number into a float64: beyond 2**53 digits are lost as there.
        parts.append(str(value) if abs(value) <= 2**53 else _go_float(float(value)))
    elif isinstance(value, float):
        parts.append(_go_float(value))
    elif isinstance(value, Mapping):
        parts.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                parts.append(",")
            parts.append(_go_string(str(key)))
            parts.append(":")
            _go_json(value[key], parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _go_json(item, parts)
        parts.append("]")
    else:
        raise ValueError(f"config_data holds a {type(value).__name__}, which JSON cannot carry")


def build_object(
    *,
    stage: Stage,
    hook_name: str,
    api: ApiInfo,
    request: Request,
    body: bytes,
    raw_body_only: bool = False,
    session: Session | None = None,
    response: Response | None = None,
    response_body: bytes = b"",
    bundle: str = "",
) -> object_pb.Object:
    """The ``Object`` Tyk's gateway would send for this hook call (§4.3).

    ``body`` is the whole request body (the caller reads it); ``session`` is what the stage may
    see (None before auth and on keyless APIs); ``response`` only for the RESPONSE stage.
    """
    obj = object_pb.Object(hook_type=HOOK_TYPES[stage], hook_name=hook_name)  # type: ignore[arg-type]
    req = obj.request
    headers = first_values(request.headers)
    host = request.header(b"host") or request.header(b":authority")
    if host is not None:
        headers["Host"] = host.decode("latin-1")
    req.headers.update(headers)
    url = request.path + ("?" + request.query if request.query else "")
    req.url = request_url(request, response)
    req.request_uri = url
    req.params.update(query_first_values(request.query))
    req.method = request.method
    req.scheme = request.scheme or "http"
    req.raw_body = body
    if not raw_body_only:
        text = utf8_or_none(body)
        if text is not None:
            req.body = text
    req.return_overrides.response_code = -1

    obj.spec["OrgID"] = api.org_id
    obj.spec["APIID"] = api.api_id
    obj.spec["bundle_hash"] = hashlib.md5(bundle.encode()).hexdigest() if bundle else _EMPTY_MD5
    if api.config_data:
        obj.spec["config_data"] = go_json(api.config_data)

    if session is not None:
        obj.session.CopyFrom(session_to_proto(session))
        obj.metadata.update(obj.session.metadata)
    elif stage is Stage.RESPONSE:
        obj.session.SetInParent()  # keyless: Tyk sends an empty session, not none

    if response is not None:
        fill_response(obj.response, response, response_body, raw_body_only)
    return obj


def fill_response(resp: Any, response: Response, response_body: bytes, raw_body_only: bool) -> None:
    """The ``ResponseObject`` of a Response hook call (``resp``: the message to fill)."""
    resp.status_code = response.status
    resp.headers.update(first_values(response.headers))
    for name, values in _grouped(response.headers).items():
        resp.multivalue_headers.add(key=name, values=values)
    resp.raw_body = response_body
    if not raw_body_only:
        text = utf8_or_none(response_body)
        if text is not None:
            resp.body = text


def _grouped(headers: Headers) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in headers:
        out.setdefault(_canonical(key), []).append(value.decode("latin-1"))
    return out


# ------------------------------------------------------------------------------------------------
# Incoming: request stages


def _without(headers: Headers, names: Iterable[bytes]) -> Headers:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _enc(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _query_values(query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def _split_request_uri(url: str) -> tuple[str, str]:
    """Path and raw query of a returned ``url`` (Go's ``ParseRequestURI`` acceptance)."""
    if not url:
        raise WireError("plugin returned an empty request url")
    parts = urllib.parse.urlsplit(url)
    if url.startswith("/"):
        return parts.path or "/", parts.query
    if parts.scheme and parts.netloc:
        return parts.path or "/", parts.query
    raise WireError(f"plugin returned an invalid request url: {url!r}")


def apply_request_reply(reply: object_pb.Object, request: Request) -> Decision:
    """Apply a request-stage reply to ``request`` (§4.4), then decide (§4.5).

    Returns :data:`CONTINUE` or the :class:`Respond` that ends the request. Raises
    :class:`WireError` for a reply Tyk would fail with 500 ``Middleware error``.
    """
    if not reply.HasField("request"):
        raise WireError("plugin reply has no request")
    ret = reply.request

    # 1. Body: only raw_body is read back (a reply without it empties the body, as in Tyk).
    body = ret.raw_body
    had_framing = any(k.lower() in _FRAMING for k, _ in request.headers)
    request.set_body(body)
    headers = _without(request.headers, _FRAMING)
    if body or had_framing:
        headers.append((b"Content-Length", str(len(body)).encode()))

    # 2. Headers: delete, then set (replace).
    if ret.delete_headers:
        headers = _without(headers, (_enc(n) for n in ret.delete_headers))
    if ret.set_headers:
        headers = _without(headers, (_enc(n) for n in ret.set_headers))
        # Tyk sets them with Go's Header.Set: the name goes upstream in canonical form.
        headers.extend((_enc(canonical_header_key(k)), _enc(v)) for k, v in ret.set_headers.items())
    request.headers[:] = headers

    # The common reply leaves the url and params alone: then steps 3-6 change nothing (the url
    # is checked to be one that splitting gives back unchanged).
    url = ret.url
    current = request.path + ("?" + request.query if request.query else "")
    if url == current and not ret.delete_params and not ret.add_params and _plain_path(url):
        if ret.method:
            request.method = ret.method.upper()
        return _decide(ret)

    # 3. Query edits, from the current query.
    values = _query_values(request.query)
    for name in ret.delete_params:
        values.pop(name, None)
    for name, value in ret.add_params.items():
        values[name] = [value]

    # 4. URL, 5. method, 6. query edits made through the url are discarded unless they match.
    path, query = _split_request_uri(ret.url)
    if _query_values(query) != values:
        query = urllib.parse.urlencode(sorted(values.items()), doseq=True)
    request.path, request.query = path, query
    if ret.method:
        request.method = ret.method.upper()

    return _decide(ret)


def _plain_path(url: str) -> bool:
    """An origin-form target that ``urlsplit`` leaves as it is (no netloc, fragment, or
    characters it strips)."""
    return (
        url.startswith("/")
        and not url.startswith("//")
        and "#" not in url
        and url.isprintable()
        and not url.endswith(" ")
    )


def _decide(ret: Any) -> Decision:
    if not ret.HasField("return_overrides"):
        raise WireError("plugin reply has no return_overrides")
    over = ret.return_overrides
    body_text = over.response_error or over.response_body
    code = over.response_code
    headers = [(_enc(canonical_header_key(k)), _enc(v)) for k, v in over.headers.items()]
    if code >= 400 and not over.override_error:
        # Tyk's error handler writes this one: the plugin's headers, then the gateway's own
        # Content-Type (replacing the plugin's) and X-Generator.
        message = body_text or "Key not authorised"
        return Respond(status=code, headers=_error_headers(headers), body=error_body(message))
    if code > 0:
        body = body_text.encode()
        if body and not any(k.lower() == b"content-type" for k, _ in headers):
            headers.append((b"content-type", _sniff(body)))
        return Respond(status=code, headers=headers, body=body)
    return CONTINUE


def _error_headers(headers: Headers) -> Headers:
    own = {name.lower() for name, _ in ERROR_HEADERS}
    return [(k, v) for k, v in headers if k.lower() not in own] + list(ERROR_HEADERS)


def _sniff(body: bytes) -> bytes:
    """A small stand-in for Go's ``DetectContentType`` on the texts plugins send."""
    head = body.lstrip()[:14].lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return b"text/html; charset=utf-8"
    if utf8_or_none(body) is not None:
        return b"text/plain; charset=utf-8"
    return b"application/octet-stream"


def apply_auth_reply(
    reply: object_pb.Object, request: Request, org_id: str
) -> AuthResult | Respond:
    """A custom-auth (CustomKeyCheck) reply: request changes and overrides, then the session (§4.6).

    Returns the authenticated key and session, or the response that ends the request (an
    override, or 403 ``Forbidden`` when the reply carries no session or no token).
    """
    decision = apply_request_reply(reply, request)
    if isinstance(decision, Respond):
        return decision
    if not reply.HasField("session"):
        return _forbidden()
    session = session_from_proto(reply.session)
    session.meta_data.update(reply.metadata)
    token = session.meta_data.get("token", "")
    if not isinstance(token, str) or not token:
        return _forbidden()
    session.org_id = org_id
    return AuthResult(token=token, session=session)


def _forbidden() -> Respond:
    return Respond(status=403, headers=list(ERROR_HEADERS), body=error_body("Forbidden"))


# ------------------------------------------------------------------------------------------------
# Incoming: the response stage


def apply_response_reply(
    reply: object_pb.Object, response: Response, sent_headers: Mapping[str, str]
) -> None:
    """Apply a Response-hook reply to ``response`` (§4.7). ``return_overrides`` has no effect.

    ``sent_headers`` is the ``response.headers`` map that was sent, to tell whether the plugin
    changed it (then it is merged into ``multivalue_headers``, which keeps every ``Set-Cookie``).
    """
    if not reply.HasField("response"):
        raise WireError("response plugin reply has no response")
    ret = reply.response
    if not 100 <= ret.status_code <= 999:
        raise WireError(f"response plugin returned status_code {ret.status_code} (echo it back)")
    multi = [(h.key, list(h.values)) for h in ret.multivalue_headers]
    returned = dict(ret.headers)
    if returned != dict(sent_headers):
        merged: list[tuple[str, list[str]]] = []
        seen: set[str] = set()
        for key, values in multi:
            if key in returned:
                seen.add(key)
                merged.append((key, [returned[key], *values[1:]]))
        merged.extend((key, [value]) for key, value in returned.items() if key not in seen)
        multi = merged
    # Tyk sets them with Go's Header.Set/Add: names reach the client in canonical form.
    headers: Headers = [
        (_enc(canonical_header_key(key)), _enc(value))
        for key, values in multi
        if key.lower() not in ("content-length", "transfer-encoding")
        for value in values
    ]
    body = ret.raw_body
    headers.append((b"Content-Length", str(len(body)).encode()))
    response.headers[:] = headers
    response.status = ret.status_code
    response.reason = b""
    if body != response.body_bytes:
        response.transfer_coding = b""  # a new body: not coded as the upstream's was
    response.body_bytes = body
    response.body_source = None


# ------------------------------------------------------------------------------------------------
# Events (DispatchEvent)


def event_payload(
    name: str,
    meta: Mapping[str, Any],
    *,
    handler_name: str,
    api_id: str,
    org_id: str,
    timestamp: str,
) -> str:
    """The JSON Tyk puts in ``Event.payload`` for a ``cp_dynamic_handler`` (§4.8)."""
    document = {
        "message": {"Type": name, "Meta": dict(meta), "TimeStamp": timestamp},
        "handler_name": handler_name,
        "spec": {"APIID": api_id, "OrgID": org_id},
    }
    return json.dumps(document, default=str)
