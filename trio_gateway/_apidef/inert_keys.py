"""The inventory of Tyk's API definition keys that need no refusal row: the lists that let a test
prove every key Tyk has is read by a parser, refused or warned about by a row of
:data:`unsupported.FEATURES`, or harmless to ignore (with the reason).

Data only; nothing on the request path reads it. Split from ``unsupported.py`` (one job each:
that module decides what to refuse, this one accounts for the rest).
"""

from __future__ import annotations

__all__ = ["CLASSIC_INERT_KEYS", "OAS_INERT_KEYS", "OAS_READ_KEYS", "TYK_OAS_KEYS"]

#: Classic top-level keys that need no row in ``unsupported.FEATURES``: ignoring them changes
#: nothing a client or an upstream can notice here (metadata, settings of a feature that is
#: refused when switched on, or an analytics setting while no analytics are recorded). Key -> why.
#: A test checks that every key Tyk's ``APIDefinition`` has is read by the parser, has a row, or
#: is listed here.
CLASSIC_INERT_KEYS: dict[str, str] = {
    "_id": "metadata (Mongo/Dashboard record id)",
    "id": "metadata (Dashboard record id)",
    "slug": "metadata",
    "is_oas": "format marker (the OAS half of a pair is loaded instead)",
    "definition": "versioning settings; versioned APIs are refused (version_data)",
    "disable_expire_analytics": "analytics: records always carry expireAt",
    "expiration_ts": "derived from expiration",
    "error_overrides_disabled": "switch of custom error responses",
    "upstream_certificates_disabled": "switch of upstream client certificates",
    "session_lifetime_respects_key_expiration": "setting of session lifetimes",
    "ip_access_control_disabled": "switch of the IP lists, which are refused when on",
    "allowed_ips": "setting of the IP allow list (refused when on)",
    "blacklisted_ips": "setting of the IP deny list (refused when on)",
    "basic_auth": "setting of basic auth (refused when on)",
    "hmac_allowed_algorithms": "setting of HMAC signatures (refused when on)",
    "hmac_allowed_clock_skew": "setting of HMAC signatures (refused when on)",
    "oauth_meta": "setting of OAuth2 (refused when on)",
    "notifications": "setting of OAuth2 (refused when on)",
    "openid_options": "setting of OpenID Connect (refused when on)",
    "client_certificates": "setting of mutual TLS (refused when on)",
    "scopes": "setting of JWT/OIDC scopes (refused when on)",
    "idp_client_id_mapping_disabled": "setting of JWT (refused when on)",
    "auth_provider": "legacy auth provider settings; token auth uses the session store",
    "session_provider": "legacy session provider settings; the store is the gateway's",
    "security_requirements": "combines several auth methods; all but token/custom auth refused",
    "security_requirement_scopes": "setting of security_requirements",
    "security_processing_mode": "setting of security_requirements",
    **{
        key: "setting of JWT (refused when on)"
        for key in (
            "jwt_signing_method",
            "jwt_source",
            "jwt_identity_base_field",
            "jwt_client_base_field",
            "jwt_policy_field_name",
            "jwt_default_policies",
            "jwt_issued_at_validation_skew",
            "jwt_expires_at_validation_skew",
            "jwt_not_before_validation_skew",
            "jwt_skip_kid",
            "jwt_scope_to_policy_mapping",
            "jwt_scope_claim_name",
            "jwt_jwks_uris",
            "jwt_source_uris",
        )
    },
}

#: The Tyk OAS counterpart for the sections of ``x-tyk-api-gateway`` that carry behaviour: every
#: key Tyk's ``oas.Server``, ``oas.Upstream`` and ``oas.Global`` structs have (apidef/oas at
#: commit 31e219be) is read by the parser, has a row in ``FEATURES``, or is listed here with the
#: reason.
OAS_READ_KEYS: dict[str, frozenset[str]] = {
    "server": frozenset({"listenPath", "authentication", "customDomain", "detailedActivityLogs"}),
    "upstream": frozenset({"url", "rateLimit", "preserveHostHeader"}),
    "middleware.global": frozenset(
        {
            "pluginConfig",
            "prePlugin",
            "prePlugins",
            "postAuthenticationPlugin",
            "postAuthenticationPlugins",
            "postPlugin",
            "postPlugins",
            "responsePlugin",
            "responsePlugins",
            "skipRateLimit",
            "skipQuota",
            "trafficLogs",
        }
    ),
}
OAS_INERT_KEYS: dict[str, str] = {
    "server.gatewayTags": "node segmentation; every API in the folder is served",
    "middleware.global.skipQuotaReset": "admin API behaviour on key updates",
}
#: The keys of those structs in Tyk (for the test that keeps the three lists complete).
TYK_OAS_KEYS: dict[str, frozenset[str]] = {
    "server": frozenset(
        """listenPath authentication clientCertificates gatewayTags customDomain
        detailedActivityLogs detailedTracing eventHandlers ipAccessControl batchProcessing
        protocol port""".split()
    ),
    "upstream": frozenset(
        """url serviceDiscovery uptimeTests mutualTLS certificatePinning rateLimit authentication
        loadBalancing preserveHostHeader preserveTrailingSlash tlsTransport proxy
        enforceTimeout""".split()
    ),
    "middleware.global": frozenset(
        """pluginConfig cors prePlugin prePlugins postAuthenticationPlugin
        postAuthenticationPlugins postPlugin postPlugins responsePlugin responsePlugins cache
        transformRequestHeaders transformResponseHeaders contextVariables trafficLogs
        requestSizeLimit ignoreCase skipRateLimit skipQuota skipQuotaReset""".split()
    ),
}
