"""Hot reload: build a new API snapshot from the folder, swap it in, retire the old one.

A reload (admin call, SIGHUP, ``--watch``, a group notice) reads the folder again and builds a new
:class:`~trio_gateway._gateway.ApiSnapshot`, then swaps it in with one assignment. Requests that
already started keep the snapshot they started with; the old snapshot's plugins are closed once
its in-flight count drops to zero, or after ``drain_timeout`` at the latest.

A broken definition file is not a failed reload: it is reported and that API is skipped, exactly
as at start. A failed reload (the folder cannot be listed, the build raises) keeps the old
snapshot serving and reports why.

Reloads never overlap (one lock). Queued reloads coalesce: asking for one while one is waiting
to run adds nothing, since the waiting one will read the folder after the ask anyway.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import trio

from ._apidef.model import ApiDefinition
from ._apidef.source import LoadReport, load_api_definitions
from ._gateway import ApiSnapshot, Gateway
from .errors import GatewayError

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "BuildSnapshot",
    "ReloadResult",
    "Reloader",
    "folder_fingerprint",
    "watch_folder",
]

log = logging.getLogger("trio_gateway.reload")

BuildSnapshot = Callable[[Sequence[ApiDefinition]], Awaitable[ApiSnapshot]]

#: How often ``--watch`` looks at the folder, in seconds.
DEFAULT_WATCH_INTERVAL = 1.0


@attrs.frozen(kw_only=True)
class ReloadResult:
    """What one reload did. ``ok`` False means the old snapshot is still serving."""

    ok: bool
    #: Why it failed, or a one-line summary of what is now served.
    message: str
    #: The load report (None when the folder could not be read at all).
    report: LoadReport | None = None


class _ReloadFailed(Exception):
    pass


def _load_folder(folder: Path) -> LoadReport:
    """Read the folder (in a worker thread). An unreadable folder raises ``_ReloadFailed``.

    ``Path.glob`` reports a missing or unreadable folder as an empty one, which would silently
    unload every API; listing it first turns that into a failure.
    """
    try:
        os.listdir(folder)
    except OSError as exc:
        raise _ReloadFailed(f"{folder}: cannot read the API definitions folder: {exc}") from exc
    report = load_api_definitions(folder)
    listing = [e for e in report.errors if e.startswith(f"{folder}: cannot list")]
    if listing:
        raise _ReloadFailed("; ".join(listing))
    return report


@attrs.define(eq=False)
class Reloader:
    """Owns reloads of one gateway. Run :meth:`serve` in the gateway's root nursery."""

    gateway: Gateway
    folder: Path
    build: BuildSnapshot
    #: Bound on waiting for an old snapshot's requests before closing its plugins anyway.
    drain_timeout: float = 30.0
    #: Completed reloads that swapped a snapshot in (tests wait on it).
    generation: int = 0
    last: ReloadResult | None = None
    #: Reloads that failed (the previous APIs kept serving), for /metrics.
    failures: int = 0
    _lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _wanted: trio.Event = attrs.field(factory=trio.Event, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run queued reloads and own the tasks that retire old snapshots, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                while True:
                    await self._wanted.wait()
                    self._wanted = trio.Event()
                    await self.reload()
            finally:
                self._nursery = None

    def request_reload(self) -> None:
        """Queue a reload and return at once (SIGHUP, ``--watch``, a non-blocking admin call)."""
        self._wanted.set()

    async def reload(self) -> ReloadResult:
        """Reload now and return the outcome (waits for a running reload first)."""
        async with self._lock:
            result = await self._reload_locked()
        self.last = result
        if result.ok:
            log.info("reload: %s", result.message)
        else:
            self.failures += 1
            log.error("reload failed, still serving the previous APIs: %s", result.message)
        return result

    async def wait_for_generation(self, generation: int) -> None:
        """Wait until ``generation`` reloads have swapped a snapshot in (the caller bounds it)."""
        while self.generation < generation:
            await self._changed.wait()

    async def _reload_locked(self) -> ReloadResult:
        try:
            report = await trio.to_thread.run_sync(_load_folder, self.folder)
        except _ReloadFailed as exc:
            return ReloadResult(ok=False, message=str(exc))
        for warning in report.warnings:
            log.warning("%s", warning)
        for error in report.errors:
            log.error("%s", error)
        try:
            snapshot = await self.build(report.apis)
        except Exception as exc:  # trio.Cancelled is a BaseException: it passes through
            # A reload must never take the gateway down: whatever the build raised, the old
            # snapshot keeps serving and the reason is reported.
            if not isinstance(exc, GatewayError):
                log.exception("reload: building the new APIs raised")
            message = f"building the new APIs failed: {exc}"
            return ReloadResult(ok=False, message=message, report=report)
        old = self.gateway.snapshot
        self.gateway.snapshot = snapshot  # the swap: requests from here on see the new APIs
        self.generation += 1
        self._changed.set()
        self._changed = trio.Event()
        if self._nursery is not None:
            self._nursery.start_soon(self._drain_and_close, old)
        else:
            # No serve() running (an embedder calling reload() directly): nobody owns a
            # background task, so this call drains and closes the old snapshot itself.
            await self._drain_and_close(old)
        return ReloadResult(
            ok=True,
            message=f"serving {len(report.apis)} API(s), {len(report.errors)} refused",
            report=report,
        )

    async def _drain_and_close(self, old: ApiSnapshot) -> None:
        try:
            with trio.move_on_after(self.drain_timeout) as scope:
                await old.wait_drained()
            if scope.cancelled_caught:
                log.warning(
                    "reload: %d request(s) still running on the previous APIs after %ss; "
                    "closing their plugins anyway",
                    old.in_flight,
                    self.drain_timeout,
                )
        finally:
            await old.aclose()  # shielded inside: runs even when the gateway is shutting down


Fingerprint = dict[str, tuple[int, int]]


def folder_fingerprint(folder: Path) -> Fingerprint | None:
    """Name -> (mtime_ns, size) of every ``*.json`` in ``folder``; None if it cannot be read."""
    result: Fingerprint = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".json"):
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue  # removed while we looked: the next poll sees it gone
                    result[entry.name] = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None
    return result


async def watch_folder(
    reloader: Reloader,
    interval: float = DEFAULT_WATCH_INTERVAL,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Poll the folder every ``interval`` seconds; queue a reload when any file changes.

    Polling (no new dependency, works on every filesystem) costs one ``scandir`` per interval.
    """
    seen = await trio.to_thread.run_sync(folder_fingerprint, reloader.folder)
    task_status.started()
    while True:
        await trio.sleep(interval)
        now = await trio.to_thread.run_sync(folder_fingerprint, reloader.folder)
        if now != seen:
            seen = now
            log.info("%s changed: reloading", reloader.folder)
            reloader.request_reload()
