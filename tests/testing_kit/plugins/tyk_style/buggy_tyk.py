"""Tyk-style Python plugins (``@Hook``), buggy and fixed: the battery covers the driver
without knowing it (tests/testing_kit/test_other_drivers.py)."""

import hashlib
import itertools
import time

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


# 2. a slow path (long URLs) that overruns the hook's deadline (0.2 s in the test's definition)
@Hook  # noqa: F405
def bug_deadlines(request, session, spec):
    if len(request.object.url) > 12:
        time.sleep(0.4)
    return request, session


@Hook  # noqa: F405
def fixed_deadlines(request, session, spec):
    if len(request.object.url) > 12:
        time.sleep(0.01)  # bounded well inside the deadline
    return request, session


# 6. the wrong shape: a Pre hook (three parameters) must return (request, session)
@Hook  # noqa: F405
def bug_stage_writes(request, session, spec):
    request.add_header("X-Served", "yes")
    if request.object.method != "GET":
        return request  # forgot the session
    return request, session


@Hook  # noqa: F405
def fixed_stage_writes(request, session, spec):
    request.add_header("X-Served", "yes")
    return request, session


# 7. custom auth that accepts any Authorization value
@Hook  # noqa: F405
def bug_custom_auth(request, session, metadata, spec):
    token = request.get_header("Authorization")
    if token is not None:
        session.rate = 100
        session.per = 60
        metadata["token"] = token or "anonymous"
    return request, session, metadata


@Hook  # noqa: F405
def fixed_custom_auth(request, session, metadata, spec):
    if request.get_header("Authorization") == "Bearer good-token":
        session.rate = 100
        session.per = 60
        metadata["token"] = "good-token"
    return request, session, metadata


# 8. a Response hook that replaces the body and keeps the upstream's Content-Encoding (the
# gateway sets Content-Length from raw_body, as Tyk does, but the coding is the plugin's word)
@Hook  # noqa: F405
def bug_response_consistency(request, response, session, metadata, spec):
    response.raw_body = b'{"wrapped": true}'
    return response


@Hook  # noqa: F405
def fixed_response_consistency(request, response, session, metadata, spec):
    response.raw_body = b'{"wrapped": true}'
    response.headers.pop("Content-Encoding", None)  # the new body is plain
    return response


# 9. declared deterministic, but the result depends on a counter
_COUNTER = itertools.count()


@Hook  # noqa: F405
def bug_determinism(request, session, spec):
    request.add_header("X-Shard", str(next(_COUNTER) % 4))
    return request, session


@Hook  # noqa: F405
def fixed_determinism(request, session, spec):
    shard = hashlib.sha256(request.object.url.encode()).digest()[0] % 4
    request.add_header("X-Shard", str(shard))
    return request, session


# 10. a module-level "current request" another request overwrites while this one waits
_CURRENT = {}


@Hook  # noqa: F405
def bug_concurrency(request, session, spec):
    _CURRENT["user"] = request.get_header("X-User")
    time.sleep(0.01)
    user = _CURRENT["user"]
    if user:
        request.add_header("X-Seen-User", user)
    return request, session


@Hook  # noqa: F405
def fixed_concurrency(request, session, spec):
    user = request.get_header("X-User")
    time.sleep(0.01)
    if user:
        request.add_header("X-Seen-User", user)
    return request, session
