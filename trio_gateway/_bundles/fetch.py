"""Download a bundle: ``http``/``https`` with httpx, ``file://`` read from disk.

Tyk's client (``gateway/coprocess_bundle.go``): the URL is ``bundle_base_url`` with the bundle
name joined to its path (query kept); 5 s per attempt; anything but 200 is a failure; retried with
exponential backoff (multiplier 2, capped at 5 s) for 5 attempts in all. We add a total deadline
on top (the caller's cancel scope) and a size bound, so a server that never answers or never stops
sending cannot stall a (re)load.
"""

from __future__ import annotations

import posixpath
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs
import httpx
import trio

__all__ = ["FetchError", "FetchPolicy", "bundle_url", "fetch_bundle"]


class FetchError(Exception):
    """The bundle could not be fetched; the message is the reason (Tyk's words where it has one)."""


@attrs.frozen(kw_only=True)
class FetchPolicy:
    attempt_timeout: float = 5.0
    attempts: int = 5
    first_backoff: float = 0.5
    max_backoff: float = 5.0
    #: Largest bundle accepted from a server.
    max_bytes: int = 64 * 1024 * 1024


def bundle_url(base_url: str, name: str) -> str:
    """Tyk's ``path.Join(base.path, name)``, keeping the base's query."""
    if not base_url:
        raise FetchError("No bundle base URL set, skipping bundle")
    parts = urlsplit(base_url)
    path = posixpath.join(parts.path or "/", name)
    return urlunsplit((parts.scheme, parts.netloc, posixpath.normpath(path), parts.query, ""))


async def fetch_bundle(
    url: str,
    dest: Path,
    *,
    insecure_skip_verify: bool = False,
    ca_file: str | None = None,
    policy: FetchPolicy = FetchPolicy(),
) -> None:
    """Write the bundle at ``url`` to ``dest``. Raises :class:`FetchError`."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        source = Path(unquote(urlsplit(url).path))
        try:
            if (await trio.Path(source).stat()).st_size > policy.max_bytes:
                raise FetchError(f"bundle larger than {policy.max_bytes} bytes")
            data = await trio.Path(source).read_bytes()
        except OSError as exc:
            raise FetchError(f"cannot read {source}: {exc.strerror or exc}") from None
        await trio.Path(dest).write_bytes(data)
        return
    if scheme not in ("http", "https"):
        raise FetchError("Unknown URL scheme")
    verify = ssl.create_default_context(cafile=ca_file)
    if insecure_skip_verify:
        verify.check_hostname = False
        verify.verify_mode = ssl.CERT_NONE
    delay = policy.first_backoff
    last = ""
    async with httpx.AsyncClient(
        verify=verify, timeout=policy.attempt_timeout, follow_redirects=False
    ) as client:
        for attempt in range(policy.attempts):
            if attempt:
                await trio.sleep(delay)
                delay = min(delay * 2, policy.max_backoff)
            try:
                with trio.fail_after(policy.attempt_timeout):
                    last = await _one_attempt(client, url, dest, policy.max_bytes)
            except trio.TooSlowError:
                last = f"no answer within {policy.attempt_timeout:g}s"
            except httpx.HTTPError as exc:
                last = _describe(exc)
            if not last:
                return
    raise FetchError(f"download from {url} failed after {policy.attempts} attempts: {last}")


def _describe(exc: BaseException) -> str:
    """httpx's errors often carry their reason only in the exception they wrap (TLS, DNS)."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    while not text and cause is not None:
        text = str(cause)
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _one_attempt(client: httpx.AsyncClient, url: str, dest: Path, max_bytes: int) -> str:
    """One GET; returns "" on success, else why it failed."""
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            return f"HTTP Error, got status code {response.status_code}"  # Tyk's words
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                return f"bundle larger than {max_bytes} bytes"
            chunks.append(chunk)
    with trio.CancelScope(shield=True):  # a local write, not a wait on the server
        await trio.Path(dest).write_bytes(b"".join(chunks))
    return ""
