"""The battery's checks: for each kind of plugin bug, the requests that look for it and the
judge of what came back. :mod:`trio_gateway.testing.battery` runs them (and is the public face).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import trio
from hypothesis import strategies as st

from .._apidef.model import ApiDefinition
from .._config.model import GatewayConfig
from ._model import ClientRequest, HookCall, Result, SeenRequest, UpstreamReply
from ._runner import PluginTarget, Violation, live_threads, token_sessions, uses_token_auth
from ._trace import RequestTrace
from .harness import Harness
from .strategies import TRANSPORT_FIELDS, header_names, header_values, paths, queries
from .strategies import bodies as body_strategy
from .strategies import methods as method_strategy

__all__ = ["CHECKS", "Check"]


# --------------------------------------------------------------------------------------------
# Inputs


#: Headers the gateway makes per request: they differ between identical requests.
PER_REQUEST_FIELDS: Final = frozenset({"x-request-id", "traceparent", "tracestate", "date"})


def _auth_location(api: ApiDefinition) -> tuple[str, str]:
    """Where custom auth reads its credential: ("header"|"param", name)."""
    loc = api.custom_auth if api.custom_plugin_auth else api.auth
    if loc.use_param and loc.param_name:
        return "param", loc.param_name
    return "header", loc.header_name or "Authorization"


def _with_credential(
    request: ClientRequest, api: ApiDefinition, value: str | None
) -> ClientRequest:
    kind, name = _auth_location(api)
    if kind == "param":
        query = [p for p in request.query.split("&") if p and not p.startswith(name + "=")]
        if value is not None:
            query.append(f"{name}={value}")
        return attrs.evolve(request, query="&".join(query))
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return attrs.evolve(request, headers=headers)


def _requests(api: ApiDefinition, credentials: Sequence[str]) -> st.SearchStrategy[ClientRequest]:
    names = header_names(exclude=TRANSPORT_FIELDS | {_auth_location(api)[1].lower()})
    base = st.builds(
        ClientRequest,
        method=method_strategy(),
        path=paths(api.listen_path),
        query=queries(),
        headers=st.lists(st.tuples(names, header_values()), max_size=6).map(tuple),
        body=body_strategy(max_size=64 * 1024),
    )
    if uses_token_auth(api):
        credentials = [*credentials, *token_sessions(api, 0.0)]
    if not credentials:
        return base
    return st.builds(
        lambda r, c: _with_credential(r, api, c),
        base,
        st.one_of(st.sampled_from(list(credentials)), st.none()),
    )


def _battery_echo(seen: SeenRequest) -> UpstreamReply:
    """The echo, without what the gateway makes anew per request (so that identical requests
    get identical answers)."""
    doc = seen.echo()
    doc["headers"] = [p for p in doc["headers"] if p[0].lower() not in PER_REQUEST_FIELDS]
    return UpstreamReply.json(doc)


def _gzip_echo(seen: SeenRequest) -> UpstreamReply:
    plain = _battery_echo(seen)
    return UpstreamReply(
        status=200,
        headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
        body=gzip.compress(plain.body, mtime=0),
    )


UPSTREAMS: Final[dict[str, Callable[[SeenRequest], UpstreamReply]]] = {
    "json echo": _battery_echo,
    "gzip-coded echo": _gzip_echo,
    "204 no content": lambda seen: UpstreamReply(status=204),
    "non-UTF-8 text": lambda seen: UpstreamReply(
        status=200, headers=(("Content-Type", "text/plain"),), body=b"\xff\xfe caf\xe9"
    ),
    "500 with JSON": lambda seen: UpstreamReply.json({"error": "upstream"}, status=500),
}


def _use_upstream(harness: Harness, name: str) -> None:
    harness.set_upstream(UPSTREAMS[name])


def _view(result: Result) -> tuple[Any, ...]:
    """What a client and the upstream can tell about a request, minus per-request IDs."""
    up = result.upstream
    upstream = None
    if up is not None:
        headers = tuple(p for p in up.headers if p[0].lower() not in PER_REQUEST_FIELDS)
        upstream = (up.method, up.path, up.query, headers, up.body)
    headers = tuple(p for p in result.headers if p[0].lower() not in PER_REQUEST_FIELDS)
    outcomes = tuple((c.label, c.outcome, c.status) for c in result.trace)
    return (result.status, headers, result.body, upstream, outcomes)


def _text_of(result: Result) -> str:
    parts = [result.body.decode("latin-1")]
    parts += [f"{k}: {v}" for k, v in result.headers]
    if result.upstream is not None:
        up = result.upstream
        parts += [up.path, up.query, up.body.decode("latin-1")]
        parts += [f"{k}: {v}" for k, v in up.headers]
    return "\n".join(parts)


def _marked(request: ClientRequest, marker: str, api: ApiDefinition) -> ClientRequest:
    """``request`` with every value a plugin might keep replaced by ``marker`` (the
    credential, if any, kept so that the request gets as far)."""
    auth_kind, auth_name = _auth_location(api)
    keep = auth_name.lower() if auth_kind == "header" else ""
    headers = [(k, v if k.lower() == keep else marker) for k, v in request.headers]
    present = {k.lower() for k, _ in headers}
    for name in ("X-User", "X-Api-Key", "Cookie", "Accept", "Content-Type", "User-Agent"):
        if name.lower() not in present and name.lower() != keep:
            headers.append((name, marker))
    query = "&".join(p for p in (request.query, f"m={marker}") if p)
    body = marker.encode() if request.body else b""
    return attrs.evolve(request, headers=headers, query=query, body=body)


# --------------------------------------------------------------------------------------------
# The checks


@attrs.frozen
class Check:
    """One kind of bug the battery looks for."""

    name: str
    kind: int
    summary: str
    #: None when the check applies to the API, else why not.
    not_applicable: Callable[[ApiDefinition], str | None]
    #: Builds (strategy, example) for the API.
    build: Callable[[ApiDefinition, PluginTarget], tuple[st.SearchStrategy[Any], Any]]


def _always(api: ApiDefinition) -> str | None:
    return None


def _fail(message: str, requests: Sequence[ClientRequest], result: Result) -> Violation:
    return Violation(message, requests, result.trace)


def _calls_with(result: Result, outcome: str) -> list[HookCall]:
    return [c for c in result.trace if c.outcome == outcome]


def _plain_example(
    api: ApiDefinition,
    target: PluginTarget,
    judge: Callable[[ClientRequest, Result], str | None],
) -> tuple[st.SearchStrategy[Any], Any]:
    strategy = st.tuples(_requests(api, target.credentials), st.sampled_from(sorted(UPSTREAMS)))

    async def example(harness: Harness, value: tuple[ClientRequest, str]) -> None:
        request, upstream = value
        _use_upstream(harness, upstream)
        result = await harness.send(request)
        problem = judge(request, result)
        if problem is not None:
            raise _fail(f"{problem} (upstream: {upstream})", [request], result)

    return strategy, example


def _no_errors(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    def judge(request: ClientRequest, result: Result) -> str | None:
        for call in _calls_with(result, "error"):
            return f"hook {call.label} failed: {call.error}"
        return None

    return _plain_example(api, target, judge)


def _deadlines(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    def judge(request: ClientRequest, result: Result) -> str | None:
        for call in _calls_with(result, "timeout"):
            return f"hook {call.label} overran its deadline (ran {call.duration:.3f} s)"
        return None

    return _plain_example(api, target, judge)


def _event_loop(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    threshold = GatewayConfig().hooks.blocking_threshold

    def judge(request: ClientRequest, result: Result) -> str | None:
        for call in result.trace:
            if call.longest_step > threshold:
                return (
                    f"hook {call.label} blocked the event loop for {call.longest_step:.3f} s "
                    f"without yielding (threshold {threshold} s): every other request waited"
                )
        return None

    return _plain_example(api, target, judge)


#: How each driver words "the plugin handed back the wrong shape": native Python "hook ...
#: returned dict", Tyk-style Python "must return (request, session), not ...", gRPC "sent an
#: unusable reply", JavaScript "Request.SetHeaders must be an object, not list" (a field of the
#: wrong type) or "returned no request object".
_WRONG_SHAPE: Final = re.compile(r"returned|unusable|must return|must be (an? |true or false)")


def _stage_writes(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    def judge(request: ClientRequest, result: Result) -> str | None:
        for call in _calls_with(result, "error"):
            error = call.error or ""
            if error.startswith("ReadOnlyError"):
                return f"hook {call.label} wrote what its stage forbids: {error}"
            if error.startswith("HookError") and _WRONG_SHAPE.search(error):
                # The driver's verdict on what the plugin handed back: the wrong shape. A
                # plugin that failed is kind 1's, not this.
                return f"hook {call.label} returned what its stage cannot take: {error}"
        return None

    return _plain_example(api, target, judge)


def _has_response_hooks(api: ApiDefinition) -> str | None:
    return None if api.middleware.response else "the API has no Response hooks"


def _encoding_problem(encoding: str, body: bytes) -> str | None:
    try:
        if encoding == "gzip":
            gzip.decompress(body)
        elif encoding == "deflate":
            zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        return f"Content-Encoding {encoding} but the body does not decode ({exc})"
    return None


def _response_consistency(
    api: ApiDefinition, target: PluginTarget
) -> tuple[st.SearchStrategy[Any], Any]:
    def judge(request: ClientRequest, result: Result) -> str | None:
        for call in result.trace:
            if call.response_after is None:
                continue
            status, headers, body = call.response_after
            if not 100 <= status <= 599:
                return f"hook {call.label} left status {status}"
            lengths = [v for k, v in headers if k.lower() == "content-length"]
            if any(v.strip() != str(len(body)) for v in lengths):
                return (
                    f"hook {call.label} left Content-Length {lengths} "
                    f"for a body of {len(body)} bytes"
                )
            for k, v in headers:
                if k.lower() == "content-encoding":
                    problem = _encoding_problem(v.strip().lower(), body)
                    if problem is not None:
                        return f"hook {call.label} left {problem}"
        return None

    return _plain_example(api, target, judge)


def _has_custom_auth(api: ApiDefinition) -> str | None:
    if api.custom_plugin_auth and api.middleware.auth_check is not None:
        return None
    return "the API has no custom auth hook"


def _custom_auth(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    bad = st.one_of(
        st.none(),
        st.sampled_from(["", " ", "Bearer", "Bearer ", "Basic", "null", "undefined", "0"]),
        header_values(),
        st.integers(1024, 16 * 1024).map(lambda n: "Bearer " + "A" * n),
    ).filter(lambda c: c is None or c.strip() not in target.credentials)
    base = _requests(api, ())
    strategy = st.builds(lambda r, c: (_with_credential(r, api, c), c), base, bad)

    async def example(harness: Harness, value: tuple[ClientRequest, str | None]) -> None:
        request, credential = value
        result = await harness.send(request)
        if result.upstream is not None:
            shown = "no credential" if credential is None else f"credential {credential[:40]!r}"
            raise _fail(
                f"custom auth let a request with {shown} through to the upstream",
                [request],
                result,
            )

    return strategy, example


def _is_deterministic(api: ApiDefinition) -> str | None:
    if (api.config_data or {}).get("deterministic") is True:
        return None
    return 'not declared deterministic ("deterministic": true in config_data)'


def _determinism(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    strategy = _requests(api, target.credentials)

    async def example(harness: Harness, request: ClientRequest) -> None:
        _use_upstream(harness, "json echo")
        first = await harness.send(request)
        second = await harness.send(request)
        if _view(first) != _view(second):
            raise _fail(
                "a hook declared deterministic gave a different result for the same request "
                f"(first: {_view(first)!r:.300}; then: {_view(second)!r:.300})",
                [request],
                second,
            )

    return strategy, example


_MARKERS = st.text("0123456789abcdef", min_size=8, max_size=8)


def _state_isolation(
    api: ApiDefinition, target: PluginTarget
) -> tuple[st.SearchStrategy[Any], Any]:
    strategy = st.tuples(_requests(api, target.credentials), _MARKERS)

    async def example(harness: Harness, value: tuple[ClientRequest, str]) -> None:
        request, tag = value
        _use_upstream(harness, "json echo")
        marker = f"leak-{tag}"
        other = _marked(request, marker, api)
        await harness.send(other)
        after = await harness.send(request)
        if marker in _text_of(after):
            raise _fail(
                f"state leaked between requests: what request A sent ({marker!r}) showed up "
                "in request B that came after it",
                [other, request],
                after,
            )

    return strategy, example


def _concurrency(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    strategy = st.tuples(
        st.lists(_requests(api, target.credentials), min_size=2, max_size=4), _MARKERS
    )

    async def example(harness: Harness, value: tuple[list[ClientRequest], str]) -> None:
        originals, tag = value
        _use_upstream(harness, "json echo")
        markers = [f"req{i}-{tag}" for i in range(len(originals))]
        requests = [_marked(r, m, api) for r, m in zip(originals, markers, strict=True)]
        results: list[Result | None] = [None] * len(requests)

        async def one(i: int) -> None:
            results[i] = await harness.send(requests[i])

        async with trio.open_nursery() as nursery:
            for i in range(len(requests)):
                nursery.start_soon(one, i)
        for i, result in enumerate(results):
            assert result is not None
            text = _text_of(result)
            for j, marker in enumerate(markers):
                if j != i and marker in text:
                    raise _fail(
                        f"requests served at the same time corrupted each other: request {i} "
                        f"got {marker!r} from request {j}",
                        requests,
                        result,
                    )

    return strategy, example


def _cancellation(api: ApiDefinition, target: PluginTarget) -> tuple[st.SearchStrategy[Any], Any]:
    delays = st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5])
    strategy = st.tuples(_requests(api, target.credentials), delays)
    deterministic = _is_deterministic(api) is None

    async def example(harness: Harness, value: tuple[ClientRequest, float]) -> None:
        request, delay = value
        _use_upstream(harness, "json echo")
        before = await harness.send(request) if deterministic else None
        alive: set[trio.lowlevel.Task] = set()

        class Tasks(trio.abc.Instrument):
            def task_spawned(self, task: trio.lowlevel.Task) -> None:
                if "_serve_memory_upstream" not in task.name:  # the pool's connections
                    alive.add(task)

            def task_exited(self, task: trio.lowlevel.Task) -> None:
                alive.discard(task)

        threads = live_threads()
        instrument = Tasks()
        trio.lowlevel.add_instrument(instrument)
        trace = RequestTrace()
        try:
            with trio.move_on_after(delay) as scope:
                trace.cancel_scope = scope
                await harness.send_traced(request, trace)
        finally:
            trio.lowlevel.remove_instrument(instrument)
        result = Result(
            status=0, headers=(), body=b"", upstream=None, session=None, session_key="",
            trace=tuple(trace.calls),
        )  # fmt: skip
        cancelled = f"(the request was cancelled after {delay} s)"
        for call in _calls_with(result, "swallowed-cancel"):
            raise _fail(
                f"hook {call.label} swallowed the cancellation {cancelled}", [request], result
            )
        if alive:
            names = sorted(t.name for t in alive)
            raise _fail(
                f"tasks outlived the cancelled request: {names} {cancelled}", [request], result
            )
        left = live_threads() - threads
        if left:
            names = sorted(t.name for t in left)
            raise _fail(f"threads outlived the request: {names} {cancelled}", [request], result)
        if before is not None:
            again = await harness.send(request)
            if _view(again) != _view(before):
                raise _fail(
                    "a deterministic hook answers differently after a request was cancelled "
                    f"mid-hook: shared state was left half-updated {cancelled}",
                    [request],
                    again,
                )

    return strategy, example


#: The battery, in the issue's order of kinds.
CHECKS: Final[dict[str, Check]] = {
    c.name: c
    for c in (
        Check("no_errors", 1, "no exception or invalid result on valid input", _always, _no_errors),
        Check("deadlines", 2, "no hook overruns its deadline", _always, _deadlines),
        Check("event_loop", 3, "no async hook blocks the event loop", _always, _event_loop),
        Check("cancellation", 4, "cancellation mid-hook is safe", _always, _cancellation),
        Check("state_isolation", 5, "no state leaks between requests", _always, _state_isolation),
        Check("stage_writes", 6, "no write or result the stage forbids", _always, _stage_writes),
        Check(
            "custom_auth", 7, "custom auth refuses missing and bad credentials",
            _has_custom_auth, _custom_auth,
        ),
        Check(
            "response_consistency", 8, "Response hooks leave a consistent response",
            _has_response_hooks, _response_consistency,
        ),
        Check(
            "determinism", 9, "deterministic hooks give the same result twice",
            _is_deterministic, _determinism,
        ),
        Check("concurrency", 10, "concurrent requests do not corrupt each other", _always,
              _concurrency),
    )
}  # fmt: skip
