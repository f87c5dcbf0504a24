"""Which built-ins an API runs, decided once at load time (the request path only walks them)."""

from __future__ import annotations

import re

import attrs

from .._apidef.model import ApiDefinition
from .._builtins import api_limit
from .._pipeline import Builtin, Finisher
from ..errors import PluginDriverError
from .checks import ApiRateLimit, KeyChecks
from .custom_auth import ExtractorCache
from .id_extractor import compile_extractor
from .meta_data import MetaDataWriter
from .services import AuthServices
from .token_auth import TokenAuth

__all__ = ["ApiAuth", "build_api_auth"]


@attrs.frozen(kw_only=True)
class ApiAuth:
    """The pipeline slots of one API (see ``ApiPipeline``)."""

    authenticate: Builtin | None = None
    builtins: tuple[Builtin, ...] = ()
    finish: Finisher | None = None

    def is_empty(self) -> bool:
        """True for a keyless API without ``global_rate_limit``: it keeps the fast path."""
        return self.authenticate is None and not self.builtins and self.finish is None


def build_api_auth(api: ApiDefinition, services: AuthServices, listen_prefix: str) -> ApiAuth:
    """The built-ins of ``api``.

    Raises :class:`PluginDriverError` (the API then answers 503) for an ID extractor whose
    regular expression does not compile.
    """
    global_limit: tuple[Builtin, ...] = ()
    wanted = api_limit.api_limits(api)
    if wanted is not None:
        global_limit = (
            ApiRateLimit(
                api_id=api.api_id,
                key=api_limit.api_limit_key(api),
                limits=wanted,
                services=services,
            ),
        )
    if api.use_keyless:
        return ApiAuth(builtins=global_limit)
    finish = MetaDataWriter(api_id=api.api_id, services=services)
    if api.custom_plugin_auth and api.middleware.auth_check is not None:
        try:
            extractor = compile_extractor(api.middleware.id_extractor)
        except re.error as exc:
            raise PluginDriverError(
                f"API {api.api_id!r}: id_extractor regex_expression does not compile: {exc}"
            ) from exc
        checks = KeyChecks(
            api_id=api.api_id,
            org_id=api.org_id,
            listen_prefix=listen_prefix,
            services=services,
            extractor=extractor,
            rate_limit=not api.disable_rate_limit,
            quota=not api.disable_quota,
        )
        cache = (
            ExtractorCache(
                api_id=api.api_id, org_id=api.org_id, extractor=extractor, services=services
            )
            if extractor is not None
            else None
        )
        return ApiAuth(authenticate=cache, builtins=(checks, *global_limit), finish=finish)
    # Without hooks nobody sees the session or changes its meta_data: no copy, nothing to write.
    hookless = api.middleware.is_empty()
    checks = KeyChecks(
        api_id=api.api_id,
        org_id=api.org_id,
        listen_prefix=listen_prefix,
        services=services,
        stable_sessions=hookless,
        rate_limit=not api.disable_rate_limit,
        quota=not api.disable_quota,
    )
    return ApiAuth(
        authenticate=TokenAuth(
            api_id=api.api_id, location=api.auth, services=services, shared_session=hookless
        ),
        builtins=(checks, *global_limit),
        finish=None if hookless else finish,
    )
