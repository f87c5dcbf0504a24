"""Shared helpers for the test suite.

``client``: a raw HTTP/1.1 client. ``upstream``: programmable test upstreams. Here: writing a
keyless API definition and starting a whole gateway in a test's nursery.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_gateway._app import RunningGateway, serve_gateway
from trio_gateway._config.model import GatewayConfig, LimitsConfig, ListenConfig


def write_keyless_api(
    apps_dir: Path,
    *,
    api_id: str,
    listen_path: str,
    target_url: str,
    strip_listen_path: bool = True,
    **extra: Any,
) -> Path:
    """Write a minimal keyless Tyk Classic definition into ``apps_dir``; returns its path."""
    apps_dir.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": "test",
        "active": True,
        "use_keyless": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "proxy": {
            "listen_path": listen_path,
            "target_url": target_url,
            "strip_listen_path": strip_listen_path,
        },
    }
    document.update(extra)
    path = apps_dir / f"{api_id}.json"
    path.write_text(json.dumps(document))
    return path


async def start_gateway(
    nursery: trio.Nursery,
    apps_dir: Path,
    *,
    config: GatewayConfig | None = None,
    **limits: Any,
) -> RunningGateway:
    """Serve the definitions in ``apps_dir`` on 127.0.0.1 (a free port) in ``nursery``.

    ``limits`` override fields of ``config.limits`` (e.g. ``header_read_timeout=0.2``).
    """
    config = config or GatewayConfig()
    config = attrs.evolve(
        config,
        listen=ListenConfig(host="127.0.0.1", port=0),
        limits=attrs.evolve(config.limits, **limits) if limits else config.limits,
    )
    assert isinstance(config.limits, LimitsConfig)
    running: RunningGateway = await nursery.start(
        functools.partial(serve_gateway, config, apps_dir=apps_dir)
    )
    return running
