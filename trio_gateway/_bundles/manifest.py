"""A bundle's ``manifest.json``, its checksum and its signature (pure: no I/O, no Trio).

Tyk's rules (TykTechnologies/tyk ``gateway/coprocess_bundle.go``, ``cli/bundler/bundler.go``;
TykTechnologies/goverify ``rsa_signer.go``/``rsa_verifier.go``; see docs/bundles.md):

* the signed data is the raw bytes of every ``file_list`` entry, concatenated in list order,
  nothing between them, ``manifest.json`` excluded;
* ``checksum`` is the lowercase hex MD5 of that data;
* ``signature`` is standard base64 of an RSASSA-PKCS1-v1_5 signature over SHA-256 of that data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import cattrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .._apidef.classic import read_custom_middleware
from .._apidef.model import MiddlewareConfig
from .._converter import make_converter

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "ManifestError",
    "checksum_of",
    "load_private_key",
    "load_public_key",
    "parse_manifest",
    "sign",
    "verify",
    "verify_signature",
]

MANIFEST_NAME = "manifest.json"

#: Tyk's messages, word for word, so that a log line reads as Tyk's would.
INVALID_CHECKSUM = "invalid checksum"
NOT_SIGNED = "Bundle isn't signed"
BAD_SIGNATURE = "crypto/rsa: verification error"


class ManifestError(ValueError):
    """The manifest (or a key) cannot be used; the message says why."""


@attrs.frozen(kw_only=True)
class _ManifestDoc:
    """The manifest's own keys; ``custom_middleware`` is read by the Classic reader."""

    file_list: tuple[str, ...] = ()
    checksum: str = ""
    signature: str = ""


@attrs.frozen(kw_only=True)
class Manifest:
    file_list: tuple[str, ...]
    checksum: str
    signature: str
    middleware: MiddlewareConfig
    #: The manifest as written (``bundle build`` fills checksum/signature into it).
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)

    @property
    def signed(self) -> bool:
        return bool(self.signature)


_converter = make_converter()


def parse_manifest(text: bytes) -> Manifest:
    """Read ``manifest.json``; raises :class:`ManifestError` naming every problem."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{MANIFEST_NAME} must be a JSON object")
    try:
        doc = _converter.structure(raw, _ManifestDoc)
    except cattrs.BaseValidationError as exc:
        lines = cattrs.transform_error(exc)
        raise ManifestError(f"{MANIFEST_NAME}: " + "; ".join(lines)) from None
    for name in doc.file_list:
        if not name or name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
            raise ManifestError(f"{MANIFEST_NAME}: file_list entry {name!r} leaves the bundle")
    errors: list[str] = []
    warnings: list[str] = []
    middleware = read_custom_middleware(raw, errors, warnings)
    if errors:
        raise ManifestError(f"{MANIFEST_NAME}: " + "; ".join(errors))
    return Manifest(
        file_list=doc.file_list,
        checksum=doc.checksum,
        signature=doc.signature,
        middleware=middleware,
        raw=raw,
    )


def _data(contents: Iterable[bytes]) -> bytes:
    return b"".join(contents)


def checksum_of(contents: Iterable[bytes]) -> str:
    """Tyk's checksum over the ``file_list`` files' bytes, in order."""
    return hashlib.md5(_data(contents), usedforsecurity=False).hexdigest()


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """A PEM ``PUBLIC KEY`` or ``RSA PUBLIC KEY``, as goverify's ``util.go`` accepts."""
    try:
        # cryptography reads both PEM forms (SubjectPublicKeyInfo and PKCS#1).
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ManifestError(f"cannot read the public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ManifestError("the public key is not an RSA key")
    return key


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """A PEM ``RSA PRIVATE KEY`` (PKCS#1) or ``PRIVATE KEY`` (PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"cannot read the private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ManifestError("the private key is not an RSA key")
    return key


def sign(contents: Iterable[bytes], key: rsa.RSAPrivateKey) -> str:
    """Tyk's signature: base64(RSASSA-PKCS1-v1_5(SHA-256(data)))."""
    raw = key.sign(_data(contents), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify_signature(contents: Iterable[bytes], signature: str, key: rsa.RSAPublicKey) -> None:
    """Raise :class:`ManifestError` with Tyk's message unless ``signature`` verifies."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError(BAD_SIGNATURE) from None
    try:
        key.verify(raw, _data(contents), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ManifestError(BAD_SIGNATURE) from None


def verify(
    manifest: Manifest,
    contents: list[bytes],
    key: rsa.RSAPublicKey | None,
    *,
    fresh: bool,
    skip_existing: bool,
) -> None:
    """Tyk's verification rules (v5.14 ``verifyBundle``; docs/bundles.md):

    * fresh download: with a key, an unsigned manifest fails ``Bundle isn't signed``; the
      checksum must match; with a key, the signature must verify;
    * already on disk: an unsigned manifest is trusted; a signed one is checked as above unless
      ``skip_verify_existing_plugin_bundle``.
    """
    if not fresh and (not manifest.signed or skip_existing):
        return
    if fresh and key is not None and not manifest.signed:
        raise ManifestError(NOT_SIGNED)
    if checksum_of(contents) != manifest.checksum:
        raise ManifestError(INVALID_CHECKSUM)
    if key is not None:
        verify_signature(contents, manifest.signature, key)
