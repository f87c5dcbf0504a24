"""The Trio shell of the Redis client: a small connection pool, timeouts, backoff.

Failure model:
- A connection that fails or is cancelled mid-command is closed, never reused: its reply stream
  is in an unknown state.
- Any failure to reach Redis raises :class:`RedisUnavailableError` and opens a backoff window
  (doubling from ``backoff_initial`` to ``backoff_max``). Calls inside the window fail at once
  without touching the network, so a dead Redis costs requests microseconds, not timeouts. The
  first call after the window tries a fresh connection; success closes the window. Recovery
  needs no background task.
- A Redis error reply (``-ERR ...``) raises :class:`RedisReplyError`; the connection is fine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
    backoff_max: float = 2.0
    _idle: list[_Connection] = attrs.field(factory=list, init=False)
    _slots: trio.Semaphore = attrs.field(init=False)
    _down_until: float = attrs.field(default=-1.0, init=False)
    _backoff: float = attrs.field(default=0.0, init=False)
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
        if trio.current_time() < self._down_until:
            raise RedisUnavailableError("Redis is unavailable (backing off)")
        async with self._slots:
            conn: _Connection | None = None
            try:
                with trio.fail_after(self.timeout):
                    conn = self._idle.pop() if self._idle else await self._connect()
                    result = await conn.roundtrip(payload, replies)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, RedisError) as exc:
                await self._fail(conn)
                if isinstance(exc, RedisUnavailableError):
                    raise
                raise RedisUnavailableError(f"Redis is unavailable: {exc!r}") from exc
            except BaseException:
                # Cancelled mid-command: the reply stream is out of step; drop the connection.
                if conn is not None:
                    await trio.aclose_forcefully(conn.stream)
                raise
            self._backoff = 0.0
            self._idle.append(conn)
            return result

    async def _connect(self) -> _Connection:
        stream = await trio.open_tcp_stream(self.host, self.port)
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

    async def _fail(self, conn: _Connection | None) -> None:
        """Close the failed connection and every idle one (after a failure they are suspect)."""
        self._backoff = min(self.backoff_max, max(self.backoff_initial, self._backoff * 2))
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
