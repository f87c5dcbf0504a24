"""Which hooks an API runs, in which order, with which deadline and policy (pure, load time).

Built once per API definition; the runner only walks the result. Disabled entries are left out,
stages that cannot run are left out (no AUTH or POST_AUTH on keyless APIs, as in Tyk), and every
hook carries its resolved ``timeout`` and ``failure_mode`` (hook, then API, then gateway default)
and its API's ``thread_limit`` (API, then gateway default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from .._apidef.model import ApiDefinition, FailureMode, PluginRef, Stage
from .._config.model import DEFAULT_THREAD_LIMIT
from ..errors import PluginDriverError
from ..hooks import HookRef

#: Stage order of a request (RESPONSE runs after the upstream).
STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)


@attrs.frozen(kw_only=True)
class HookDefaults:
    """Gateway-wide defaults for every hook (an API's ``custom_middleware`` may override them)."""

    timeout: float = 1.0
    failure_mode: FailureMode = FailureMode.CLOSED
    thread_limit: int = DEFAULT_THREAD_LIMIT


@attrs.frozen(kw_only=True)
class EndpointRoute:
    """A per-endpoint hook with its compiled full-path pattern."""

    method: str  # upper case; "" matches any method
    pattern: re.Pattern[str]
    hook: HookRef


@attrs.frozen(kw_only=True)
class Chain:
    """The hooks of one API, per stage, in the order they run."""

    pre: tuple[HookRef, ...] = ()
    auth: tuple[HookRef, ...] = ()  # zero or one hook
    post_auth: tuple[HookRef, ...] = ()
    endpoints: tuple[EndpointRoute, ...] = ()
    post: tuple[HookRef, ...] = ()
    response: tuple[HookRef, ...] = ()

    @property
    def hooks(self) -> tuple[HookRef, ...]:
        """Every hook, in walk order (endpoint hooks in their definition order)."""
        return (
            self.pre
            + self.auth
            + self.post_auth
            + tuple(r.hook for r in self.endpoints)
            + self.post
            + self.response
        )

    @property
    def has_request_hooks(self) -> bool:
        return bool(self.pre or self.auth or self.post_auth or self.endpoints or self.post)

    @property
    def has_response_hooks(self) -> bool:
        return bool(self.response)

    def match_endpoint(self, method: str, path: str) -> HookRef | None:
        """The first endpoint hook whose method and full path match (Tyk uses the first match)."""
        for route in self.endpoints:
            if (not route.method or route.method == method) and route.pattern.match(path):
                return route.hook
        return None


def build_chain(api: ApiDefinition, defaults: HookDefaults) -> Chain:
    """The API's chain. Raises :class:`PluginDriverError` (naming API and hook) on a bad entry."""
    mw = api.middleware
    api_timeout = mw.timeout if mw.timeout is not None else defaults.timeout
    api_mode = mw.failure_mode if mw.failure_mode is not None else defaults.failure_mode
    threads = mw.thread_limit if mw.thread_limit is not None else defaults.thread_limit

    def refs(stage: Stage, plugins: Sequence[PluginRef]) -> tuple[HookRef, ...]:
        out = []
        for index, plugin in enumerate(plugins):
            if plugin.disabled:
                continue
            out.append(_resolve(api, stage, index, plugin, api_timeout, api_mode, threads))
        return tuple(out)

    protected = not api.use_keyless
    auth: tuple[HookRef, ...] = ()
    if protected and api.custom_plugin_auth and mw.auth_check is not None:
        auth = refs(Stage.AUTH, (mw.auth_check,))
    endpoints = []
    for index, ep in enumerate(mw.endpoints):
        if ep.plugin.disabled:
            continue
        hook = _resolve(
            api, Stage.ENDPOINT, index, ep.plugin, api_timeout, api_mode, threads
        )
        hook = attrs.evolve(hook, endpoint_path=ep.path, endpoint_method=ep.method.upper())
        endpoints.append(
            EndpointRoute(
                method=ep.method.upper(),
                pattern=_endpoint_pattern(api, hook, ep.path),
                hook=hook,
            )
        )
    return Chain(
        pre=refs(Stage.PRE, mw.pre),
        auth=auth,
        post_auth=refs(Stage.POST_AUTH, mw.post_key_auth) if protected else (),
        endpoints=tuple(endpoints),
        post=refs(Stage.POST, mw.post),
        response=refs(Stage.RESPONSE, mw.response),
    )


def _resolve(
    api: ApiDefinition,
    stage: Stage,
    index: int,
    plugin: PluginRef,
    api_timeout: float,
    api_mode: FailureMode,
    thread_limit: int,
) -> HookRef:
    timeout = plugin.timeout if plugin.timeout is not None else api_timeout
    mode = plugin.failure_mode if plugin.failure_mode is not None else api_mode
    hook = HookRef(
        stage=stage,
        plugin=plugin,
        index=index,
        timeout=timeout,
        failure_mode=mode,
        thread_limit=thread_limit,
    )
    if not timeout > 0:
        raise _load_error(api, hook, f"timeout must be a positive number of seconds, not {timeout}")
    if stage is Stage.AUTH and mode is FailureMode.OPEN:
        if plugin.failure_mode is FailureMode.OPEN:
            raise _load_error(
                api,
                hook,
                'failure mode "open" is refused for custom auth (it would let '
                "unauthenticated requests through)",
            )
        # An API- or gateway-wide "open" default never applies to custom auth.
        hook = attrs.evolve(hook, failure_mode=FailureMode.CLOSED)
    if plugin.path.endswith(".so"):
        raise _load_error(api, hook, f"Go plugins ({plugin.path}) cannot run in trio-gateway")
    return hook


def _load_error(api: ApiDefinition, hook: HookRef, message: str) -> PluginDriverError:
    return PluginDriverError(f"API {api.api_id!r}: hook {hook.label}: {message}")


_PARAM = re.compile(r"\{[^/{}]*\}")


def _endpoint_pattern(api: ApiDefinition, hook: HookRef, path: str) -> re.Pattern[str]:
    """Tyk matches endpoint paths as regular expressions with ``{name}`` segments, under the
    listen path; we anchor the whole path (a trailing slash is optional)."""
    prefix = api.listen_path.rstrip("/")
    body = _PARAM.sub("[^/]+", "/" + path.lstrip("/")).rstrip("/")
    try:
        return re.compile("^" + re.escape(prefix) + body + "/?$")
    except re.error as exc:
        message = f"endpoint path {path!r} is not a valid pattern: {exc}"
        raise _load_error(api, hook, message) from exc
