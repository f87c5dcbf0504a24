"""Tyk's built-in auth and limit middleware as pure decisions, one module each.

Tyk's order (``tyk-compat.md`` §1.2): token auth (``token``), key expiry (``key_expiry``), access
rights then granular access (``access_rights``), rate limit and quota (``limits``); the API-wide
``global_rate_limit`` (``api_limit``) comes after and applies to keyless APIs too. Each module's
``decide*`` returns :class:`~.decision.Continue` or :class:`~.decision.Respond`; the store calls
in between (key lookup, ``consume``) belong to the pipeline.
"""
