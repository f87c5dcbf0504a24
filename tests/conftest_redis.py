"""Fixtures giving tests a real redis-server (register in tests/conftest.py).

``redis_server``: one server for the whole session. ``redis_db``: that server, emptied before the
test. ``redis_server_factory``: ``start()`` a private server the test may kill and restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> RedisServer:
    redis_server.flush()
    return redis_server


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[[], RedisServer]]:
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer()
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
