"""Hypothesis strategies for plugin authors: requests, sessions, API definitions, hook contexts.

.. versionadded:: 0.1

Every request these strategies make is one a client may send and the gateway accepts (its parser
takes it), so a hook that fails on one has a bug, not a bad test. They lean towards what breaks
plugins: missing and repeated headers in any case, non-ASCII and binary bodies, odd paths.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from .._apidef.model import ApiDefinition, FailureMode, PluginRef, Stage
from .._exchange import BytesBody, Request, Response
from .._session.model import AccessDefinition, Session
from ..hooks import ApiInfo, HookContext, HookRef
from ._model import ClientRequest

__all__ = [
    "api_definitions",
    "bodies",
    "header_names",
    "header_values",
    "headers",
    "hook_contexts",
    "methods",
    "paths",
    "queries",
    "requests",
    "sessions",
]

#: Methods clients send most, and some WebDAV and rare ones the gateway takes in.
COMMON_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
RARE_METHODS = ("PROPFIND", "PURGE", "REPORT", "TRACE", "QUERY")

#: Fields the transport owns (framing, routing, hop-by-hop): a request strategy leaves them to
#: the harness, which frames the body itself.
TRANSPORT_FIELDS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "expect",
        "te",
        "trailer",
        "proxy-connection",
        "x-trio-gateway-testing-trace",
    }
)

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Path characters that need no escaping (RFC 3986 pchar minus pct-encoded).
_PCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
_QCHAR = _PCHAR.replace("&", "").replace("=", "") + "/?"


def methods() -> st.SearchStrategy[str]:
    """HTTP methods, mostly the common ones."""
    return st.one_of(st.sampled_from(COMMON_METHODS), st.sampled_from(RARE_METHODS))


def _pct(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


def _segments() -> st.SearchStrategy[str]:
    plain = st.text(alphabet=_PCHAR, max_size=12)
    escaped = st.binary(min_size=1, max_size=4).map(_pct)
    odd = st.sampled_from(["", ".", "..", "%2F", "%00", "%25", "%C3%A9", "a%20b", "~user"])
    return st.lists(st.one_of(plain, escaped, odd), min_size=1, max_size=3).map("".join)


def paths(prefix: str = "/") -> st.SearchStrategy[str]:
    """Request paths under ``prefix`` (a listen path): empty, dot and encoded segments, doubled
    and trailing slashes, non-ASCII in percent-encoding."""
    base = prefix if prefix.endswith("/") else prefix + "/"
    return st.lists(_segments(), max_size=4).map(lambda segs: base + "/".join(segs))


def queries() -> st.SearchStrategy[str]:
    """Query strings (without ``?``): none, repeated keys, keys without values, encoded bytes."""
    key = st.one_of(
        st.text(alphabet=_QCHAR, min_size=1, max_size=8),
        st.binary(min_size=1, max_size=3).map(_pct),
    )
    value = st.one_of(st.text(alphabet=_QCHAR, max_size=12), st.binary(max_size=4).map(_pct))
    pair = st.one_of(
        st.tuples(key, value).map("=".join),
        key,
        st.just(""),
    )
    return st.one_of(st.just(""), st.lists(pair, min_size=1, max_size=5).map("&".join))


def header_names(*, exclude: frozenset[str] = TRANSPORT_FIELDS) -> st.SearchStrategy[str]:
    """Field names in any case: the common ones plugins read, and made-up tokens."""
    common = st.sampled_from(
        [
            "Authorization",
            "Content-Type",
            "Accept",
            "Cookie",
            "User-Agent",
            "X-Api-Key",
            "X-Forwarded-For",
            "X-Request-ID",
            "traceparent",
            "Accept-Encoding",
        ]
    )
    made_up = st.text(alphabet=_TCHAR, min_size=1, max_size=16)

    def recase(name: str, how: int) -> str:
        return (name, name.lower(), name.upper(), name.swapcase())[how]

    names = st.builds(recase, st.one_of(common, made_up), st.integers(0, 3))
    return names.filter(lambda n: n.lower() not in exclude)


def header_values() -> st.SearchStrategy[str]:
    """Field values: empty, spaces inside, printable ASCII, and latin-1 bytes beyond ASCII
    (obs-text, which HTTP allows and which is not UTF-8)."""
    chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    visible = st.text(alphabet=chars, max_size=40).map(str.strip)
    return st.one_of(
        st.just(""), visible, st.sampled_from(["Bearer ", "Bearer x", "null", "0", "é"])
    )


def headers(*, max_size: int = 6) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """Header lists with repeated names (same or other case) and odd values."""
    pair = st.tuples(header_names(), header_values())

    def repeat(pairs: list[tuple[str, str]], dup: bool) -> tuple[tuple[str, str], ...]:
        if dup and pairs:
            name, value = pairs[0]
            pairs = [*pairs, (name.swapcase(), value + "2")]
        return tuple(pairs)

    return st.builds(repeat, st.lists(pair, max_size=max_size), st.booleans())


def bodies(*, max_size: int = 256 * 1024) -> st.SearchStrategy[bytes]:
    """Bodies: empty, JSON, UTF-8 and non-UTF-8 text, binary, and large ones."""
    doc: st.SearchStrategy[Any] = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )
    return st.one_of(
        st.just(b""),
        doc.map(lambda d: json.dumps(d).encode()),
        st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(min_size=1, max_size=64),
        st.sampled_from([b"\x00", b"a\r\nb", b"\xff\xfe\x00", b"{", b"\xc3\x28", b"null"]),
        st.integers(1, max(max_size, 1)).map(lambda n: b"x" * n),
    )


@st.composite
def requests(
    draw: st.DrawFn,
    listen_path: str = "/",
    *,
    methods: st.SearchStrategy[str] | None = None,
    headers: st.SearchStrategy[tuple[tuple[str, str], ...]] | None = None,
    bodies: st.SearchStrategy[bytes] | None = None,
) -> ClientRequest:
    """A :class:`~trio_gateway.testing.ClientRequest` to an API at ``listen_path``."""
    method = draw(methods if methods is not None else _methods())
    body = draw(bodies if bodies is not None else _bodies())
    return ClientRequest(
        method=method,
        path=draw(paths(listen_path)),
        query=draw(queries()),
        headers=draw(headers if headers is not None else _headers()),
        body=b"" if method in ("GET", "HEAD") and draw(st.booleans()) else body,
    )


_methods, _bodies, _headers = methods, bodies, headers


@st.composite
def sessions(
    draw: st.DrawFn,
    *,
    expired: bool | None = None,
    over_quota: bool | None = None,
    api_id: str | None = None,
    now: float | None = None,
) -> Session:
    """Sessions of Tyk's shape: limits, quotas, expiry, access rights, ``meta_data``.

    ``expired`` / ``over_quota``: True forces, False excludes, None draws either.
    """
    now = time.time() if now is None else now
    if expired is None:
        expired = draw(st.booleans())
    if over_quota is None:
        over_quota = draw(st.booleans())
    expires = (
        int(now) - draw(st.integers(1, max(1, min(10**6, int(now) - 1))))
        if expired
        else draw(st.sampled_from([0, int(now) + 3600]))
    )
    quota_max = draw(st.sampled_from([-1, 0, 10, 1000])) if not over_quota else 10
    meta = draw(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans()),
            max_size=4,
        )
    )
    rights: dict[str, AccessDefinition] = {}
    if api_id is not None and draw(st.booleans()):
        rights[api_id] = AccessDefinition(api_id=api_id, api_name=api_id, versions=["Default"])
    return Session(
        rate=draw(st.sampled_from([0, 5, 100, 1000])),
        per=draw(st.sampled_from([0, 1, 60])),
        expires=expires,
        quota_max=quota_max,
        quota_remaining=0 if over_quota else max(quota_max, 0),
        quota_renewal_rate=draw(st.sampled_from([0, 3600])),
        access_rights=rights,
        meta_data=meta,
        alias=draw(st.text(alphabet=_PCHAR, max_size=8)),
        tags=draw(st.lists(st.text(alphabet=_PCHAR, max_size=6), max_size=2)),
    )


_STAGE_KEYS = {
    Stage.PRE: "pre",
    Stage.POST_AUTH: "post_key_auth",
    Stage.POST: "post",
    Stage.RESPONSE: "response",
}


@st.composite
def api_definitions(
    draw: st.DrawFn,
    hooks: Mapping[Stage, Sequence[str]],
    *,
    path: str = "",
    driver: str = "python",
    config_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Tyk Classic definitions (dicts) using the named hook functions per stage, in ``path``.

    Each stage gets a random selection of its functions (order kept); an AUTH function makes the
    API use custom auth, else it is keyless. ``open_harness`` takes the result as it is.
    """
    middleware: dict[str, Any] = {"driver": driver}
    for stage, names in hooks.items():
        if stage is Stage.AUTH:
            continue
        chosen = [n for n in names if draw(st.booleans())] or list(names[:1])
        middleware[_STAGE_KEYS[stage]] = [{"name": n, "path": path} for n in chosen]
    auth = list(hooks.get(Stage.AUTH, ()))
    if auth:
        middleware["auth_check"] = {"name": draw(st.sampled_from(auth)), "path": path}
    api_id = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8))
    doc: dict[str, Any] = {
        "api_id": api_id,
        "name": api_id,
        "org_id": "org",
        "use_keyless": not auth,
        "custom_plugin_auth_enabled": bool(auth),
        "proxy": {
            "listen_path": f"/{api_id}/",
            "target_url": "http://upstream.test/",
            "strip_listen_path": draw(st.booleans()),
        },
        "custom_middleware": middleware,
    }
    if config_data is not None:
        doc["config_data"] = dict(config_data)
    return doc


@st.composite
def hook_contexts(
    draw: st.DrawFn,
    stage: Stage,
    *,
    api: ApiDefinition | None = None,
    requests: st.SearchStrategy[ClientRequest] | None = None,
    sessions: st.SearchStrategy[Session] | None = None,
    hook_name: str = "hook",
    timeout: float = 5.0,
) -> HookContext:
    """A :class:`~trio_gateway.hooks.HookContext` for ``stage``, as the pipeline would build it,
    to call a native hook directly: ``await my_hook(ctx)``.

    The context follows Tyk's table (no session before auth, a response only in RESPONSE) and
    its views refuse forbidden writes as in the gateway. The body is in memory.
    """
    if api is None:
        api = ApiDefinition(api_id="api", org_id="org", listen_path="/", target_url="http://u/")
    client = draw(requests if requests is not None else _requests(api.listen_path))
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in client.headers]
    request = Request(
        method=client.method,
        path=client.path,
        query=client.query,
        headers=[(b"Host", b"gateway.test"), *headers],
        client_addr="127.0.0.1",
        body_source=BytesBody(client.body) if client.body else None,
        content_length=len(client.body) if client.body else None,
    )
    session: Session | None = None
    if stage not in (Stage.PRE, Stage.AUTH):
        session = draw(sessions if sessions is not None else _sessions(expired=False))
    response: Response | None = None
    if stage is Stage.RESPONSE:
        body = json.dumps({"path": client.path}).encode()
        response = Response(
            status=draw(st.sampled_from([200, 201, 204, 400, 404, 500])),
            headers=[(b"Content-Type", b"application/json")],
            body_bytes=body,
        )
    hook = HookRef(
        stage=stage,
        plugin=PluginRef(name=hook_name),
        index=0,
        timeout=timeout,
        failure_mode=FailureMode.CLOSED,
    )
    return HookContext._create(
        stage=stage,
        api=ApiInfo.from_api(api),
        hook=hook,
        request=request,
        session=session,
        session_key="key" if session is not None else "",
        response=response,
    )


_requests, _sessions = requests, sessions
