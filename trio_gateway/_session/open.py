"""Open the session store the gateway config asks for (one per gateway, shared by all APIs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .._config.model import StorageConfig
from .._redis.client import RedisClient
from .memory import MemorySessionStore
from .redis import RedisSessionStore
from .store import SessionStore

__all__ = ["open_session_store"]

#: Bound on closing the store at shutdown (it runs shielded).
CLOSE_TIMEOUT = 5.0


def redis_client_for(config: StorageConfig, *, pool_size: int = 8) -> RedisClient:
    """A client for the Redis of the ``storage`` section (it connects on first use)."""
    return RedisClient(
        host=config.host,
        port=config.port,
        db=config.database,
        password=config.password,
        username=config.username,
        pool_size=pool_size,
    )


@asynccontextmanager
async def open_session_store(config: StorageConfig) -> AsyncIterator[SessionStore]:
    """The in-memory store, or the Redis store for ``type = "redis"``.

    Redis is not contacted here: the client connects on first use and reconnects by itself, so a
    gateway starts while Redis is down (keyed APIs answer 503 until it is back).
    """
    store: SessionStore
    if config.type == "redis":
        client = redis_client_for(config)
        store = RedisSessionStore(
            client, hash_keys=config.hash_keys, session_cache_ttl=config.session_cache_ttl
        )
    else:
        store = MemorySessionStore(hash_keys=config.hash_keys)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
            await store.aclose()
