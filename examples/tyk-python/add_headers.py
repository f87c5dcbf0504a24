"""Header injection, Tyk style: tag every request before it reaches the upstream (a Pre hook).

The Tyk-style version of examples/plugins/add_headers.py. API definition:
examples/tyk-python/apps/add-headers.json
"""

import json

from tyk.decorators import *  # noqa: F403 - Tyk's plugins import it this way


@Hook  # noqa: F405
def add_headers(request, session, spec):
    try:
        config = json.loads(spec["config_data"])
    except KeyError:  # no config_data: Tyk leaves the key out
        config = {}
    request.add_header("X-Gateway", str(config.get("gateway_name", "trio-gateway")))
    request.add_header("X-Api-Id", spec["APIID"])
    request.delete_header("X-Internal-Debug")  # never let clients set it
    return request, session
