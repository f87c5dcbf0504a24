"""The ``SessionStore`` interface every store implements, and what they share."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from .._ratelimit import LimitResult, Limits
from ..errors import SessionStoreError
from .model import Session

__all__ = ["DATA_PREFIX", "SessionStore", "SessionStoreError", "hash_key"]

#: Where Tyk's plugin data (``tyk.store_data``/``get_data``) lives in the store, as in Tyk.
DATA_PREFIX = "coprocess-data:"


def hash_key(key: str) -> str:
    """The identifier a key is stored under with ``hash_keys`` (SHA-256, hex).

    Tyk defaults to murmur32; any stable hash serves, and SHA-256 is in the standard library and
    does not let a reader of the store recover short keys by enumeration as easily.
    """
    return hashlib.sha256(key.encode()).hexdigest()


class SessionStore(Protocol):
    """Sessions by key, plus the per-request rate-limit and quota counters.

    Keys are stored under :func:`hash_key` of the key when ``hash_keys`` is set; every method takes
    the key as the client sent it. Counters belong to ``(key, limits.bucket)``.
    Quota counters are reset by :meth:`delete_session` and by :meth:`put_session` with
    ``reset_quota`` (as Tyk's admin API does unless ``suppress_reset``); rate-limit windows are
    never reset (they age out), as in Tyk.
    """

    hash_keys: bool

    async def get_session(self, key: str, *, shared: bool = False) -> Session | None:
        """The session (a copy owning its ``meta_data``), with ``quota_remaining`` and
        ``quota_renews`` filled from the key's own quota counter; None if there is none.

        ``shared=True``: the caller only reads the session and hands it to no plugin (an API
        without hooks). The store may then return an object it keeps, without the per-request
        copy, and its ``quota_remaining``/``quota_renews`` may be stale."""
        ...

    async def put_session(
        self, key: str, session: Session, *, reset_quota: bool = True
    ) -> None: ...

    async def delete_session(self, key: str) -> bool:
        """Remove the session and its quota counters; False when there was none."""
        ...

    async def list_keys(self) -> list[str]:
        """Stored identifiers: the keys, or their hashes with ``hash_keys``."""
        ...

    async def update_meta_data(self, key: str, meta_data: dict[str, Any]) -> bool:
        """Replace the stored session's ``meta_data`` (hooks' changes); False if it is gone."""
        ...

    async def consume(self, key: str, limits: Limits, *, now: float) -> LimitResult:
        """Apply rate limit then quota for one request, atomically; ``now`` in unix seconds."""
        ...

    async def store_data(self, key: str, value: bytes, ttl: int) -> None:
        """Tyk's ``store_data``: ``value`` under ``coprocess-data:<key>`` for ``ttl`` seconds
        (0 or less: no expiry). Raises :class:`SessionStoreError` when the store is down."""
        ...

    async def get_data(self, key: str) -> bytes | None:
        """Tyk's ``get_data``: what :meth:`store_data` stored (None: nothing, or expired)."""
        ...

    async def aclose(self) -> None: ...
