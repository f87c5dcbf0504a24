"""The four example plugins as a Tyk gRPC plugin server's handlers (Tyk's coprocess protocol).

The same behaviour as the native Python plugins in ``examples/plugins/``: header injection (Pre),
order validation answering 400 (Post), response rewriting (Response) and custom authentication
(auth_check + a Post hook). ``dispatch`` picks the handler by the hook's name from the API
definition (``examples/grpc/apps/``); ``server.py`` serves it over gRPC.

Every handler edits the ``Object`` it received and sends it back: Tyk applies what comes back, so
an edited echo keeps everything else (the URL, the body) as it was. Pure functions, no I/O: they
are unit-tested without a server (``test_grpc_plugins.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb

Handler = Callable[[pb.Object], pb.Object]


def config_data(obj: pb.Object) -> dict[str, Any]:
    """The API's ``config_data`` (Tyk sends it as JSON text in ``spec``; absent when empty)."""
    raw = obj.spec.get("config_data", "")
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def first_header(headers: Mapping[str, str], name: str) -> str:
    """A header's value from Tyk's header map (its keys are canonical, but do not rely on it)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def refuse(obj: pb.Object, status: int, message: str) -> pb.Object:
    """Stop the request: the client gets Tyk's JSON error, ``{"error": message}``."""
    obj.request.return_overrides.response_code = status
    obj.request.return_overrides.response_error = message
    return obj


# -- header injection (Pre) ----------------------------------------------------------------------


def add_headers(obj: pb.Object) -> pb.Object:
    gateway_name = config_data(obj).get("gateway_name", "trio-gateway")
    obj.request.set_headers["X-Gateway"] = str(gateway_name)
    obj.request.set_headers["X-Api-Id"] = obj.spec.get("APIID", "")
    obj.request.delete_headers.append("X-Internal-Debug")  # never let clients set it
    return obj


# -- order validation (Post) ---------------------------------------------------------------------


def validate_order(obj: pb.Object) -> pb.Object:
    if obj.request.method not in ("POST", "PUT"):
        return obj
    try:
        order = json.loads(obj.request.raw_body)
    except ValueError:
        return refuse(obj, 400, "body must be JSON")
    if not isinstance(order, dict) or "item" not in order:
        return refuse(obj, 400, "missing field: item")
    quantity = order.get("quantity")
    if not isinstance(quantity, int) or quantity < 1:
        return refuse(obj, 400, "quantity must be a positive integer")
    return obj


# -- response rewriting (Response) ---------------------------------------------------------------


def wrap_response(obj: pb.Object) -> pb.Object:
    response = obj.response
    if "json" not in first_header(response.headers, "Content-Type"):
        return obj
    try:
        data = json.loads(response.raw_body)
    except ValueError:
        return obj
    envelope = {"data": data, "status": response.status_code, "api": obj.spec.get("APIID", "")}
    # Tyk reads the body back from raw_body only, and sets Content-Length from it.
    response.raw_body = json.dumps(envelope).encode()
    response.headers["X-Rewritten-By"] = "trio-gateway"
    return obj


# -- custom authentication (auth_check) and tagging the user (Post) ------------------------------


def authenticate(obj: pb.Object) -> pb.Object:
    scheme, _, token = first_header(obj.request.headers, "Authorization").partition(" ")
    users = config_data(obj).get("tokens", {})
    if scheme.lower() != "bearer" or not isinstance(users, dict) or token not in users:
        return refuse(obj, 403, "Key not authorised")
    obj.session.rate = 100
    obj.session.per = 60
    obj.session.metadata["user"] = str(users[token])
    # Tyk keys the session by metadata["token"]; a reply without it is refused (403).
    obj.metadata["token"] = token
    return obj


def tag_user(obj: pb.Object) -> pb.Object:
    """Post hook: pass the authenticated user upstream. (Unlike the native plugin it does not
    note the path in the session: Tyk ignores session changes from gRPC hooks after auth.)"""
    user = obj.session.metadata.get("user", "")
    if not user:
        return obj
    obj.request.set_headers["X-User"] = user
    obj.request.delete_headers.append("Authorization")
    return obj


HANDLERS: dict[str, Handler] = {
    "add_headers": add_headers,
    "validate_order": validate_order,
    "wrap_response": wrap_response,
    "authenticate": authenticate,
    "tag_user": tag_user,
}


def dispatch(obj: pb.Object) -> pb.Object:
    """Run the hook the gateway named; an unknown name passes the request on unchanged."""
    handler = HANDLERS.get(obj.hook_name)
    return obj if handler is None else handler(obj)
