"""Key expiry (Tyk's ``KeyExpired``): an inactive key first, then an expired one."""

from __future__ import annotations

from .._session.model import Session
from .decision import CONTINUE, Continue, Respond

__all__ = ["KEY_EXPIRED", "KEY_INACTIVE", "decide"]

KEY_INACTIVE = Respond(status=403, message="Key is inactive, please renew")
KEY_EXPIRED = Respond(status=401, message="Key has expired, please renew")


def decide(session: Session, now: float) -> Continue | Respond:
    """``expires`` is unix seconds; 0 (or less) means never."""
    if session.is_inactive:
        return KEY_INACTIVE
    if session.expires >= 1 and now > session.expires:
        return KEY_EXPIRED
    return CONTINUE
