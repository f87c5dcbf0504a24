"""Tyk-style Python plugins (``@Hook``), buggy and fixed: the battery covers the driver
without knowing it (tests/testing_kit/test_other_drivers.py)."""

from tyk.decorators import *  # noqa: F403 - Tyk's plugins import it this way

_LAST = {}


@Hook  # noqa: F405
def bug_no_errors(request, session, spec):
    # A missing header: Tyk's get_header answers None, and None has no split().
    version = request.get_header("User-Agent").split("/")[1]
    request.add_header("X-Client-Version", version)
    return request, session


@Hook  # noqa: F405
def fixed_no_errors(request, session, spec):
    agent = request.get_header("User-Agent") or ""
    request.add_header("X-Client-Version", agent.partition("/")[2])
    return request, session


@Hook  # noqa: F405
def bug_state_isolation(request, session, spec):
    user = request.get_header("X-User")
    if user:
        _LAST["user"] = user
    elif "user" in _LAST:
        request.add_header("X-User", _LAST["user"])
    return request, session


@Hook  # noqa: F405
def fixed_state_isolation(request, session, spec):
    return request, session
