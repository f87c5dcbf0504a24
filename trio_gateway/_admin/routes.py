"""The Tyk control API's endpoints under ``/tyk/``, as handlers over the gateway's registries.

Keys live in the session store; APIs are the definition files of the gateway's folder (what is
served is the current snapshot); reloads go through the :class:`~trio_gateway._reload.Reloader`.
Replies have Tyk's shapes and messages (``gateway/api.go``): errors are
``{"status": "error", "message": ...}``, key and API changes
``{"key": ..., "status": "ok", "action": "added" | "modified" | "deleted"}``.

The secret check is not here: :mod:`.app` lets a request in only with the right secret.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs
import trio

from .._apidef.model import ApiDefinition
from .._apidef.source import parse_definition, read_json_file
from .._error_body import JSON_CONTENT_TYPE
from .._exchange import Request, Response
from .._redis.client import RedisError
from .._reload import Reloader
from .._session.json import session_from_json, session_to_json
from .._session.model import Session
from .._session.store import SessionStore, hash_key
from ..errors import ApiDefinitionError, SessionStoreError
from .group import GroupReload

__all__ = ["ADMIN_BODY_LIMIT", "AdminRoutes", "json_response", "status_message"]

#: Largest request body the admin API reads (a session or an API definition).
ADMIN_BODY_LIMIT = 4 * 1024 * 1024


def json_response(status: int, obj: object) -> Response:
    """A JSON reply, encoded as Go's ``json.Encoder`` does (one line, then a newline)."""
    body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    return Response(
        status=status,
        headers=[(b"Content-Type", JSON_CONTENT_TYPE), (b"X-Generator", b"trio-gateway")],
        body_bytes=body,
    )


def status_message(status: int, message: str, *, ok: bool = False) -> Response:
    """Tyk's ``apiStatusMessage``: ``{"status": "ok"|"error", "message": ...}``."""
    return json_response(status, {"status": "ok" if ok else "error", "message": message})


def _modified(key: str, action: str, key_hash: str = "") -> Response:
    reply = {"key": key, "status": "ok", "action": action}
    if key_hash:
        reply["key_hash"] = key_hash
    return json_response(200, reply)


_MALFORMED = "Request malformed"
_METHOD = "Method not supported"


class _BadBody(Exception):
    pass


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadBody(_MALFORMED) from exc


def _parse_session(body: bytes) -> Session:
    obj = _parse_json(body)
    try:
        return session_from_json(obj)
    except Exception as exc:  # cattrs' ClassValidationError, TypeError, ValueError: bad shape
        raise _BadBody(_MALFORMED) from exc


def _safe_api_id(api_id: str) -> bool:
    """An id that is one plain file name (it becomes ``<app_path>/<api_id>.json``)."""
    return bool(api_id) and "/" not in api_id and "\\" not in api_id and not api_id.startswith(".")


def _new_key(org_id: str) -> str:
    # Tyk's default key format: the org id followed by a random UUID in hex.
    return org_id + os.urandom(16).hex()


@attrs.define(eq=False)
class AdminRoutes:
    """Dispatches ``/tyk/...`` requests (already authorised) to their handlers."""

    store: SessionStore
    reloader: Reloader
    group: GroupReload
    #: Where ``POST/PUT/DELETE /tyk/apis`` write; None when the folder is not ours to change
    #: (the bundled examples).
    api_folder: Path | None
    now: Callable[[], float] = time.time

    async def dispatch(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path[len("/tyk/") :].split("/")]
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        method = request.method
        try:
            if parts[0] == "keys":
                return await self._keys(request, method, parts[1:], query)
            if parts[0] == "apis":
                return await self._apis(request, method, parts[1:])
            if parts[0] == "reload":
                if method != "GET":
                    return status_message(405, _METHOD)
                if parts[1:] == ["group"]:
                    return await self._reload_group()
                if parts[1:] in ([], [""]):
                    return await self._reload(query)
        except _BadBody as exc:
            return status_message(400, str(exc))
        except (SessionStoreError, RedisError) as exc:
            return status_message(503, f"Storage unavailable: {exc}")
        return status_message(404, "Not found")

    # -- keys --------------------------------------------------------------------------------

    async def _keys(
        self, request: Request, method: str, rest: list[str], query: dict[str, str]
    ) -> Response:
        if rest in ([], [""]):
            if method != "GET":
                return status_message(405, _METHOD)
            return json_response(200, {"keys": await self.store.list_keys()})
        if len(rest) != 1 or not rest[0]:
            return status_message(404, "Not found")
        name = rest[0]
        if name == "create":
            if method != "POST":
                return status_message(405, _METHOD)
            session = _parse_session(await request.read_body(ADMIN_BODY_LIMIT))
            return await self._add_key(_new_key(session.org_id), session)
        if method == "GET":
            found = await self.store.get_session(name)
            if found is None:
                return status_message(404, "Key not found")
            return json_response(200, session_to_json(found))
        if method == "POST":
            session = _parse_session(await request.read_body(ADMIN_BODY_LIMIT))
            return await self._add_key(name, session)
        if method == "PUT":
            session = _parse_session(await request.read_body(ADMIN_BODY_LIMIT))
            return await self._update_key(
                name, session, suppress_reset=query.get("suppress_reset") == "1"
            )
        if method == "DELETE":
            if not await self.store.delete_session(name):
                return status_message(404, "There is no such key found")
            return _modified(name, "deleted")
        return status_message(405, _METHOD)

    async def _add_key(self, key: str, session: Session) -> Response:
        now = self.now()
        session.date_created = datetime.fromtimestamp(now, UTC).isoformat()
        session.last_updated = str(int(now))
        if session.quota_renewal_rate > 0:
            session.quota_renews = int(now) + session.quota_renewal_rate
        await self.store.put_session(key, session)
        return _modified(key, "added", hash_key(key) if self.store.hash_keys else "")

    async def _update_key(self, key: str, session: Session, *, suppress_reset: bool) -> Response:
        original = await self.store.get_session(key)
        if original is None:
            return status_message(404, "Key is not found")
        session.date_created = original.date_created
        if suppress_reset:
            # Tyk keeps the counters' timing when asked not to reset them.
            session.quota_renews = original.quota_renews
            session.last_updated = original.last_updated
        else:
            session.last_updated = str(int(self.now()))
        await self.store.put_session(key, session, reset_quota=not suppress_reset)
        return _modified(key, "modified")

    # -- APIs --------------------------------------------------------------------------------

    def _served(self) -> dict[str, ApiDefinition]:
        return {api_id: rt.api for api_id, rt in self.reloader.gateway.snapshot.runtimes.items()}

    async def _apis(self, request: Request, method: str, rest: list[str]) -> Response:
        if rest in ([], [""]):
            if method == "GET":
                apis = list(self._served().values())
                docs = await trio.to_thread.run_sync(lambda: [_read_doc(a) for a in apis])
                return json_response(200, docs)
            if method == "POST":
                return await self._write_api(request, None)
            if method in ("PUT", "DELETE"):
                return status_message(400, f"Must specify an apiID to {method.lower()}")
            return status_message(405, _METHOD)
        if len(rest) != 1 or not rest[0]:
            return status_message(404, "Not found")
        api_id = rest[0]
        if method == "GET":
            api = self._served().get(api_id)
            if api is None:
                return status_message(404, "API not found")
            return json_response(200, await trio.to_thread.run_sync(_read_doc, api))
        if method == "PUT":
            return await self._write_api(request, api_id)
        if method == "DELETE":
            return await self._delete_api(api_id)
        return status_message(405, _METHOD)

    def _file_for(self, folder: Path, api_id: str) -> Path:
        """The file holding ``api_id``: the one it was loaded from when that is a Classic file of
        our folder, else ``<api_id>.json``."""
        served = self._served().get(api_id)
        if served is not None and served.source and served.format == "classic":
            source = Path(served.source)
            if source.parent == folder:
                return source
        return folder / f"{api_id}.json"

    async def _write_api(self, request: Request, api_id: str | None) -> Response:
        if self.api_folder is None:
            return status_message(
                500, "API definitions are not file-backed here (no app_path configured)"
            )
        folder = self.api_folder
        doc = _parse_json(await request.read_body(ADMIN_BODY_LIMIT))
        new_id = doc.get("api_id") if isinstance(doc, dict) else None
        if not isinstance(new_id, str) or not _safe_api_id(new_id):
            return status_message(
                400, "Validation of API Definition failed. Reason: a plain api_id is required."
            )
        if api_id is not None and new_id != api_id:
            return status_message(
                400,
                "Request APIID does not match that in Definition! "
                "For Update operations these must match.",
            )
        path = self._file_for(folder, new_id)
        if api_id is not None and new_id not in self._served() and not path.is_file():
            return status_message(404, "API not found")
        try:
            parse_definition(doc, str(path))
        except ApiDefinitionError as exc:
            reason = "; ".join(exc.messages)
            return status_message(400, f"Validation of API Definition failed. Reason: {reason}.")
        try:
            await trio.to_thread.run_sync(_write_atomically, path, doc)
        except OSError as exc:
            return status_message(500, f"File object creation failed, write error: {exc}")
        return await self._reload_after_change(new_id, "added" if api_id is None else "modified")

    async def _delete_api(self, api_id: str) -> Response:
        if self.api_folder is None:
            return status_message(
                500, "API definitions are not file-backed here (no app_path configured)"
            )
        path = self._file_for(self.api_folder, api_id)
        try:
            await trio.to_thread.run_sync(path.unlink)
        except FileNotFoundError:
            return status_message(404, "API not found")
        except OSError as exc:
            return status_message(500, f"Delete failed: {exc}")
        return await self._reload_after_change(api_id, "deleted")

    async def _reload_after_change(self, api_id: str, action: str) -> Response:
        result = await self.reloader.reload()
        if not result.ok:
            return status_message(
                500, f"Definition {action}, but the reload failed: {result.message}"
            )
        return _modified(api_id, action)

    # -- reload ------------------------------------------------------------------------------

    async def _reload(self, query: dict[str, str]) -> Response:
        if query.get("block") == "true":
            result = await self.reloader.reload()
            if not result.ok:
                return status_message(500, result.message)
        else:
            self.reloader.request_reload()
        return status_message(200, "", ok=True)

    async def _reload_group(self) -> Response:
        await self.group.publish()
        return status_message(200, "", ok=True)


def _read_doc(api: ApiDefinition) -> Any:
    """The definition as stored in its file (falls back to the essentials if it is gone)."""
    try:
        return read_json_file(Path(api.source))
    except (ApiDefinitionError, OSError):
        return {
            "api_id": api.api_id,
            "name": api.name,
            "org_id": api.org_id,
            "proxy": {"listen_path": api.listen_path, "target_url": api.target_url},
        }


def _write_atomically(path: Path, doc: object) -> None:
    # Written under a name the loader ignores, then renamed: a reload running meanwhile sees
    # the old file or the new one, never half of one.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(temporary, path)
