"""Tyk plugin bundles for tests, made independently of ``trio_gateway._bundles`` (hashlib and
cryptography directly), and a real HTTP(S) server that serves them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trio_gateway._app import RunningGateway
from trio_gateway._config.model import BundlesConfig, GatewayConfig

from . import start_gateway, write_keyless_api
from .upstream import RawUpstream, ReceivedRequest, Reply, start_upstream

PLUGIN = b"""
from helpers import header_value


async def tag(ctx):
    ctx.request.set_header("X-Bundle", header_value())
"""
HELPERS = b'def header_value():\n    return "from-bundle"\n'
MIDDLEWARE = {"driver": "python", "pre": [{"name": "tag", "path": "middleware.py"}]}


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_bundle(
    files: Mapping[str, bytes] | None = None,
    *,
    middleware: Mapping[str, Any] | None = None,
    key: rsa.RSAPrivateKey | None = None,
    checksum: str | None = None,
    signature: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> bytes:
    """A bundle zip: ``files`` (all in ``file_list``) then ``manifest.json``, Tyk's layout."""
    if files is None:
        files = {"middleware.py": PLUGIN, "helpers.py": HELPERS}
    data = b"".join(files.values())
    doc: dict[str, Any] = {
        "file_list": list(files),
        "custom_middleware": dict(middleware if middleware is not None else MIDDLEWARE),
        "checksum": checksum if checksum is not None else hashlib.md5(data).hexdigest(),
        "signature": "",
    }
    if key is not None:
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        doc["signature"] = base64.b64encode(raw).decode()
    if signature is not None:
        doc["signature"] = signature
    if manifest is not None:
        doc = dict(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        zf.writestr("manifest.json", json.dumps(doc))
    return out.getvalue()


def bundle_saying(value: str) -> bytes:
    """The default bundle, its ``helpers.header_value()`` returning ``value``."""
    helpers = f"def header_value():\n    return {value!r}\n".encode()
    return make_bundle({"middleware.py": PLUGIN, "helpers.py": helpers})


@attrs.define(eq=False)
class BundleServer:
    """Serves ``files`` by path; ``status`` overrides per path; ``hang`` paths never answer."""

    upstream: RawUpstream
    files: dict[str, bytes] = attrs.field(factory=dict)
    status: dict[str, int] = attrs.field(factory=dict)
    hang: set[str] = attrs.field(factory=set)
    #: Requests for these names are answered only once all of them have arrived (so they are
    #: served only if the gateway fetches them at the same time).
    together: set[str] = attrs.field(factory=set)
    _arrived: set[str] = attrs.field(factory=set)
    _all_arrived: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return self.upstream.url + "/bundles/"

    def requests_for(self, name: str) -> int:
        return sum(1 for r in self.upstream.requests if r.target == f"/bundles/{name}".encode())


async def start_bundle_server(nursery: trio.Nursery, *, tls: Any = None) -> BundleServer:
    server = BundleServer(upstream=RawUpstream(tls=tls))

    async def respond(request: ReceivedRequest, reply: Reply) -> None:
        name = request.target.decode().removeprefix("/bundles/")
        if name in server.hang:
            await trio.sleep_forever()
        if name in server.together:
            server._arrived.add(name)
            if server._arrived >= server.together:
                server._all_arrived.set()
            await server._all_arrived.wait()
        if name in server.status:
            await reply.respond(server.status[name], body=b"no")
        elif name in server.files:
            await reply.respond(200, [(b"Content-Type", b"application/zip")], server.files[name])
        else:
            await reply.respond(404, body=b"not found")

    server.upstream.responder = respond
    await nursery.start(server.upstream.serve)
    return server


@attrs.define
class Setup:
    tmp: Path
    server: BundleServer
    upstream_url: str
    key_path: Path | None = None


async def setup(nursery: trio.Nursery, tmp_path: Path, *, tls: Any = None) -> Setup:
    server = await start_bundle_server(nursery, tls=tls)
    upstream = await start_upstream(nursery)
    return Setup(tmp=tmp_path, server=server, upstream_url=upstream.url)


def bundles_config(s: Setup, **extra: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "enable_downloader": True,
        "base_url": s.server.url,
        "middleware_path": str(s.tmp / "middleware"),
    }
    settings.update(extra)
    return GatewayConfig(bundles=BundlesConfig(**settings))


def write_apis(s: Setup, bundle: str) -> Path:
    """API ``bundled`` names ``bundle``; API ``plain`` has none (it must keep serving)."""
    apps = s.tmp / "apps"
    write_keyless_api(
        apps,
        api_id="bundled",
        listen_path="/bundled/",
        target_url=s.upstream_url,
        custom_middleware_bundle=bundle,
    )
    write_keyless_api(apps, api_id="plain", listen_path="/plain/", target_url=s.upstream_url)
    return apps


def sent_headers(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


async def serve(
    nursery: trio.Nursery, s: Setup, bundle: str, config: GatewayConfig | None = None
) -> RunningGateway:
    return await start_gateway(nursery, write_apis(s, bundle), config=config or bundles_config(s))
