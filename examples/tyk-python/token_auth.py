"""Custom authentication, Tyk style: accept bearer tokens listed in ``config_data``.

The Tyk-style version of examples/plugins/token_auth.py. The auth hook fills the session it is
given and names the key in ``metadata["token"]``; an unknown token gets 403. API definition:
examples/tyk-python/apps/token-auth.json

One difference from the native version, and it is Tyk's rule: a Post hook cannot change the
session (Tyk ignores it), so the visit counter lives in the plugin store (``tyk.store_data``).
"""

import json

from gateway import TykGateway as tyk
from tyk.decorators import *  # noqa: F403


@Hook  # noqa: F405
def authenticate(request, session, metadata, spec):
    header = request.get_header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    users = json.loads(spec["config_data"]).get("tokens", {})
    if scheme.lower() != "bearer" or token not in users:
        overrides = request.object.return_overrides
        overrides.response_code = 403
        overrides.response_body = json.dumps({"error": "Key not authorised"})
        overrides.headers["Content-Type"] = "application/json"
        overrides.override_error = True
        return request, session, metadata
    session.rate = 100
    session.per = 60
    metadata["user"] = users[token]
    metadata["token"] = token
    return request, session, metadata


@Hook  # noqa: F405
def tag_user(request, session, metadata, spec):
    """Post hook: pass the authenticated user upstream and count the visit."""
    user = metadata.get("user", "")
    request.add_header("X-User", user)
    request.delete_header("Authorization")
    key = "visits:" + user
    visits = int(tyk.get_data(key) or b"0") + 1
    tyk.store_data(key, str(visits), 0)
    request.add_header("X-Visits", str(visits))
    return request, session, metadata
