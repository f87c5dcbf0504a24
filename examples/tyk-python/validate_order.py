"""Request validation, Tyk style: refuse an order without a JSON body holding ``item`` and a
positive integer ``quantity`` (a Post hook answering 400 itself; the upstream is not called).

The Tyk-style version of examples/plugins/validate_order.py. The answer goes in
``return_overrides``; ``override_error`` sends ``response_body`` as it is instead of Tyk's error
template. API definition: examples/tyk-python/apps/validate-order.json
"""

import json

from tyk.decorators import *  # noqa: F403

MAX_BODY = 64 * 1024


def _answer(request, status, message):
    overrides = request.object.return_overrides
    overrides.response_code = status
    overrides.response_body = json.dumps({"error": message})
    overrides.headers["Content-Type"] = "application/json"
    overrides.override_error = True


@Hook  # noqa: F405
def validate_order(request, session, spec):
    if request.object.method not in ("POST", "PUT"):
        return request, session
    raw = request.object.raw_body
    if len(raw) > MAX_BODY:
        _answer(request, 413, "Request body too large")
        return request, session
    try:
        order = json.loads(raw)
    except ValueError:
        _answer(request, 400, "body must be JSON")
        return request, session
    if not isinstance(order, dict) or "item" not in order:
        _answer(request, 400, "missing field: item")
        return request, session
    quantity = order.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        _answer(request, 400, "quantity must be a positive integer")
    return request, session
