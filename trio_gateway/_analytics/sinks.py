"""Where finished analytics records go: Tyk Pump's Redis list, or JSON lines.

A sink's ``write`` is given one batch and either stores all of it or raises
:class:`SinkError`; the writer counts the batch as dropped then (never retried: a backlog
would grow without bound while Redis is down, and the request path must not notice).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import attrs

from .._logwriter import LogWriter
from .._redis.client import RedisClient, RedisError
from .record import AnalyticsRecord, to_json, to_msgpack

__all__ = ["ANALYTICS_KEY", "JsonLinesSink", "RedisListSink", "Sink", "SinkError"]

#: Tyk's analytics storage prefix (``analytics-``) and key (``tyk-system-analytics``).
ANALYTICS_KEY = "analytics-tyk-system-analytics"
#: Records per RPUSH: a large backlog goes as a pipeline of moderate commands.
RPUSH_CHUNK = 500


class SinkError(Exception):
    """A batch could not be stored (it is dropped and counted)."""


class Sink(Protocol):
    #: True when :meth:`encode` is Tyk's msgpack (the recorder may then use a per-API encoder).
    msgpack: bool

    def encode(self, record: AnalyticsRecord) -> bytes: ...

    async def write(self, items: Sequence[bytes]) -> None: ...

    async def aclose(self) -> None: ...


@attrs.define(eq=False)
class RedisListSink:
    """RPUSH to ``analytics-tyk-system-analytics`` (or ``..._0`` to ``_9``, one picked per
    batch, with ``multiple_keys``, as Tyk's ``enable_multiple_analytics_keys``), msgpack-encoded
    as Tyk's gateway writes it, so that Tyk Pump consumes the records."""

    client: RedisClient
    multiple_keys: bool = False
    #: Seconds the key lives after each write (Tyk's ``analytics_config.storage_expiration_time``);
    #: 0 leaves it without expiry.
    key_ttl: int = 0
    msgpack: bool = True

    def encode(self, record: AnalyticsRecord) -> bytes:
        return to_msgpack(record)

    async def write(self, items: Sequence[bytes]) -> None:
        if not items:
            return
        key = ANALYTICS_KEY
        if self.multiple_keys:
            key = f"{key}_{random.randrange(10)}"
        encoded = list(items)
        commands: list[list[str | bytes | int]] = [
            ["RPUSH", key, *encoded[i : i + RPUSH_CHUNK]]
            for i in range(0, len(encoded), RPUSH_CHUNK)
        ]
        if self.key_ttl > 0:
            commands.append(["EXPIRE", key, self.key_ttl])
        try:
            replies = await self.client.pipeline(commands)
        except RedisError as exc:
            raise SinkError(f"Redis: {exc}") from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise SinkError(f"Redis: {reply}")

    async def aclose(self) -> None:
        await self.client.aclose()


@attrs.define(eq=False)
class JsonLinesSink:
    """One JSON object per line (Pump's JSON names), through a writer thread that never blocks
    the event loop; lines it cannot take are dropped and counted by it."""

    writer: LogWriter
    msgpack: bool = False

    def encode(self, record: AnalyticsRecord) -> bytes:
        return (to_json(record) + "\n").encode("utf-8")

    async def write(self, items: Sequence[bytes]) -> None:
        if not items:
            return
        if not self.writer.write_nowait(b"".join(items), lines=len(items)):
            raise SinkError("the JSON-lines writer is not keeping up")

    async def aclose(self) -> None:
        self.writer.close()
