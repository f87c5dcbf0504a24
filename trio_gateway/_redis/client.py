"""The Trio shell of the Redis client: a small connection pool, timeouts, backoff.

Failure model:
- A connection that fails or is cancelled mid-command is closed, never reused: its reply stream
  is in an unknown state.
- The first failure to reach Redis while it was up marks it down and opens a backoff window; the
  caller gets :class:`RedisUnavailableError`. Calls inside the window fail at once without
  touching the network, so a dead Redis costs requests microseconds, not timeouts. Failures of
  commands that were already under way when Redis went down do not move the window: only the
  probe below does.
- After the window, exactly one call (the *probe*) tries a fresh connection; while it runs, other
  calls fail at once as inside the window, so an outage sees one connect attempt at a time
  however many callers there are. A failed probe doubles the window (``backoff_initial`` up to
  ``backoff_max``, kept short so that traffic is back within about ``backoff_max`` of Redis
  accepting connections again); a successful one marks Redis up. Recovery needs no background
  task.
- A Redis error reply (``-ERR ...``) raises :class:`RedisReplyError`; the connection is fine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import hiredis
import trio

from .resp import Arg, encode_command, encode_commands

__all__ = ["RedisClient", "RedisError", "RedisReplyError", "RedisUnavailableError", "Script"]


class RedisError(Exception):
    """Base of the client's errors."""


class RedisUnavailableError(RedisError):
    """Redis could not be reached, or did not answer in time."""


class RedisReplyError(RedisError):
    """Redis answered with an error reply."""


@attrs.frozen
class Script:
    """A Lua script, run with EVALSHA (falling back to EVAL once after NOSCRIPT)."""

    source: str
    sha: str = attrs.field(init=False)

    @sha.default
    def _sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


#: Opens the TCP connection to Redis (a parameter so that tests can watch the attempts).
OpenStream = Callable[[str, int], Awaitable[trio.SocketStream]]


@attrs.define(eq=False)
class _Connection:
    stream: trio.SocketStream
    reader: hiredis.Reader = attrs.field(factory=hiredis.Reader)

    async def roundtrip(self, payload: bytes, replies: int) -> list[Any]:
        await self.stream.send_all(payload)
        out: list[Any] = []
        while len(out) < replies:
            reply = self.reader.gets()
            if reply is False:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise RedisUnavailableError("Redis closed the connection")
                self.reader.feed(data)
                continue
            out.append(reply)
        return out


@attrs.define(eq=False)
class RedisClient:
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: str = ""
    username: str = ""
    pool_size: int = 8
    #: Bound on one command's round trip (connect included).
    timeout: float = 1.0
    backoff_initial: float = 0.05
    #: Short on purpose: the window is how late keyed traffic may come back after Redis does.
    backoff_max: float = 0.25
    open_stream: OpenStream = trio.open_tcp_stream
    _idle: list[_Connection] = attrs.field(factory=list, init=False)
    _slots: trio.Semaphore = attrs.field(init=False)
    #: Redis is down: calls before ``_down_until`` fail at once, the first one after probes.
    _down: bool = attrs.field(default=False, init=False)
    _down_until: float = attrs.field(default=-1.0, init=False)
    _backoff: float = attrs.field(default=0.0, init=False)
    _probing: bool = attrs.field(default=False, init=False)
    #: Counts the changes between up and down, so a failure of a command started before the last
    #: change (a slow command that times out after Redis came back) is not taken for news.
    _generation: int = attrs.field(default=0, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    @_slots.default
    def _make_slots(self) -> trio.Semaphore:
        return trio.Semaphore(self.pool_size)

    async def execute(self, *args: Arg) -> Any:
        """Run one command and return its reply."""
        (reply,) = await self._run(encode_command(args), 1)
        return _raise_if_error(reply)

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send several commands in one write; replies in order (error replies as values)."""
        return await self._run(encode_commands(commands), len(commands))

    async def run_script(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # EVAL also caches the script on the server, so later EVALSHAs find it.
        return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await trio.aclose_forcefully(conn.stream)

    async def _run(self, payload: bytes, replies: int) -> list[Any]:
        if self._closed:
            raise RedisUnavailableError("the Redis client is closed")
        self._check_down()
        async with self._slots:
            # Redis may have gone down while this call waited for a slot.
            probe = self._check_down()
            if probe:
                self._probing = True
            generation = self._generation
            conn: _Connection | None = None
            try:
                with trio.fail_after(self.timeout):
                    conn = self._idle.pop() if self._idle and not probe else await self._connect()
                    result = await conn.roundtrip(payload, replies)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, RedisError) as exc:
                await self._fail(conn, probe, generation)
                if isinstance(exc, RedisUnavailableError):
                    raise
                raise RedisUnavailableError(f"Redis is unavailable: {exc!r}") from exc
            except BaseException:
                # Cancelled mid-command: the reply stream is out of step; drop the connection.
                # A cancelled probe decides nothing: the next call after the window probes.
                if probe:
                    self._probing = False
                if conn is not None:
                    await trio.aclose_forcefully(conn.stream)
                raise
            if probe:
                self._probing = False
                self._down = False
                self._backoff = 0.0
                self._generation += 1
            self._idle.append(conn)
            return result

    def _check_down(self) -> bool:
        """Raise while Redis is down and this call may not probe; True: this call is the probe."""
        if not self._down:
            return False
        if self._probing or trio.current_time() < self._down_until:
            raise RedisUnavailableError("Redis is unavailable (backing off)")
        return True

    async def _connect(self) -> _Connection:
        stream = await self.open_stream(self.host, self.port)
        conn = _Connection(stream)
        setup: list[list[Arg]] = []
        if self.password:
            auth: list[Arg] = (
                ["AUTH", self.username, self.password]
                if self.username
                else [
                    "AUTH",
                    self.password,
                ]
            )
            setup.append(auth)
        if self.db:
            setup.append(["SELECT", self.db])
        if setup:
            try:
                for reply in await conn.roundtrip(encode_commands(setup), len(setup)):
                    _raise_if_error(reply)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        return conn

    async def _fail(self, conn: _Connection | None, probe: bool, generation: int) -> None:
        """Close the failed connection and every idle one (after a failure they are suspect);
        open or widen the backoff window if this failure is news."""
        if probe:
            self._probing = False
            self._backoff = min(self.backoff_max, max(self.backoff_initial, self._backoff * 2))
            self._down_until = trio.current_time() + self._backoff
        elif not self._down and generation == self._generation:
            # The first failure since Redis was last up. Other calls under way fail too; they
            # must not restart or widen the window, or recovery waits for nothing.
            self._down = True
            self._generation += 1
            self._backoff = self.backoff_initial
            self._down_until = trio.current_time() + self._backoff
        suspects = self._idle
        self._idle = []
        if conn is not None:
            suspects.append(conn)
        for suspect in suspects:
            await trio.aclose_forcefully(suspect.stream)


def _raise_if_error(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise RedisReplyError(str(reply))
    return reply
