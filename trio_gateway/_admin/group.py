"""Group reload: one ``/tyk/reload/group`` call reloads every gateway sharing the Redis.

Tyk publishes a notification on the Redis channel ``tyk.cluster.notifications`` and every gateway
subscribed to it reloads. We use the same channel and the same JSON shape (``{"command":
"GroupReload", ...}``), so a notice from either side is understood by the other. Any notice whose
command changes the set of APIs (group reload, API added/updated/removed) triggers a reload here.

Pub/sub needs a connection of its own (a subscribed connection answers only pub/sub commands), so
the subscriber opens one directly instead of borrowing from the command pool. It reconnects with
backoff when Redis goes away; a notice published while it is disconnected is lost, as in Tyk.

With the in-memory store there is no one else to tell: the group is this gateway.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

import attrs
import hiredis
import trio

from .._config.model import StorageConfig
from .._redis.client import RedisClient, RedisError
from .._redis.resp import Arg, encode_command
from .._reload import Reloader

__all__ = [
    "GROUP_RELOAD_COMMAND",
    "NOTIFICATION_CHANNEL",
    "GroupReload",
    "LocalGroupReload",
    "RedisGroupReload",
    "is_reload_notice",
]

log = logging.getLogger("trio_gateway.reload")

#: Tyk's cluster notification channel and reload command.
NOTIFICATION_CHANNEL = "tyk.cluster.notifications"
GROUP_RELOAD_COMMAND = "GroupReload"
#: Tyk notices after which the set of APIs may have changed.
_RELOADING_COMMANDS = frozenset({GROUP_RELOAD_COMMAND, "ApiUpdated", "ApiAdded", "ApiRemoved"})


def is_reload_notice(payload: bytes) -> bool:
    """Whether a message on the notification channel asks this gateway to reload (pure)."""
    try:
        notice = json.loads(payload)
    except ValueError:
        return False
    return isinstance(notice, dict) and notice.get("command") in _RELOADING_COMMANDS


class GroupReload(Protocol):
    """Reaches every gateway of the group."""

    async def publish(self) -> None: ...

    async def serve(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


@attrs.define(eq=False)
class LocalGroupReload:
    """The in-memory store's group: this gateway alone."""

    reloader: Reloader

    async def publish(self) -> None:
        self.reloader.request_reload()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()


@attrs.define(eq=False)
class RedisGroupReload:
    """Publishes group reloads and reloads this gateway when one arrives."""

    reloader: Reloader
    storage: StorageConfig
    #: Bound on connecting and subscribing (the wait for messages itself is unbounded).
    connect_timeout: float = 2.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    #: Set while subscribed (tests wait for it instead of sleeping).
    subscribed: trio.Event = attrs.field(factory=trio.Event, init=False)
    #: Successful subscriptions so far (the first, then one per reconnect).
    subscriptions: int = attrs.field(default=0, init=False)
    _subscription_made: trio.Event = attrs.field(factory=trio.Event, init=False)
    _publisher: RedisClient = attrs.field(init=False)

    @_publisher.default
    def _make_publisher(self) -> RedisClient:
        s = self.storage
        return RedisClient(
            host=s.host,
            port=s.port,
            db=s.database,
            username=s.username,
            password=s.password,
            pool_size=1,
        )

    async def publish(self) -> None:
        """Publish a group reload (raises ``RedisUnavailableError`` if Redis cannot be reached)."""
        notice = json.dumps({"command": GROUP_RELOAD_COMMAND, "payload": "", "signature": ""})
        await self._publisher.execute("PUBLISH", NOTIFICATION_CHANNEL, notice)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay subscribed until cancelled. Reports started after the first attempt, so that a
        gateway whose Redis is down still starts (and subscribes once Redis is back)."""
        backoff = self.backoff_initial
        reported = False
        try:
            while True:
                try:
                    stream, reader = await self._subscribe()
                except (OSError, trio.TooSlowError, RedisError, hiredis.HiredisError) as exc:
                    log.warning("group reload: cannot subscribe to Redis (%s); retrying", exc)
                else:
                    backoff = self.backoff_initial
                    self.subscribed.set()
                    self.subscriptions += 1
                    self._subscription_made.set()
                    self._subscription_made = trio.Event()
                    if not reported:
                        reported = True
                        task_status.started()
                    try:
                        async with stream:
                            await self._listen(stream, reader)
                    except (
                        OSError,
                        trio.BrokenResourceError,
                        RedisError,
                        hiredis.HiredisError,
                    ) as exc:
                        log.warning("group reload: lost the Redis subscription (%s)", exc)
                    self.subscribed = trio.Event()
                if not reported:
                    reported = True
                    task_status.started()
                await trio.sleep(backoff)
                backoff = min(self.backoff_max, backoff * 2)
        finally:
            with trio.CancelScope(shield=True):
                await self._publisher.aclose()

    async def wait_for_subscriptions(self, count: int) -> None:
        """Wait until ``count`` subscriptions have been made (the caller bounds the wait)."""
        while self.subscriptions < count:
            await self._subscription_made.wait()

    async def _subscribe(self) -> tuple[trio.SocketStream, hiredis.Reader]:
        s = self.storage
        with trio.fail_after(self.connect_timeout):
            stream = await trio.open_tcp_stream(s.host, s.port)
            try:
                reader = hiredis.Reader()
                if s.password:
                    auth: list[Arg] = ["AUTH", s.password]
                    if s.username:
                        auth = ["AUTH", s.username, s.password]
                    await stream.send_all(encode_command(auth))
                    _check_reply(await _read_reply(stream, reader))
                await stream.send_all(encode_command(["SUBSCRIBE", NOTIFICATION_CHANNEL]))
                _check_reply(await _read_reply(stream, reader))  # the subscribe confirmation
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        return stream, reader

    async def _listen(self, stream: trio.SocketStream, reader: hiredis.Reader) -> None:
        while True:
            reply = await _read_reply(stream, reader)
            if (
                isinstance(reply, list)
                and len(reply) == 3
                and reply[0] == b"message"
                and isinstance(reply[2], bytes)
                and is_reload_notice(reply[2])
            ):
                log.info("group reload notice received")
                self.reloader.request_reload()


async def _read_reply(stream: trio.SocketStream, reader: hiredis.Reader) -> Any:
    while True:
        reply = reader.gets()
        if reply is not False:
            return reply
        data = await stream.receive_some(65536)
        if not data:
            raise RedisError("Redis closed the subscription connection")
        reader.feed(data)


def _check_reply(reply: Any) -> None:
    if isinstance(reply, hiredis.ReplyError):
        raise RedisError(str(reply))
