"""The on-disk bundle cache: ``<middleware_path>/bundles/<md5 of the bundle name>/``.

Tyk's rules (``gateway/coprocess_bundle.go``, v5.14): a bundle directory that exists is used as
it is and never downloaded again, also on reload (ship new code under a new name); it is verified
only if its manifest is signed and ``skip_verify_existing_plugin_bundle`` is off. A fresh bundle
is downloaded, unpacked and fully verified.

Unlike Tyk, a fresh bundle is unpacked into a temporary directory beside the cache and renamed
into place only after it verified, so a failed, interrupted or concurrent download never leaves a
half-written directory that a later start would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric import rsa

from .._config.model import BundlesConfig
from ..errors import BundleError
from .fetch import FetchError, FetchPolicy, bundle_url, fetch_bundle
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    load_public_key,
    parse_manifest,
    verify,
)
from .unpack import UnpackError, UnpackLimits, unpack_zip

__all__ = ["LoadedBundle", "bundle_dir", "load_bundle"]

DOWNLOADER_DISABLED = "Bundle downloader is disabled"
DEFAULT_FETCH_POLICY = FetchPolicy()
DEFAULT_UNPACK_LIMITS = UnpackLimits()


@attrs.frozen(kw_only=True)
class LoadedBundle:
    name: str
    directory: Path
    manifest: Manifest


def bundle_dir(middleware_path: str, name: str) -> Path:
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    return Path(middleware_path).absolute() / "bundles" / digest


def read_listed_files(directory: Path, manifest: Manifest) -> list[bytes]:
    """The bytes of every ``file_list`` entry, in order (blocking)."""
    root = directory.resolve()
    contents = []
    for name in manifest.file_list:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ManifestError(f"file_list names {name!r}, which is not a file in the bundle")
        contents.append(path.read_bytes())
    return contents


def _read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    if path.is_symlink() or not path.is_file():
        raise ManifestError(f"{MANIFEST_NAME} is missing from the bundle")
    return parse_manifest(path.read_bytes())


def _public_key(settings: BundlesConfig) -> rsa.RSAPublicKey | None:
    if not settings.public_key_path:
        return None
    try:
        pem = Path(settings.public_key_path).read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"cannot read public_key_path {settings.public_key_path}: {exc.strerror or exc}"
        ) from None
    return load_public_key(pem)


def _check_existing(directory: Path, settings: BundlesConfig) -> Manifest:
    manifest = _read_manifest(directory)
    if manifest.signed and not settings.skip_verify_existing:
        verify(
            manifest,
            read_listed_files(directory, manifest),
            _public_key(settings),
            fresh=False,
            skip_existing=False,
        )
    return manifest


def _install_fresh(
    archive: Path, staging: Path, final: Path, settings: BundlesConfig, limits: UnpackLimits
) -> Manifest:
    """Unpack, verify, then rename into place (blocking)."""
    unpacked = staging / "unpacked"
    unpacked.mkdir(mode=0o700)
    unpack_zip(archive, unpacked, limits)
    manifest = _read_manifest(unpacked)
    verify(
        manifest,
        read_listed_files(unpacked, manifest),
        _public_key(settings),
        fresh=True,
        skip_existing=settings.skip_verify_existing,
    )
    try:
        os.rename(unpacked, final)
    except OSError:
        # Another process installed it meanwhile: theirs verified too; use it.
        if not final.is_dir():
            raise
        return _check_existing(final, settings)
    return manifest


async def load_bundle(
    name: str,
    settings: BundlesConfig,
    *,
    fetch: FetchPolicy = DEFAULT_FETCH_POLICY,
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
) -> LoadedBundle:
    """The bundle ``name`` ready to use: from the cache, or downloaded. Raises BundleError."""
    final = bundle_dir(settings.middleware_path, name)
    if not settings.base_url:
        # Tyk checks this first, even for a bundle already on disk (``loadSingleBundle``).
        raise BundleError(name, "No bundle base URL set, skipping bundle")
    try:
        if await trio.to_thread.run_sync(final.is_dir):
            manifest = await trio.to_thread.run_sync(_check_existing, final, settings)
            return LoadedBundle(name=name, directory=final, manifest=manifest)
        if not settings.enable_downloader:
            raise BundleError(name, DOWNLOADER_DISABLED)
        url = bundle_url(settings.base_url, name)
        root = final.parent
        await trio.to_thread.run_sync(lambda: root.mkdir(mode=0o700, parents=True, exist_ok=True))
        staging = Path(await trio.to_thread.run_sync(tempfile.mkdtemp, ".tmp", ".", root))
        try:
            archive = staging / "bundle.zip"
            await fetch_bundle(
                url,
                archive,
                insecure_skip_verify=settings.insecure_skip_verify,
                ca_file=settings.ca_file,
                policy=fetch,
            )
            manifest = await trio.to_thread.run_sync(
                _install_fresh, archive, staging, final, settings, limits
            )
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(shutil.rmtree, staging, True)
    except (FetchError, ManifestError, UnpackError) as exc:
        raise BundleError(name, str(exc)) from exc
    except OSError as exc:
        raise BundleError(name, f"{type(exc).__name__}: {exc}") from exc
    return LoadedBundle(name=name, directory=final, manifest=manifest)
