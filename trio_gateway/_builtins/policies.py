"""Keys that name Tyk security policies (``apply_policies``): refused until policies are applied.

A Tyk policy rewrites the key's access rights, rate limit and quota when the key is used. We
store the list but do not apply it yet, and a key's own empty ``access_rights`` means "every
API": serving such a key would grant it more than its policies allow. So a session that names a
policy is answered 403 — never more access than the key says.
"""

from __future__ import annotations

from .._session.model import Session
from .decision import CONTINUE, Continue, Respond

__all__ = ["POLICIES_NOT_SUPPORTED", "decide", "named_policies"]

POLICIES_NOT_SUPPORTED = Respond(status=403, message="Access to this API has been disallowed")


def named_policies(session: Session) -> list[str]:
    """The policies a session names: ``apply_policies``, and Tyk's older ``apply_policy_id``."""
    names = [name for name in session.apply_policies if name]
    if session.apply_policy_id and session.apply_policy_id not in names:
        names.append(session.apply_policy_id)
    return names


def decide(session: Session) -> Continue | Respond:
    if session.apply_policies or session.apply_policy_id:
        return POLICIES_NOT_SUPPORTED
    return CONTINUE
