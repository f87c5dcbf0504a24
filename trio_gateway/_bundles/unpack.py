"""Unpack a bundle zip safely (blocking file I/O: callers run it in a worker thread).

A bundle comes from the network, so every entry is checked before a byte is written: no entry
may leave the target (``..``, absolute paths, drive letters, symlinks), and the number of entries,
the total unpacked size and each entry's compression ratio are bounded, so a zip bomb is refused
before it fills the disk. Sizes are counted as bytes are written, not trusted from the zip's
headers. Files are written 0600 and directories 0700 (bundles may hold secrets and code).
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

import attrs

__all__ = ["UnpackError", "UnpackLimits", "unpack_zip"]


class UnpackError(ValueError):
    """The archive is refused; the message names the entry and the rule."""


@attrs.frozen(kw_only=True)
class UnpackLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 256 * 1024 * 1024
    #: Uncompressed / compressed size of one entry (deflate tops out near 1032:1 on real data;
    #: legitimate code and JSON compress 3-20:1).
    max_ratio: float = 200.0


_CHUNK = 64 * 1024


def _safe_name(name: str) -> PurePosixPath:
    if "\\" in name or "\x00" in name:
        raise UnpackError(f"entry {name!r}: backslashes and NUL are not allowed in names")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnpackError(f"entry {name!r}: absolute paths are not allowed")
    if ".." in path.parts:
        raise UnpackError(f"entry {name!r}: '..' would leave the bundle directory")
    if not path.parts:
        raise UnpackError(f"entry {name!r}: empty name")
    return path


def unpack_zip(archive: Path, target: Path, limits: UnpackLimits = UnpackLimits()) -> None:
    """Extract ``archive`` into the existing, empty directory ``target``."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnpackError(f"not a zip archive: {exc}") from None
    with zf:
        entries = zf.infolist()
        if len(entries) > limits.max_entries:
            raise UnpackError(f"{len(entries)} entries (more than {limits.max_entries})")
        total = 0
        for info in entries:
            rel = _safe_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnpackError(f"entry {info.filename!r}: symbolic links are not allowed")
            dest = target.joinpath(*rel.parts)
            if info.is_dir():
                dest.mkdir(mode=0o700, parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            written = 0
            try:
                # Never follow a link or reuse a file planted by an earlier entry.
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if total > limits.max_total_bytes:
                            raise UnpackError(
                                f"unpacked size exceeds {limits.max_total_bytes} bytes"
                            )
                        if written > 1024 * 1024 and written > limits.max_ratio * max(
                            info.compress_size, 1
                        ):
                            raise UnpackError(
                                f"entry {info.filename!r}: compression ratio over "
                                f"{limits.max_ratio:g}:1 (a zip bomb?)"
                            )
                        out.write(chunk)
            except FileExistsError:
                raise UnpackError(f"entry {info.filename!r} appears twice") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise UnpackError(f"entry {info.filename!r}: {exc}") from None
