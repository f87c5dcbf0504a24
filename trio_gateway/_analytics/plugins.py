"""Analytics plugins: a Python function that sees each record before it is stored.

Tyk runs a Go ``.so`` here (``analytics_plugin``); we run a function from a ``.py`` file. It
takes one :class:`~.record.AnalyticsRecord`, may change it in place, and returns ``False`` to
drop it (anything else keeps it). Plain functions run in worker threads, ``async def`` ones on the
event loop; either way a batch of records gets one deadline, and an exception or a timeout keeps
the batch's original records (the caller rebuilds them), is counted and logged once per API per
minute. The writer never waits on a plugin longer than that deadline.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._logsummary import FailureLog
from .record import AnalyticsRecord

if TYPE_CHECKING:
    from plugin_drivers.python.namespace import ModuleNamespace

__all__ = ["AnalyticsPlugin", "AnalyticsPluginError", "PluginOutcome", "load_analytics_plugin"]

log = logging.getLogger("trio_gateway.analytics")
#: Plugin failures: the first at once, then a count, per API and cause, once a minute.
failure_log = FailureLog(log, interval=60.0)


class AnalyticsPluginError(Exception):
    """The plugin could not be loaded (named file and function in the message)."""


@attrs.frozen
class AnalyticsPlugin:
    path: str
    function_name: str
    function: Callable[[AnalyticsRecord], Any] = attrs.field(eq=False, repr=False)
    is_async: bool


def load_analytics_plugin(
    path: str, function_name: str, api_source: str, namespaces: dict[str, ModuleNamespace]
) -> AnalyticsPlugin:
    """Import ``function_name`` from the Python file ``path`` (relative paths are relative to the
    API definition's folder, as for hooks), in its folder's own module namespace, recorded in
    ``namespaces`` (the caller releases them). Blocking: run it in a thread."""
    from plugin_drivers.python.loader import LoadFailure, load_file_module, resolve_path

    if path.endswith(".so"):
        raise AnalyticsPluginError(
            f"analytics_plugin.plugin_path {path!r} is a Go plugin (.so), which cannot run "
            "here; give a .py file"
        )
    try:
        module = load_file_module(resolve_path(path, api_source), namespaces)
    except LoadFailure as exc:
        raise AnalyticsPluginError(f"analytics plugin {path!r}: {exc}") from exc
    except Exception as exc:
        raise AnalyticsPluginError(f"analytics plugin {path!r} failed to load: {exc!r}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AnalyticsPluginError(
            f"analytics plugin {path!r} has no function {function_name!r} (func_name)"
        )
    return AnalyticsPlugin(
        path=path,
        function_name=function_name,
        function=function,
        is_async=inspect.iscoroutinefunction(function),
    )


@attrs.frozen
class PluginOutcome:
    #: The records to store (None: the plugin failed; store the originals).
    records: list[AnalyticsRecord] | None
    #: "ok", "error" or "timeout".
    outcome: str


def _run_sync(
    function: Callable[[AnalyticsRecord], Any], records: Sequence[AnalyticsRecord]
) -> list[AnalyticsRecord]:
    return [record for record in records if function(record) is not False]


async def run_plugin(
    plugin: AnalyticsPlugin,
    api_id: str,
    records: Sequence[AnalyticsRecord],
    *,
    deadline: float,
    limiter: trio.CapacityLimiter,
) -> PluginOutcome:
    """Run ``plugin`` over one batch of one API's records within ``deadline`` seconds.

    ``limiter`` bounds how many plugin batches run at once (threads included: an abandoned
    thread holds its token until it returns, so a plugin that hangs for good times out its later
    batches instead of piling up threads).
    """
    failure: BaseException | None = None
    kept: list[AnalyticsRecord] | None = None
    with trio.move_on_after(deadline) as scope:
        try:
            if plugin.is_async:
                async with limiter:
                    kept = []
                    for record in records:
                        if await plugin.function(record) is not False:
                            kept.append(record)
            else:
                kept = await trio.to_thread.run_sync(
                    _run_sync, plugin.function, records, limiter=limiter, abandon_on_cancel=True
                )
        except Exception as exc:  # Cancelled is a BaseException: it passes
            failure = exc
    if scope.cancelled_caught:
        failure_log.warning(
            (api_id, "timeout"),
            f"analytics plugin {plugin.function_name} of API {api_id} timed out after "
            f"{deadline}s; the records are stored unchanged",
        )
        return PluginOutcome(records=None, outcome="timeout")
    if failure is not None or kept is None:
        failure_log.warning(
            (api_id, "error", type(failure)),
            f"analytics plugin {plugin.function_name} of API {api_id} failed; the records are "
            "stored unchanged",
            failure,
        )
        return PluginOutcome(records=None, outcome="error")
    return PluginOutcome(records=kept, outcome="ok")
