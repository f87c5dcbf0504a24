"""Tyk's coprocess ``SessionState`` ↔ the gateway's ``Session`` (pure)."""

from __future__ import annotations

import json
from typing import Any

from trio_gateway.drivers import AccessDefinition, AllowedUrl, Session

from .proto import coprocess_session_state_pb2 as session_pb

__all__ = ["session_from_proto", "session_to_proto"]


def _meta_string(value: Any) -> str:
    # Tyk keeps string values and JSON-encodes everything else.
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def session_to_proto(session: Session) -> session_pb.SessionState:
    """Our session as the coprocess ``SessionState`` (per-API ``limit`` has no place there)."""
    state = session_pb.SessionState(
        allowance=session.allowance,
        rate=session.rate,
        per=session.per,
        expires=session.expires,
        quota_max=session.quota_max,
        quota_renews=session.quota_renews,
        quota_remaining=session.quota_remaining,
        quota_renewal_rate=session.quota_renewal_rate,
        org_id=session.org_id,
        is_inactive=session.is_inactive,
        tags=session.tags,
        alias=session.alias,
        last_updated=session.last_updated,
        id_extractor_deadline=session.id_extractor_deadline,
        apply_policies=session.apply_policies,
        apply_policy_id=session.apply_policy_id,
    )
    for key, value in session.meta_data.items():
        state.metadata[key] = _meta_string(value)
    for api_id, access in session.access_rights.items():
        entry = state.access_rights[api_id]
        entry.api_name = access.api_name
        entry.api_id = access.api_id
        entry.versions.extend(access.versions)
        for allowed in access.allowed_urls:
            entry.allowed_urls.add(url=allowed.url, methods=allowed.methods)
    return state


def session_from_proto(state: session_pb.SessionState) -> Session:
    """A coprocess ``SessionState`` as our session (``metadata`` values stay strings, as in Tyk)."""
    return Session(
        allowance=state.allowance,
        rate=state.rate,
        per=state.per,
        expires=state.expires,
        quota_max=state.quota_max,
        quota_renews=state.quota_renews,
        quota_remaining=state.quota_remaining,
        quota_renewal_rate=state.quota_renewal_rate,
        org_id=state.org_id,
        is_inactive=state.is_inactive,
        meta_data=dict(state.metadata),
        tags=list(state.tags),
        alias=state.alias,
        last_updated=state.last_updated,
        id_extractor_deadline=state.id_extractor_deadline,
        apply_policies=list(state.apply_policies),
        apply_policy_id=state.apply_policy_id,
        access_rights={
            api_id: AccessDefinition(
                api_name=access.api_name,
                api_id=access.api_id,
                versions=list(access.versions),
                allowed_urls=[
                    AllowedUrl(url=spec.url, methods=list(spec.methods))
                    for spec in access.allowed_urls
                ],
            )
            for api_id, access in state.access_rights.items()
        },
    )
