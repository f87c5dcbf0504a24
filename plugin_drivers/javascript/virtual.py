"""Tyk's JavaScript virtual endpoints: a function on the API's VM answers the request itself.

What Tyk does (``gateway/mw_virtual_endpoint.go``, ``tyk-compat.md`` §6.4), and we with it:

* The function is called as ``<response_function_name>(request, session, config)``. The request
  object is smaller than a middleware's: ``Headers`` (Go's ``r.Header``: canonical names, arrays
  of values, no ``Host``), ``Body`` (the body as a string, not base64), ``URL`` (path and query
  as received, listen path included), ``Params`` (Go's ``r.Form``: for POST, PUT and PATCH with
  an ``application/x-www-form-urlencoded`` body the body's fields first, then the query's) and
  ``Scheme``. ``session`` is the key's session with ``use_session`` (``{}`` otherwise), ``config``
  ``{OrgID, APIID, config_data}``.
* It returns ``TykJsResponse({Body, Headers: {name: value}, Code}, metaData)``: JSON text of
  ``{Response, SessionMeta}``, decoded as Go decodes it (fields matched without case; a field of
  the wrong type fails the decode). The answer is ``Code`` with ``Headers`` (names made
  canonical) and ``Body``; without a ``Content-Type`` header the client gets the type Go's server
  would sniff from the body (``sniff.py``).
* ``use_session``: the returned ``SessionMeta`` replaces the session's ``meta_data`` wholesale
  when it differs (a missing one empties it, as in Tyk).
* Any failure of the function (an exception, a memory-cap stop, a reply that does not decode or
  that we will not send) answers 500 ``Error during virtual endpoint execution. Contact
  Administrator for more details.``, logged with API, hook, function and file; with
  ``proxy_on_error`` the request goes on to the upstream instead. A stop at the time limit is the
  hook's timeout (504 by default), as for every hook (docs/tyk-differences.md).

The pure parts (request object, reply decoding, Go's query parsing) are separate functions so
they can be tested without an engine; :func:`call_virtual` is what the driver calls.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from email.utils import formatdate
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import unquote_to_bytes

import attrs

from trio_gateway.drivers import (
    CONTINUE,
    ERROR_HEADERS,
    Decision,
    HookContext,
    HookRef,
    HookTimeout,
    Respond,
    VirtualSource,
    error_body,
    session_to_json,
)

from .engine import JsError, JsTimeoutError
from .request_object import (
    JsResultError,
    canonical_header_name,
    go_field,
    go_string,
    go_string_map,
)
from .scripts import ApiScripts, JsSource, virtual_result
from .sniff import detect_content_type, needs_sniffed_type

__all__ = [
    "VIRTUAL_ERROR_MESSAGE",
    "VirtualReply",
    "VirtualReplyError",
    "call_virtual",
    "form_params",
    "go_parse_query",
    "parse_virtual_reply",
    "refused_blobs",
    "virtual_blobs",
    "virtual_function_problem",
    "virtual_request_object",
]

T = TypeVar("T")

log = logging.getLogger("trio_gateway.plugins.jsvm")

#: Tyk's answer when a virtual endpoint fails (500, in the standard error body).
VIRTUAL_ERROR_MESSAGE: Final = (
    "Error during virtual endpoint execution. Contact Administrator for more details."
)

_FORM_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_FORM_TYPE: Final = "application/x-www-form-urlencoded"
#: Go's ``ParseForm`` reads at most this much of a form body (``maxFormSize``), else no fields.
_MAX_FORM_SIZE: Final = 10 << 20
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Controls a header value may not hold once CR and LF became spaces (HTAB is allowed).
_VALUE_CONTROLS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


class VirtualReplyError(JsResultError):
    """What the function returned cannot be sent (the decoding helpers of ``request_object``
    raise their :class:`JsResultError` for a field of the wrong type)."""


class VmRunner(Protocol):
    """What :func:`call_virtual` needs from the driver (``JsDriver``)."""

    def call_timeout(self, hook: HookRef) -> float: ...

    async def call_function(
        self,
        hook: HookRef,
        function: str,
        *args: Any,
        js_timeout: float,
        finish: Callable[[Any], T],
    ) -> T: ...


# ------------------------------------------------------------------------------------------------
# Loading (the driver loads FILE sources with the API's other files)


def virtual_blobs(hooks: Sequence[HookRef]) -> list[JsSource]:
    """The scripts of the virtual endpoints given inline (base64 ``blob``), decoded at parse."""
    return [
        JsSource(name=f"<virtual endpoint {hook.label}: blob>", text=virtual.code)
        for hook in hooks
        if (virtual := hook.plugin.virtual) is not None and virtual.source is VirtualSource.BLOB
    ]


def refused_blobs(hooks: Sequence[HookRef]) -> str | None:
    """Why the API cannot load under ``disable_virtual_path_blobs`` (None: it has no blobs).

    Tyk logs "Blobs not allowed on this node" and the endpoint then fails on every call; we
    refuse the API at load, naming the endpoints.
    """
    blobs = [
        f"{hook.endpoint_method} {hook.endpoint_path}"
        for hook in hooks
        if (virtual := hook.plugin.virtual) is not None and virtual.source is VirtualSource.BLOB
    ]
    if not blobs:
        return None
    return (
        f"virtual endpoints with a blob source ({', '.join(blobs)}) are not allowed on this "
        "gateway (disable_virtual_path_blobs is set)"
    )


def virtual_function_problem(scripts: ApiScripts, hook: HookRef) -> str | None:
    """Why ``hook``'s virtual endpoint function cannot be called (None: it can).

    Tyk finds a missing function only when a request comes (and answers 500); we say so when the
    API loads, as the driver does for a missing middleware object.
    """
    virtual = hook.plugin.virtual
    assert virtual is not None
    try:
        defined = scripts.defines(virtual.function_name)
    except ValueError:
        return f"{virtual.function_name!r} is not a JavaScript name"
    if not defined:
        return (
            f"the virtual endpoint function {virtual.function_name!r} is not defined by the "
            "API's scripts"
        )
    return None


# ------------------------------------------------------------------------------------------------
# The request object


def go_parse_query(query: str) -> list[tuple[str, str]]:
    """``key=value`` pairs as Go's ``url.ParseQuery`` reads them, in order.

    Pairs are split on ``&``; a pair holding ``;`` or a bad ``%`` escape is skipped (Go reports
    it and goes on); ``+`` is a space; escapes decode to bytes, read as UTF-8 (a byte that is not
    becomes U+FFFD, as Go's JSON encoding of the string does).
    """
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part or ";" in part:
            continue
        key, _, value = part.partition("=")
        if _BAD_ESCAPE.search(key) or _BAD_ESCAPE.search(value):
            continue
        pairs.append((_unescape(key), _unescape(value)))
    return pairs


def _unescape(text: str) -> str:
    # ``text`` holds raw bytes as latin-1 (the gateway's query string; a body read that way).
    raw = unquote_to_bytes(text.replace("+", " ").encode("latin-1"))
    return raw.decode("utf-8", "replace")


def form_params(method: str, content_type: str, query: str, body: bytes) -> dict[str, list[str]]:
    """Go's ``r.Form`` after ``ParseForm``: a urlencoded body's fields (POST, PUT, PATCH), then
    the query's, values appended per key."""
    params: dict[str, list[str]] = {}
    media_type = content_type.partition(";")[0].strip().lower()
    if method in _FORM_METHODS and media_type == _FORM_TYPE and len(body) <= _MAX_FORM_SIZE:
        for key, value in go_parse_query(body.decode("latin-1")):
            params.setdefault(key, []).append(value)
    for key, value in go_parse_query(query):
        params.setdefault(key, []).append(value)
    return params


def virtual_request_object(
    *, method: str, scheme: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """The ``request`` a virtual endpoint function receives (Tyk's ``RequestObject``).

    ``url`` is the path and query as the gateway holds them (raw bytes as latin-1 text);
    ``headers`` are decoded text.
    """
    header_map: dict[str, list[str]] = {}
    content_type = ""
    for name, value in headers:
        canonical = canonical_header_name(name)
        if canonical == "Host":
            continue  # Go keeps it in r.Host, not in r.Header
        if canonical == "Content-Type" and "Content-Type" not in header_map:
            content_type = value
        header_map.setdefault(canonical, []).append(value)
    query = url.partition("?")[2]
    return {
        "Headers": header_map,
        # Go's string(body), JSON-encoded: bytes that are not UTF-8 become U+FFFD.
        "Body": body.decode("utf-8", "replace"),
        "URL": url.encode("latin-1").decode("utf-8", "replace"),
        "Params": form_params(method, content_type, query, body),
        "Scheme": scheme,
    }


# ------------------------------------------------------------------------------------------------
# The reply


@attrs.frozen(kw_only=True)
class VirtualReply:
    """The answer a virtual endpoint gave, checked and ready for the wire."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    session_meta: dict[str, Any]


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VirtualReplyError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _status(value: Any) -> int:
    if value is None:
        value = 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise VirtualReplyError(f"Response.Code must be an integer, not {value!r}")
    status = int(value)
    # Go's ResponseWriter refuses codes outside 100-999 (a panic in Tyk); a 1xx is not a final
    # answer. Code 0 (no Code at all) is the usual mistake.
    if not 200 <= status <= 999:
        raise VirtualReplyError(f"Response.Code {status} is not a status a response can have")
    return status


def _header(name: str, value: str) -> tuple[bytes, bytes]:
    if not _TOKEN.fullmatch(name):
        raise VirtualReplyError(f"Response.Headers: {name!r} is not a valid header name")
    # Go's HTTP/1 writer turns CR and LF in a value into spaces and trims the value.
    value = value.replace("\r", " ").replace("\n", " ").strip(" \t")
    if _VALUE_CONTROLS.search(value):
        raise VirtualReplyError(f"Response.Headers: the value of {name} holds a control character")
    return canonical_header_name(name).encode("ascii"), value.encode("utf-8")


def parse_virtual_reply(out: Mapping[str, Any]) -> VirtualReply:
    """Decode ``{Response: {Body, Headers, Code}, SessionMeta}`` as Go decodes it, check what
    would reach the wire, and add the sniffed ``Content-Type`` Go's server would add."""
    response = _object(go_field(out, "Response"), "Response")
    body = go_string(go_field(response, "Body"), "Response.Body").encode("utf-8")
    headers_in = go_string_map(go_field(response, "Headers"), "Response.Headers")
    status = _status(go_field(response, "Code"))
    # Go's Header.Set: a later spelling of the same canonical name replaces an earlier one.
    by_name: dict[bytes, tuple[bytes, bytes]] = {}
    for name, value in headers_in:
        header = _header(name, value)
        by_name[header[0]] = header
    headers = list(by_name.values())
    location = by_name.get(b"Location", (b"", b""))[1]
    if status in (301, 302) and location.startswith(b"tyk://"):
        # Tyk would route the request again inside the gateway (a "looping" redirect).
        raise VirtualReplyError("internal loops (Location: tyk://...) are not supported")
    if needs_sniffed_type(status, [(k.decode(), v.decode()) for k, v in headers], body):
        headers.append((b"Content-Type", detect_content_type(body).encode("ascii")))
    meta = _object(go_field(out, "SessionMeta"), "SessionMeta")
    return VirtualReply(status=status, headers=tuple(headers), body=body, session_meta=dict(meta))


def virtual_error() -> Respond:
    """Tyk's answer for a failed virtual endpoint."""
    return Respond(status=500, headers=list(ERROR_HEADERS), body=error_body(VIRTUAL_ERROR_MESSAGE))


# ------------------------------------------------------------------------------------------------
# The call


async def call_virtual(runner: VmRunner, api_id: str, hook: HookRef, ctx: HookContext) -> Decision:
    """Run the virtual endpoint ``hook`` for ``ctx``'s request: its answer, Tyk's error answer,
    or CONTINUE (to the upstream) when it failed with ``proxy_on_error``."""
    virtual = hook.plugin.virtual
    assert virtual is not None
    request = ctx.raw_request
    body = await request.read_body()
    url = request.path + ("?" + request.query if request.query else "")
    js_request = virtual_request_object(
        method=request.method,
        scheme=request.scheme,
        url=url,
        headers=[(k.decode("latin-1"), v.decode("utf-8", "replace")) for k, v in request.headers],
        body=body,
    )
    session = ctx.raw_session
    session_json = session_to_json(session) if virtual.use_session and session is not None else {}
    config: dict[str, Any] = {"OrgID": ctx.api.org_id, "APIID": ctx.api.api_id}
    if ctx.api.config_data is not None:
        config["config_data"] = dict(ctx.api.config_data)
    function = virtual.function_name
    where = (
        f"API {api_id!r}: virtual endpoint {hook.label} "
        f"({hook.endpoint_method} {hook.endpoint_path}, {virtual.path or 'blob'})"
    )
    try:
        # The reply is decoded (and its type sniffed) on the VM's thread, off the event loop.
        reply = await runner.call_function(
            hook,
            function,
            js_request,
            session_json,
            config,
            js_timeout=runner.call_timeout(hook),
            finish=lambda out: parse_virtual_reply(virtual_result(function, out)),
        )
    except JsTimeoutError as exc:
        raise HookTimeout(f"{where}: {exc}") from exc
    except (JsError, JsResultError) as exc:
        outcome = "proxying to the upstream" if virtual.proxy_on_error else "answering 500"
        log.error("%s: %s (%s)", where, exc, outcome)
        return CONTINUE if virtual.proxy_on_error else virtual_error()
    if virtual.use_session and session is not None and reply.session_meta != session.meta_data:
        session.meta_data = reply.session_meta
        ctx.mark_meta_data_changed()
    # As Tyk's forceResponse: Server and Date over whatever the script gave, and the answer goes
    # out as the upstream's would (RESPONSE hooks, X-RateLimit-* headers).
    headers = [h for h in reply.headers if h[0] not in _TYK_SETS]
    headers += ((b"Server", b"tyk"), (b"Date", formatdate(usegmt=True).encode("ascii")))
    return Respond(status=reply.status, headers=headers, body=reply.body, as_upstream=True)


#: The reply headers Tyk sets itself on a virtual endpoint's answer (canonical names).
_TYK_SETS: Final = frozenset((b"Server", b"Date"))
