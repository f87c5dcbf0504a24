"""Tyk plugin bundles end to end: a real gateway, a real bundle server (HTTP and HTTPS with
trustme certificates), real RSA keys. Every bad bundle makes only its own API answer 503."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trustme

from tests.helpers import start_gateway, write_keyless_api
from tests.helpers.bundles import (
    HELPERS,
    PLUGIN,
    Setup,
    bundle_saying,
    bundles_config,
    make_bundle,
    public_pem,
    rsa_key,
    sent_headers,
    serve,
    setup,
    write_apis,
)
from tests.helpers.client import fetch
from tests.helpers.upstream import tls_server_context, write_ca_file
from trio_gateway._app import RunningGateway


@pytest.fixture(autouse=True)
def _short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five attempts with Tyk's backoff take 7.5 s; the count and the cap are what we check."""
    from trio_gateway._bundles.fetch import FetchPolicy

    fast = FetchPolicy(first_backoff=0.01, max_backoff=0.02)
    monkeypatch.setattr("trio_gateway._bundles.apply.FETCH_POLICY", fast)


async def assert_refused(gw: RunningGateway, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    """The bundled API answers 503 (JSON), the other one serves, one log line says why."""
    broken = await fetch(gw.address, "GET", "/bundled/x")
    assert broken.status == 503
    assert broken.header("content-type") == b"application/json"
    assert "error" in broken.json()
    assert reason not in broken.body.decode()  # the reason is for the log, not the client
    fine = await fetch(gw.address, "GET", "/plain/x")
    assert fine.status == 200
    lines = [r.getMessage() for r in caplog.records if "will answer 503" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "bundled" in lines[0]
    assert "b.zip" in lines[0]
    assert reason in lines[0]


# -- bundles that load ---------------------------------------------------------------------------


async def test_a_bundle_over_http_runs_its_hooks_with_its_helper_module(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    s.server.files["b.zip"] = make_bundle()
    gw = await serve(nursery, s, "b.zip")
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert response.status == 200
    assert sent_headers(response.body)["x-bundle"] == "from-bundle"
    # Cached where Tyk keeps it, files 0600 and directories 0700.
    digest = hashlib.md5(b"b.zip").hexdigest()
    folder = tmp_path / "middleware" / "bundles" / digest
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "middleware.py").stat().st_mode) == 0o600


async def test_a_signed_bundle_over_https_with_trustme_certificates(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    ca = trustme.CA()
    s = await setup(nursery, tmp_path, tls=tls_server_context(ca))
    key = rsa_key()
    key_path = tmp_path / "public.pem"
    key_path.write_bytes(public_pem(key))
    s.server.files["b.zip"] = make_bundle(key=key)
    config = bundles_config(
        s, public_key_path=str(key_path), ca_file=str(write_ca_file(ca, tmp_path))
    )
    gw = await serve(nursery, s, "b.zip", config)
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert response.status == 200
    assert sent_headers(response.body)["x-bundle"] == "from-bundle"


async def test_https_with_an_unknown_certificate_is_refused(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await setup(nursery, tmp_path, tls=tls_server_context(trustme.CA()))
    s.server.files["b.zip"] = make_bundle()
    policy_fast = bundles_config(s)
    gw = await serve(nursery, s, "b.zip", policy_fast)
    await assert_refused(gw, caplog, "CERTIFICATE_VERIFY_FAILED")


async def test_custom_auth_may_come_from_the_manifest_alone(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    plugin = b"""
from trio_gateway.hooks import Respond, Session

async def check(ctx):
    if ctx.request.get_header("Authorization") != "let-me-in":
        return Respond(status=403, body="no")
    ctx.set_session("let-me-in", Session(rate=100, per=60))
"""
    s.server.files["auth.zip"] = make_bundle(
        {"middleware.py": plugin},
        middleware={"driver": "python", "auth_check": {"name": "check"}},
    )
    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id="auth",
        listen_path="/auth/",
        target_url=s.upstream_url,
        use_keyless=False,
        custom_plugin_auth_enabled=True,
        custom_middleware_bundle="auth.zip",
    )
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    assert (await fetch(gw.address, "GET", "/auth/x")).status == 403
    ok = await fetch(gw.address, "GET", "/auth/x", [("Authorization", "let-me-in")])
    assert ok.status == 200


async def test_oas_plugin_config_bundle_is_read(nursery: trio.Nursery, tmp_path: Path) -> None:
    s = await setup(nursery, tmp_path)
    s.server.files["b.zip"] = make_bundle()
    apps = tmp_path / "apps"
    apps.mkdir()
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "oas", "version": "1"},
        "paths": {},
        "x-tyk-api-gateway": {
            "info": {"id": "oas", "name": "oas", "state": {"active": True}},
            "upstream": {"url": s.upstream_url},
            "server": {"listenPath": {"value": "/oas/", "strip": True}},
            "middleware": {
                "global": {"pluginConfig": {"bundle": {"enabled": True, "path": "b.zip"}}}
            },
        },
    }
    (apps / "oas.json").write_text(json.dumps(doc))
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    response = await fetch(gw.address, "GET", "/oas/x")
    assert response.status == 200
    assert sent_headers(response.body)["x-bundle"] == "from-bundle"


def serve_two_bundles(s: Setup) -> Path:
    """APIs ``one`` and ``two`` name bundles whose ``helpers.py`` answer differently."""
    s.server.files["one.zip"] = make_bundle()
    s.server.files["two.zip"] = bundle_saying("two")
    apps = s.tmp / "apps"
    for name in ("one", "two"):
        write_keyless_api(
            apps,
            api_id=name,
            listen_path=f"/{name}/",
            target_url=s.upstream_url,
            custom_middleware_bundle=f"{name}.zip",
        )
    return apps


async def test_two_bundles_with_the_same_module_names_never_share_modules(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    apps = serve_two_bundles(s)
    import sys

    path_before = list(sys.path)
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    one = await fetch(gw.address, "GET", "/one/x")
    two = await fetch(gw.address, "GET", "/two/x")
    assert sent_headers(one.body)["x-bundle"] == "from-bundle"
    assert sent_headers(two.body)["x-bundle"] == "two"
    assert sys.path == path_before
    assert "helpers" not in sys.modules
    assert "middleware" not in sys.modules


async def test_a_new_bundle_name_is_fetched_on_reload_and_an_existing_one_never_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    s.server.files["v1.zip"] = make_bundle()
    s.server.files["v2.zip"] = bundle_saying("v2")
    apps = write_apis(s, "v1.zip")
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    assert gw.control is not None
    write_apis(s, "v2.zip")
    assert (await gw.control.reloader.reload()).ok
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert sent_headers(response.body)["x-bundle"] == "v2"
    # Back to v1: already on disk, so it is not downloaded again (Tyk's rule), even if the
    # server now has other content under that name.
    s.server.files["v1.zip"] = b"changed"
    write_apis(s, "v1.zip")
    assert (await gw.control.reloader.reload()).ok
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert sent_headers(response.body)["x-bundle"] == "from-bundle"
    assert s.server.requests_for("v1.zip") == 1
    assert s.server.requests_for("v2.zip") == 1
    # The replaced plugins were closed: only the serving bundle's modules are still imported.
    await trio.testing.wait_all_tasks_blocked()
    assert loaded_plugin_files(tmp_path) == {"v1.zip": ["helpers.py", "middleware.py"]}


def loaded_plugin_files(root: Path) -> dict[str, list[str]]:
    """Bundle name -> plugin files of it in sys.modules (bundles cached under ``root``)."""
    import sys

    names = {hashlib.md5(n.encode()).hexdigest(): n for n in ("v1.zip", "v2.zip")}
    found: dict[str, list[str]] = {}
    for module in list(sys.modules.values()):
        file = Path(getattr(module, "__file__", None) or "/")
        if file.is_relative_to(root) and file.parent.name in names:
            found.setdefault(names[file.parent.name], []).append(file.name)
    return {name: sorted(files) for name, files in found.items()}


async def test_a_bundle_already_on_disk_loads_with_the_downloader_off(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    s = await setup(nursery, tmp_path)
    s.server.files["b.zip"] = make_bundle()
    first = await serve(nursery, s, "b.zip")
    first.shutdown()
    gw = await serve(nursery, s, "b.zip", bundles_config(s, enable_downloader=False))
    assert (await fetch(gw.address, "GET", "/bundled/x")).status == 200
    assert s.server.requests_for("b.zip") == 1


# -- bad bundles: only their API answers 503 -------------------------------------------------------


def zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return out.getvalue()


def manifest_for(files: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "file_list": list(files),
            "custom_middleware": {"driver": "python", "pre": [{"name": "tag"}]},
            "checksum": hashlib.md5(b"".join(files.values())).hexdigest(),
            "signature": "",
        }
    ).encode()


def symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    info.create_system = 3
    return info


async def refused(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bundle: bytes | None,
    reason: str,
    **config: Any,
) -> Setup:
    caplog.set_level(logging.ERROR, logger="trio_gateway")
    s = await setup(nursery, tmp_path)
    if bundle is not None:
        s.server.files["b.zip"] = bundle
    key: Any = config.pop("key", None)
    if key is not None:
        key_path = tmp_path / "public.pem"
        key_path.write_bytes(public_pem(key))
        config["public_key_path"] = str(key_path)
    gw = await serve(nursery, s, "b.zip", bundles_config(s, **config))
    await assert_refused(gw, caplog, reason)
    # Nothing half-written is left for a later start to trust.
    assert not (tmp_path / "middleware" / "bundles" / hashlib.md5(b"b.zip").hexdigest()).exists()
    return s


async def test_unsigned_bundle_with_a_key_configured(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await refused(nursery, tmp_path, caplog, make_bundle(), "Bundle isn't signed", key=rsa_key())


async def test_wrong_checksum(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await refused(nursery, tmp_path, caplog, make_bundle(checksum="0" * 32), "invalid checksum")


async def test_bad_signature(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(key=rsa_key())  # signed with another key than the configured one
    await refused(
        nursery, tmp_path, caplog, bundle, "crypto/rsa: verification error", key=rsa_key()
    )


async def test_tampered_file(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = rsa_key()
    good = make_bundle(key=key)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        manifest = zf.read("manifest.json")
    tampered = zip_with(
        [
            ("middleware.py", PLUGIN + b"\nEVIL = 1\n"),
            ("helpers.py", HELPERS),
            ("manifest.json", manifest),
        ]
    )
    await refused(nursery, tmp_path, caplog, tampered, "invalid checksum", key=key)


async def test_zip_slip_entry(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"middleware.py": PLUGIN}
    bundle = zip_with(
        [("middleware.py", PLUGIN), ("../escaped.py", b"x"), ("manifest.json", manifest_for(files))]
    )
    await refused(nursery, tmp_path, caplog, bundle, "'..' would leave the bundle directory")
    assert not (tmp_path / "middleware" / "bundles" / "escaped.py").exists()


async def test_symlink_entry(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"middleware.py": PLUGIN}
    bundle = zip_with(
        [
            (symlink_entry("helpers.py", "/etc/passwd"), b"/etc/passwd"),
            ("middleware.py", PLUGIN),
            ("manifest.json", manifest_for(files)),
        ]
    )
    await refused(nursery, tmp_path, caplog, bundle, "symbolic links are not allowed")


async def test_zip_bomb(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"middleware.py": PLUGIN}
    bundle = zip_with(
        [
            ("middleware.py", PLUGIN),
            ("padding.bin", bytes(50 * 1024 * 1024)),  # ~50 KiB compressed, 50 MiB unpacked
            ("manifest.json", manifest_for(files)),
        ]
    )
    await refused(nursery, tmp_path, caplog, bundle, "compression ratio over")


async def test_missing_manifest(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = zip_with([("middleware.py", PLUGIN)])
    await refused(nursery, tmp_path, caplog, bundle, "manifest.json is missing from the bundle")


async def test_manifest_without_hooks(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(middleware={"driver": "python"})
    await plugin_refused(nursery, tmp_path, caplog, bundle, "No hooks defined")


async def test_manifest_without_driver(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(middleware={"pre": [{"name": "tag"}]})
    await plugin_refused(nursery, tmp_path, caplog, bundle, "No driver specified")


async def plugin_refused(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bundle: bytes,
    reason: str,
) -> None:
    """The bundle itself is fine (it stays cached); loading its plugin fails."""
    caplog.set_level(logging.ERROR, logger="trio_gateway")
    s = await setup(nursery, tmp_path)
    s.server.files["b.zip"] = bundle
    gw = await serve(nursery, s, "b.zip")
    await assert_refused(gw, caplog, reason)


async def test_hook_name_not_in_the_module(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(middleware={"driver": "python", "pre": [{"name": "nowhere"}]})
    await plugin_refused(nursery, tmp_path, caplog, bundle, "has no function 'nowhere'")


async def test_module_raising_at_import(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle({"middleware.py": b"raise RuntimeError('boom at import')\n"})
    await plugin_refused(nursery, tmp_path, caplog, bundle, "RuntimeError: boom at import")


@pytest.mark.parametrize("status", [404, 500])
async def test_server_error_status(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    s = await setup(nursery, tmp_path)
    s.server.status["b.zip"] = status
    caplog.set_level(logging.ERROR, logger="trio_gateway")
    gw = await serve(nursery, s, "b.zip")
    await assert_refused(gw, caplog, f"HTTP Error, got status code {status}")
    assert s.server.requests_for("b.zip") == 5


async def test_downloader_disabled(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await refused(
        nursery,
        tmp_path,
        caplog,
        make_bundle(),
        "Bundle downloader is disabled",
        enable_downloader=False,
    )
    assert s.server.requests_for("b.zip") == 0


async def test_a_server_that_never_answers_is_bounded(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trio_gateway._bundles.fetch import FetchPolicy

    monkeypatch.setattr(
        "trio_gateway._bundles.apply.FETCH_POLICY",
        FetchPolicy(attempt_timeout=0.2, attempts=2, first_backoff=0.01),
    )
    s = await setup(nursery, tmp_path)
    s.server.hang.add("b.zip")
    caplog.set_level(logging.ERROR, logger="trio_gateway")
    with trio.fail_after(10):
        gw = await serve(nursery, s, "b.zip")
    await assert_refused(gw, caplog, "no answer within 0.2s")
    assert s.server.requests_for("b.zip") == 2


async def test_the_total_deadline_bounds_every_download(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    from trio_gateway._apidef.classic import parse_classic
    from trio_gateway._bundles.apply import resolve_bundles

    s = await setup(nursery, tmp_path)
    s.server.hang.add("b.zip")
    apps = write_apis(s, "b.zip")
    apis = [parse_classic(json.loads(p.read_text()), str(p)) for p in sorted(apps.iterdir())]
    with trio.fail_after(10):
        resolved = await resolve_bundles(apis, bundles_config(s).bundles, deadline=0.3)
    assert resolved.failures == {"bundled": "plugin bundle 'b.zip': not fetched within 0.3s"}
    assert [a.api_id for a in resolved.apis] == ["bundled", "plain"]


async def test_bundles_of_different_apis_download_at_the_same_time(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_gateway._bundles.fetch import FetchPolicy

    # One attempt each: fetched one after the other, the first would wait for the second forever.
    monkeypatch.setattr(
        "trio_gateway._bundles.apply.FETCH_POLICY", FetchPolicy(attempt_timeout=5, attempts=1)
    )
    s = await setup(nursery, tmp_path)
    apps = serve_two_bundles(s)
    s.server.together = {"one.zip", "two.zip"}
    gw = await start_gateway(nursery, apps, config=bundles_config(s))
    assert (
        sent_headers((await fetch(gw.address, "GET", "/one/x")).body)["x-bundle"] == "from-bundle"
    )
    assert sent_headers((await fetch(gw.address, "GET", "/two/x")).body)["x-bundle"] == "two"
