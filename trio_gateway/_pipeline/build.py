"""Build an API's pipeline once at load time: chain, driver, loaded plugins."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import trio

from .._apidef.model import ApiDefinition
from .._driver_settings import DriverSettings
from ..errors import PluginDriverError
from ..hooks import Driver
from .chain import HookDefaults, build_chain
from .runner import CLOSE_TIMEOUT, ApiPipeline, Builtin, Finisher

#: Builds the driver named by the API (tests pass their own; the gateway uses
#: ``plugin_drivers.create_driver`` with the gateway's :class:`DriverSettings`).
DriverFactory = Callable[[str], Driver]

#: Bound on loading one API's plugins (imports run plugin code, which may hang): beyond it the
#: API answers 503 like any plugin that fails to load, and a (re)load goes on with the others.
#: A Python import still running in its thread is abandoned (a thread cannot be interrupted).
PLUGIN_LOAD_TIMEOUT = 10.0


async def build_pipeline(
    api: ApiDefinition,
    defaults: HookDefaults,
    *,
    builtins: Sequence[Builtin] = (),
    authenticate: Builtin | None = None,
    finish: Finisher | None = None,
    driver_factory: DriverFactory | None = None,
    driver_settings: DriverSettings | None = None,
) -> ApiPipeline:
    """Load ``api``'s plugins and return its pipeline.

    Raises :class:`PluginDriverError` naming the API (and the hook) when a plugin cannot load; the
    server then answers 503 on this API while the others serve.
    """
    chain = build_chain(api, defaults)
    hooks = chain.hooks
    if not hooks:
        return ApiPipeline(
            api=api,
            chain=chain,
            driver=None,
            builtins=builtins,
            authenticate=authenticate,
            finish=finish,
        )
    if driver_factory is None:
        # The composition point: the gateway's only import of the drivers (lazy, so a gateway
        # without plugins never imports them).
        from plugin_drivers import create_driver

        settings = driver_settings if driver_settings is not None else DriverSettings()
        driver_factory = functools.partial(create_driver, settings=settings)
    try:
        driver = driver_factory(api.middleware.driver)
    except PluginDriverError as exc:
        raise PluginDriverError(f"API {api.api_id!r}: {exc}") from exc
    try:
        try:
            with trio.fail_after(PLUGIN_LOAD_TIMEOUT):
                await driver.load(api, hooks)
        except trio.TooSlowError:
            raise PluginDriverError(
                f"API {api.api_id!r}: plugins took longer than {PLUGIN_LOAD_TIMEOUT:g}s to load"
            ) from None
    except BaseException as exc:
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
            await driver.aclose()
        if isinstance(exc, PluginDriverError) or not isinstance(exc, Exception):
            raise
        raise PluginDriverError(f"API {api.api_id!r}: driver failed to load: {exc}") from exc
    return ApiPipeline(
        api=api,
        chain=chain,
        driver=driver,
        builtins=builtins,
        authenticate=authenticate,
        finish=finish,
    )
