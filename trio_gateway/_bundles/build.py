"""``trio-gateway bundle build`` / ``verify``: Tyk's bundler, same layout and rules.

Tyk's ``tyk bundle build`` (``cli/bundler/bundler.go``, v5.14): reads the manifest, refuses a
``file_list`` entry that does not exist (``Referencing a nonexistent file``), a manifest without
hooks (``No hooks defined``) or without a driver (``No driver specified``); fills in the MD5
checksum and, with a private key, the signature; writes a zip holding the ``file_list`` files in
order and then ``manifest.json``. A zip built here loads in Tyk, and Tyk's load here.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    checksum_of,
    load_private_key,
    load_public_key,
    parse_manifest,
    sign,
    verify,
)
from .unpack import UnpackError, _safe_name

__all__ = ["BuildError", "build_bundle", "verify_bundle"]

_T = TypeVar("_T")


class BuildError(Exception):
    """Why a bundle cannot be built or does not verify (Tyk's message where it has one)."""


def _read(path: Path, parse: Callable[[bytes], _T]) -> _T:
    """``parse`` over the file's bytes, every failure a BuildError naming the file."""
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ManifestError as exc:
        raise BuildError(str(exc)) from None


def _check_buildable(manifest: Manifest, base: Path) -> list[bytes]:
    contents = []
    for name in manifest.file_list:
        path = base / name
        if not path.is_file():
            raise BuildError(f"Referencing a nonexistent file: {name}")
        contents.append(path.read_bytes())
    if manifest.middleware.is_empty():
        raise BuildError("No hooks defined")
    if not manifest.middleware.driver:
        raise BuildError("No driver specified")
    return contents


def build_bundle(manifest_path: Path, output: Path, private_key: Path | None) -> Manifest:
    """Write the bundle zip; returns the manifest as written. Raises BuildError."""
    manifest = _read(manifest_path, parse_manifest)
    base = manifest_path.parent
    contents = _check_buildable(manifest, base)
    raw = dict(manifest.raw)
    raw["checksum"] = checksum_of(contents)
    raw["signature"] = ""
    if private_key is not None:
        raw["signature"] = sign(contents, _read(private_key, load_private_key))
    tmp = output.with_name(output.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in zip(manifest.file_list, contents, strict=True):
            zf.writestr(name, data)
        zf.writestr(MANIFEST_NAME, json.dumps(raw, indent=2).encode())
    os.chmod(tmp, 0o755)  # Tyk writes the bundle 0755
    os.replace(tmp, output)
    return parse_manifest(json.dumps(raw).encode())


def verify_bundle(archive: Path, public_key: Path | None) -> Manifest:
    """Check a bundle zip as Tyk checks a fresh download. Raises BuildError."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"{archive}: not a zip archive: {exc}") from None
    with zf:
        try:
            for info in zf.infolist():
                _safe_name(info.filename)
            names = set(zf.namelist())
            if MANIFEST_NAME not in names:
                raise BuildError(f"{MANIFEST_NAME} is missing from the bundle")
            manifest = parse_manifest(zf.read(MANIFEST_NAME))
            missing = [n for n in manifest.file_list if n not in names]
            if missing:
                raise BuildError(f"Referencing a nonexistent file: {missing[0]}")
            contents = [zf.read(n) for n in manifest.file_list]
            key = load_public_key(public_key.read_bytes()) if public_key else None
            verify(manifest, contents, key, fresh=True, skip_existing=False)
        except (ManifestError, UnpackError) as exc:
            raise BuildError(str(exc)) from None
        except OSError as exc:
            raise BuildError(f"{exc.strerror or exc}") from None
    return manifest
