"""How a failed hook is classified and answered, and the one 504 (timeout) answer.

Fail closed (the default): a timeout answers 504 at every stage; an error or an unavailable driver
answers Tyk's 500 ``Middleware error``, or 403 ``Key not authorised`` for custom auth. Fail open:
no answer, the walk goes on without the failing hook (counted and logged by the runner).
Exception text never reaches the client: the answers are fixed. The request's own deadline
passing (in the upstream call, or in a walk without hooks) gets the same 504 as a hook timeout,
from :func:`timeout_response`.
"""

from __future__ import annotations

import enum
import logging

from .._apidef.model import FailureMode, Stage
from .._error_body import error_response
from .._exchange import Response
from .._logsummary import FailureLog
from ..errors import HookError, HookTimeout, PluginDriverError

log = logging.getLogger("trio_gateway")
#: Request timeouts (and, in walk.py, upstream failures): one line per API and cause per interval.
_failure_log = FailureLog(log)


class FailureKind(enum.Enum):
    TIMEOUT = "timeout"
    ERROR = "error"
    UNAVAILABLE = "unavailable"


def classify(exc: Exception) -> FailureKind:
    """A driver's exception as a failure kind (see ``trio_gateway.hooks``)."""
    if isinstance(exc, HookTimeout):
        return FailureKind.TIMEOUT
    if isinstance(exc, PluginDriverError):
        return FailureKind.UNAVAILABLE
    return FailureKind.ERROR


AUTH_FAILED_MESSAGE = "Key not authorised"
#: Tyk's answer when custom auth continues without a session.
NO_SESSION_STATUS, NO_SESSION_MESSAGE = 403, "Forbidden"


def failure_response(kind: FailureKind, stage: Stage, mode: FailureMode) -> Response | None:
    """The client's answer for a failure, or None to continue (fail open)."""
    if mode is FailureMode.OPEN and stage is not Stage.AUTH:
        return None
    if kind is FailureKind.TIMEOUT:
        return timeout_response()
    if stage is Stage.AUTH:
        return error_response(403, AUTH_FAILED_MESSAGE)
    return error_response(HookError.status_hint, HookError.public_message)


def timeout_response() -> Response:
    """The gateway's 504: a hook's deadline or the request's passed (Tyk's message for both)."""
    return error_response(HookTimeout.status_hint, HookTimeout.public_message)


def request_timed_out(api_id: str, timeout: float) -> Response:
    """The answer when the request's own deadline passed; logged (summarised) once per cause."""
    _failure_log.warning((api_id, "timeout"), f"request to API {api_id} timed out after {timeout}s")
    return timeout_response()
