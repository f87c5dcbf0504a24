"""The gateway side of the JavaScript built-ins: logs, ``TykMakeHttpRequest``, the key store.

:class:`GatewayJsHost` implements :class:`~plugin_drivers.javascript.scripts.JsHost`. Its methods
run on the thread that called the VM (a Trio worker thread under the API's thread limit), never on
the event loop: HTTP requests use httpx's blocking client there, and the session store (which
lives in Trio) is reached with ``trio.from_thread.run(..., trio_token=...)``. Every method is
bounded by the ``timeout`` the call has left.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar
from urllib.parse import urlencode

import attrs
import httpx
import trio

from trio_gateway.drivers import DriverStore, session_from_json, session_to_json

from .request_object import canonical_header_name, go_field, go_string, go_string_map

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_RESPONSE_BYTES",
    "GatewayJsHost",
    "JsHostError",
    "make_ssl_context",
]

log = logging.getLogger("trio_gateway.plugins.jsvm")
rawlog = logging.getLogger("trio_gateway.plugins.jsvm.raw")

T = TypeVar("T")

#: The largest body ``TykMakeHttpRequest`` reads from the far side; more is an error (the script
#: gets ``undefined``), so a script cannot make the gateway buffer without end.
MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024

#: Requests one ``TykBatchRequest`` may hold (Tyk has no limit), and how many run at once (Tyk:
#: all of them).
MAX_BATCH_REQUESTS: Final = 32
BATCH_PARALLELISM: Final = 8

#: What Tyk's batch gives for a request that failed: its zero ``BatchReplyUnit``.
_FAILED_BATCH_UNIT: Final = {"relative_url": "", "code": 0, "headers": None, "body": ""}

#: Tyk's answer to ``TykGetKeyData`` for a key that does not exist (the admin API's error object).
_KEY_NOT_FOUND: Final = json.dumps({"status": "error", "message": "Key not found"})


class JsHostError(Exception):
    """A built-in cannot do what the script asked; the script gets ``undefined``."""


def make_ssl_context(*, insecure_skip_verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """The client TLS ``TykMakeHttpRequest`` uses: the gateway's upstream settings."""
    context = ssl.create_default_context(cafile=ca_file)
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@attrs.define(eq=False)
class GatewayJsHost:
    """The built-ins' gateway for one API (one instance per driver)."""

    api_id: str
    #: The gateway's session store (None outside a gateway: the key built-ins then fail).
    store: DriverStore | None
    #: The event loop's token, for reaching the store from the VM's caller thread.
    trio_token: trio.lowlevel.TrioToken
    #: The upstream TLS settings ``TykMakeHttpRequest`` uses.
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    #: Made on the first request, in its worker thread: loading the system's CA store takes
    #: tens of milliseconds, which 100 APIs would otherwise pay at start-up, on the event loop.
    _ssl_context: ssl.SSLContext | None = attrs.field(init=False, default=None)
    _ssl_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def ssl_context(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl_context is None:
                self._ssl_context = make_ssl_context(
                    insecure_skip_verify=self.insecure_skip_verify, ca_file=self.ca_file
                )
            return self._ssl_context

    # -- logs ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        log.info("jsvm: %s", message, extra={"type": "log-msg", "api_id": self.api_id})

    def rawlog(self, message: str) -> None:
        rawlog.info("%s", message)

    def error(self, message: str) -> None:
        log.error("jsvm: api=%s: %s", self.api_id, message)

    # -- TykMakeHttpRequest ----------------------------------------------------------------

    def make_http_request(self, request_json: str, *, timeout: float) -> str | None:
        """Tyk's ``{Method, Body, Headers, Domain, Resource, FormData}`` (keys in any case) ->
        ``{Code, Body, Headers, code, body, headers}`` as JSON text."""
        try:
            spec = json.loads(request_json)
        except ValueError as exc:
            raise JsHostError(f"the request is not JSON: {exc}") from None
        if not isinstance(spec, Mapping):
            raise JsHostError("the request must be a JSON object")
        method = go_string(go_field(spec, "Method"), "Method").upper() or "GET"
        domain = go_string(go_field(spec, "Domain"), "Domain")
        url = domain + go_string(go_field(spec, "Resource"), "Resource")
        headers = dict(go_string_map(go_field(spec, "Headers"), "Headers"))
        body = go_string(go_field(spec, "Body"), "Body").encode()
        form = dict(go_string_map(go_field(spec, "FormData"), "FormData"))
        if not body and form:
            # Tyk: the body wins; form data is sent only without one, URL-encoded.
            body = urlencode(sorted(form.items())).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        if timeout <= 0:
            raise JsHostError("no time left for the request")
        with self._client(timeout) as client:
            status, grouped, data = _fetch(
                client, method, url, headers, body, _ByteBudget(MAX_RESPONSE_BYTES), timeout
            )
        text = data.decode("utf-8", errors="replace")
        reply = {
            "Code": status,
            "Body": text,
            "Headers": grouped,
            "code": status,
            "body": text,
            "headers": grouped,
        }
        return json.dumps(reply)

    def _client(self, timeout: float) -> httpx.Client:
        # trust_env: HTTP_PROXY / HTTPS_PROXY / NO_PROXY as Go's default transport reads them;
        # redirects followed as Go's client does.
        return httpx.Client(
            verify=self.ssl_context(), timeout=timeout, trust_env=True, follow_redirects=True
        )

    # -- TykBatchRequest -------------------------------------------------------------------

    def batch_request(self, request_json: str, *, timeout: float) -> str | None:
        """Tyk's ``{"requests": [{method, headers, body, relative_url}],
        "suppress_parallel_execution"}`` -> the JSON array of ``{relative_url, code, headers,
        body}``, one per request, in the order asked.

        As Tyk's JavaScript ``TykBatchRequest`` (``ManualBatchRequest``): ``relative_url`` is the
        whole URL the request goes to; a request that fails gives Tyk's empty unit
        (``{"relative_url": "", "code": 0, "headers": null, "body": ""}``) and an error line;
        a batch that is not such JSON gives ``undefined``. The whole batch is bounded by
        ``timeout`` and its bodies together by :data:`MAX_RESPONSE_BYTES`.
        """
        deadline = time.monotonic() + timeout
        items, sequential = _batch_items(request_json)
        if timeout <= 0:
            raise JsHostError("no time left for the batch")
        budget = _ByteBudget(MAX_RESPONSE_BYTES)
        with self._client(timeout) as client:

            def one(item: _BatchItem) -> dict[str, object]:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        raise JsHostError("no time left")
                    status, grouped, data = _fetch(
                        client, item.method, item.url, item.headers, item.body, budget, remaining
                    )
                except Exception as exc:  # any failure of one request: Tyk's empty unit
                    self.error(f"TykBatchRequest: {item.method} {item.url} failed: {exc}")
                    return dict(_FAILED_BATCH_UNIT)
                return {
                    "relative_url": item.url,
                    "code": status,
                    "headers": grouped,
                    "body": data.decode("utf-8", errors="replace"),
                }

            if sequential or len(items) < 2:
                units = [one(item) for item in items]
            else:
                # Tyk runs every request at once; a few threads here (joined before we return,
                # each request bounded by the time left) give the same answers.
                workers = min(BATCH_PARALLELISM, len(items))
                with concurrent.futures.ThreadPoolExecutor(workers, "jsvm-batch") as pool:
                    units = list(pool.map(one, items))
        return json.dumps(units)

    # -- the key store ---------------------------------------------------------------------

    def _on_trio(self, fn: Callable[[], Awaitable[T]], timeout: float) -> T:
        async def bounded() -> T:
            with trio.fail_after(max(timeout, 0.0)):
                return await fn()

        return trio.from_thread.run(bounded, trio_token=self.trio_token)

    def _store(self) -> DriverStore:
        if self.store is None:
            raise JsHostError("the gateway has no session store")
        return self.store

    def get_key_data(self, key: str, api_id: str, *, timeout: float) -> str | None:
        store = self._store()
        session = self._on_trio(lambda: store.get_session(key), timeout)
        if session is None:
            return _KEY_NOT_FOUND
        return json.dumps(session_to_json(session))

    def set_key_data(
        self, key: str, session_json: str, suppress_reset: str, *, timeout: float
    ) -> None:
        store = self._store()
        if not key:
            raise JsHostError("the key must not be empty")
        try:
            session = session_from_json(json.loads(session_json))
        except Exception as exc:
            raise JsHostError(f"the session is not a valid session object: {exc}") from None
        reset = suppress_reset != "1"
        self._on_trio(lambda: store.put_session(key, session, reset_quota=reset), timeout)


@attrs.define(eq=False)
class _ByteBudget:
    """Bytes the responses of one built-in call may still bring (shared by a batch's threads)."""

    left: int
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def take(self, count: int) -> None:
        with self._lock:
            if count > self.left:
                raise JsHostError(f"the responses are larger than {MAX_RESPONSE_BYTES} bytes")
            self.left -= count


def _fetch(
    client: httpx.Client,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    budget: _ByteBudget,
    timeout: float,
) -> tuple[int, dict[str, list[str]], bytes]:
    """One request: its status, its headers as Go's ``http.Header`` (canonical name -> values)
    and its body, which must fit ``budget``."""
    with client.stream(method, url, headers=headers, content=body, timeout=timeout) as response:
        data = bytearray()
        for chunk in response.iter_bytes():
            budget.take(len(chunk))
            data += chunk
        grouped: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            grouped.setdefault(canonical_header_name(name), []).append(value)
        return response.status_code, grouped, bytes(data)


@attrs.frozen
class _BatchItem:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


def _batch_items(request_json: str) -> tuple[list[_BatchItem], bool]:
    """The requests of a ``TykBatchRequest`` (Go's decoder: keys in any case, "" method is GET)
    and whether to make them one after another; :class:`JsHostError` for anything else."""
    try:
        spec = json.loads(request_json)
        if not isinstance(spec, Mapping):
            raise JsHostError("the batch must be a JSON object")
        requests = go_field(spec, "requests")
        if requests is None:
            requests = []
        if not isinstance(requests, list):
            raise JsHostError("requests must be an array")
        sequential = go_field(spec, "suppress_parallel_execution")
        if sequential is not None and not isinstance(sequential, bool):
            raise JsHostError("suppress_parallel_execution must be true or false")
        if len(requests) > MAX_BATCH_REQUESTS:
            raise JsHostError(f"more than {MAX_BATCH_REQUESTS} requests in one batch")
        items = []
        for i, entry in enumerate(requests):
            if not isinstance(entry, Mapping):
                raise JsHostError(f"requests[{i}] must be an object")
            items.append(
                _BatchItem(
                    method=go_string(go_field(entry, "method"), f"requests[{i}].method") or "GET",
                    url=go_string(go_field(entry, "relative_url"), f"requests[{i}].relative_url"),
                    # Go's Header.Set: canonical names, one value each.
                    headers={
                        canonical_header_name(name): value
                        for name, value in go_string_map(
                            go_field(entry, "headers"), f"requests[{i}].headers"
                        )
                    },
                    body=go_string(go_field(entry, "body"), f"requests[{i}].body").encode(),
                )
            )
    except ValueError as exc:  # bad JSON, or a field of the wrong type (JsResultError)
        raise JsHostError(f"the batch is not valid: {exc}") from None
    return items, bool(sequential)
