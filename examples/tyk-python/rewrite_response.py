"""Response rewriting, Tyk style: wrap the upstream's JSON answer in an envelope.

The Tyk-style version of examples/plugins/rewrite_response.py (a Response hook: five
parameters). Only ``raw_body`` counts (Tyk never reads ``body`` back); the gateway sets
Content-Length. API definition: examples/tyk-python/apps/rewrite-response.json
"""

import json

from tyk.decorators import *  # noqa: F403


@Hook  # noqa: F405
def wrap_response(request, response, session, metadata, spec):
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type:
        return response
    try:
        data = json.loads(response.raw_body)
    except ValueError:
        return response
    envelope = {"data": data, "status": response.status_code, "api": spec["APIID"]}
    response.raw_body = json.dumps(envelope).encode()
    response.headers["X-Rewritten-By"] = "trio-gateway"
    return response
