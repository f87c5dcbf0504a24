"""Benchmark variant ``js-virtual``: a JavaScript virtual endpoint answering small JSON (issue 15).

The gateway answers every request itself from a Tyk virtual endpoint (``extended_paths.virtual``,
driver ``otto``): one engine call per request on the API's VM, no upstream. Target: >= 0.5x the
keyless gateway's requests/s in the same run (``RATIO_TARGETS`` in ``variants.py``).
"""

from __future__ import annotations

import json

from variants import GatewaySetup, VariantContext, keyless_api, write_apps

_SCRIPT = """\
function benchVirtual(request, session, config) {
    return TykJsResponse({
        Body: JSON.stringify({status: "ok", api: config.APIID}),
        Headers: {"Content-Type": "application/json"},
        Code: 200
    }, session.meta_data);
}
"""


def js_virtual(ctx: VariantContext) -> GatewaySetup:
    """A keyless API whose "/" is a JavaScript virtual endpoint answering ~30 bytes of JSON."""
    script = ctx.workdir / "virtual.js"
    script.write_text(_SCRIPT)
    virtual = {
        "path": "/",
        "method": "GET",
        "response_function_name": "benchVirtual",
        "function_source_type": "file",
        "function_source_uri": str(script),
        "use_session": False,
        "proxy_on_error": False,
    }
    versions = {"Default": {"name": "Default", "extended_paths": {"virtual": [virtual]}}}
    api = keyless_api(
        "bench-js-virtual",
        ctx.upstream_url,
        version_data={"not_versioned": True, "versions": versions},
        custom_middleware={"driver": "otto"},
    )
    config = ctx.workdir / "tyk.conf"
    config.write_text(json.dumps({"enable_jsvm": True}))
    return GatewaySetup(apps_dir=write_apps(ctx, api), config_file=config)
