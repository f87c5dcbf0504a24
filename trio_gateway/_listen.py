"""Opening a listener at start-up, with an error that says which one failed and why.

A bare ``[Errno 98] Address already in use`` does not say which of the gateway's listeners (main,
control API, demo upstream) hit it, nor where to change its address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["GATEWAY_LISTENER", "ListenError", "start_listening"]

#: What the main listener is for, and where its address is set (for messages).
GATEWAY_LISTENER = "the gateway (listen_address/listen_port; --listen)"


class ListenError(OSError):
    """A listener that could not open: its address, what it was for, and the system's reason."""

    def __init__(self, purpose: str, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.purpose = purpose
        self.host = host
        self.port = port
        self.reason = cause.strerror or str(cause)

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"cannot listen on {shown}:{self.port} for {self.purpose}: {self.reason}"


async def start_listening(
    nursery: trio.Nursery,
    serve: Callable[..., Awaitable[Any]],
    host: str,
    port: int,
    purpose: str,
) -> tuple[str, int]:
    """``nursery.start(serve, host, port)``; a bind failure becomes a :class:`ListenError`."""
    try:
        address: tuple[str, int] = await nursery.start(serve, host, port)
    except ListenError:
        raise
    except OSError as exc:
        raise ListenError(purpose, host, port, exc) from exc
    return address
