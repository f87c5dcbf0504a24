"""Persist the ``meta_data`` changes of native Post-Auth/Post hooks (``meta_data_changed``)."""

from __future__ import annotations

import attrs

from .._pipeline import Exchange
from .._session.store import SessionStoreError
from .services import AuthServices, failure_log

__all__ = ["MetaDataWriter"]


@attrs.define(eq=False, slots=True)
class MetaDataWriter:
    """The pipeline's ``finish`` step on keyed APIs."""

    api_id: str
    services: AuthServices

    async def __call__(self, exchange: Exchange) -> None:
        session = exchange.session
        if not exchange.meta_data_changed or session is None or not exchange.session_key:
            return
        if exchange.session_created:
            # The walk ended before the built-ins stored the new session: nothing to update.
            return
        try:
            await self.services.store.update_meta_data(exchange.session_key, session.meta_data)
        except SessionStoreError as exc:
            # The client's answer is already decided; losing this write is logged, not fatal.
            failure_log.warning(
                (self.api_id, "meta_data", type(exc)),
                f"API {self.api_id}: meta_data change not saved",
                exc,
            )
        exchange.meta_data_changed = False
