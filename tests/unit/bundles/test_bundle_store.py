"""Tyk's rules for bundles already on disk, the URL join, and the config keys."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.helpers.bundles import PLUGIN, make_bundle, public_pem, rsa_key
from trio_gateway._bundles.fetch import bundle_url
from trio_gateway._bundles.store import bundle_dir, load_bundle
from trio_gateway._config.load import load_config
from trio_gateway._config.model import BundlesConfig
from trio_gateway.errors import BundleError

BASE = "http://bundles.invalid/"


def install(tmp_path: Path, bundle: bytes, *, tamper: bool) -> BundlesConfig:
    """Put ``bundle`` on disk where the cache keeps ``b.zip`` (optionally with a changed file)."""
    settings = BundlesConfig(middleware_path=str(tmp_path), base_url=BASE)
    folder = bundle_dir(settings.middleware_path, "b.zip")
    folder.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        zf.extractall(folder)
    if tamper:
        (folder / "middleware.py").write_bytes(PLUGIN + b"# changed on disk\n")
    return settings


async def test_existing_unsigned_bundle_is_not_checked(tmp_path: Path) -> None:
    settings = install(tmp_path, make_bundle(), tamper=True)
    loaded = await load_bundle("b.zip", settings)
    assert loaded.manifest.middleware.driver == "python"


async def test_existing_signed_bundle_is_checked(tmp_path: Path) -> None:
    key = rsa_key()
    settings = install(tmp_path, make_bundle(key=key), tamper=True)
    with pytest.raises(BundleError, match="invalid checksum"):
        await load_bundle("b.zip", settings)


async def test_existing_signed_bundle_checks_its_signature_with_a_key(tmp_path: Path) -> None:
    settings = install(tmp_path, make_bundle(key=rsa_key()), tamper=False)
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(rsa_key()))
    settings = BundlesConfig(
        middleware_path=settings.middleware_path, base_url=BASE, public_key_path=str(other)
    )
    with pytest.raises(BundleError, match="crypto/rsa: verification error"):
        await load_bundle("b.zip", settings)


async def test_skip_verify_existing_plugin_bundle_trusts_a_signed_bundle(tmp_path: Path) -> None:
    settings = install(tmp_path, make_bundle(key=rsa_key()), tamper=True)
    settings = BundlesConfig(
        middleware_path=settings.middleware_path, base_url=BASE, skip_verify_existing=True
    )
    await load_bundle("b.zip", settings)


async def test_an_existing_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    folder = bundle_dir(str(tmp_path), "b.zip")
    folder.mkdir(parents=True)
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        await load_bundle("b.zip", BundlesConfig(middleware_path=str(tmp_path), base_url=BASE))


async def test_no_base_url_is_an_error_even_for_a_bundle_on_disk(tmp_path: Path) -> None:
    install(tmp_path, make_bundle(), tamper=False)
    with pytest.raises(BundleError, match="No bundle base URL set, skipping bundle"):
        await load_bundle("b.zip", BundlesConfig(middleware_path=str(tmp_path)))


async def test_unknown_url_scheme(tmp_path: Path) -> None:
    settings = BundlesConfig(
        middleware_path=str(tmp_path), enable_downloader=True, base_url="ftp://h/"
    )
    with pytest.raises(BundleError, match="Unknown URL scheme"):
        await load_bundle("b.zip", settings)


async def test_file_urls_are_read_directly(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "b.zip").write_bytes(make_bundle())
    settings = BundlesConfig(
        middleware_path=str(tmp_path / "mw"),
        enable_downloader=True,
        base_url=(tmp_path / "served").as_uri(),
    )
    loaded = await load_bundle("b.zip", settings)
    assert (loaded.directory / "helpers.py").is_file()


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://h/bundles/", "http://h/bundles/b.zip"),
        ("http://h/bundles", "http://h/bundles/b.zip"),
        ("http://h", "http://h/b.zip"),
        ("https://h/x/?token=1", "https://h/x/b.zip?token=1"),
    ],
)
def test_bundle_url_joins_the_name_to_the_path_as_tyk_does(base: str, url: str) -> None:
    assert bundle_url(base, "b.zip") == url


def test_tyk_conf_and_tyk_variables_set_the_bundle_settings(tmp_path: Path) -> None:
    conf = tmp_path / "tyk.conf"
    conf.write_text(
        json.dumps(
            {
                "enable_bundle_downloader": True,
                "bundle_base_url": "http://bundles/",
                "public_key_path": "/keys/pub.pem",
                "skip_verify_existing_plugin_bundle": True,
                "middleware_path": "/var/tyk/middleware",
            }
        )
    )
    env = {"TYK_GW_BUNDLEINSECURESKIPVERIFY": "true", "TYK_GW_MIDDLEWAREPATH": "/mw"}
    config, _ = load_config(conf, env, {})
    b = config.bundles
    assert (b.enable_downloader, b.base_url, b.public_key_path) == (
        True,
        "http://bundles/",
        "/keys/pub.pem",
    )
    assert (b.skip_verify_existing, b.insecure_skip_verify, b.middleware_path) == (
        True,
        True,
        "/mw",
    )


def test_a_disabled_bundle_is_ignored_and_custom_auth_waits_for_the_manifest() -> None:
    from tests.unit.apidef.apidef_builders import make_classic
    from trio_gateway._apidef.classic import parse_classic

    named = parse_classic(make_classic(custom_middleware_bundle="b.zip"), "x.json")
    assert named.bundle == "b.zip"
    off = make_classic(custom_middleware_bundle="b.zip", custom_middleware_bundle_disabled=True)
    assert parse_classic(off, "x.json").bundle == ""
    # Custom auth on, no auth_check in the API: fine with a bundle (its manifest brings it).
    auth = make_classic(
        use_keyless=False, custom_plugin_auth_enabled=True, custom_middleware_bundle="b.zip"
    )
    assert parse_classic(auth, "x.json").custom_plugin_auth
