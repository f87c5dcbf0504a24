"""Cross-driver conformance: behaviour vectors for the example plugins, and a runner.

The vectors (``conformance_vectors.json`` beside this module) describe four plugins -- header
injection, validation that answers 400, response rewriting, custom authentication -- as requests a
client sends, what the upstream must then see (or that it is not called) and what the client must
get. The same plugin written for any driver must pass them all; a driver that passes them treats
those hooks as every other driver does.

:func:`run_conformance` runs them through a real gateway over real loopback sockets: it starts a
recording upstream and a gateway serving one API per plugin (its definition from the vectors,
merged with the driver's part the caller gives), sends each vector's request, and reports every
difference::

    report = await run_conformance({"add_headers": {"custom_middleware": {...}}, ...})
    report.assert_conforms()

docs/conformance.md describes the vector format and how to write the plugins for a new driver.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import httptools  # type: ignore[import-untyped,unused-ignore]
import trio

from .._app import RunningGateway, serve_gateway
from .._config.model import GatewayConfig, ListenConfig
from .._server import HttpServer
from ._loopback import ClientResponse, RecordingUpstream, send_request
from ._model import SeenRequest
from ._vectors import (
    ConformanceSetupError,
    PluginSpec,
    ResponseExpectation,
    ScriptedReply,
    UpstreamExpectation,
    Vector,
    VectorRequest,
    VectorSet,
    load_vectors,
)

__all__ = [
    "HOOK_ENTRY_KEYS",
    "ConformanceReport",
    "ConformanceSetupError",
    "PluginSpec",
    "ResponseExpectation",
    "ScriptedReply",
    "UpstreamExpectation",
    "Vector",
    "VectorOutcome",
    "VectorRequest",
    "VectorSet",
    "definition_from_file",
    "load_vectors",
    "run_conformance",
]

#: The ``custom_middleware`` keys holding hook entries (Tyk's MiddlewareDefinition), whose
#: ``path`` :func:`definition_from_file` resolves.
HOOK_ENTRY_KEYS: Final = ("pre", "post", "post_key_auth", "response", "auth_check")


def definition_from_file(path: Path) -> dict[str, Any]:
    """An API definition (or a part of one) read from a JSON file, with the ``path`` of each
    ``custom_middleware`` hook entry made absolute (Tyk resolves them from the definition's
    folder; the runner writes definitions elsewhere)."""
    document: dict[str, Any] = json.loads(path.read_text("utf-8"))
    middleware = document.get("custom_middleware")
    if isinstance(middleware, dict):
        for key in HOOK_ENTRY_KEYS:
            entries = middleware.get(key)
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    entry["path"] = str((path.parent / entry["path"]).resolve())
    return document


# -- comparing -----------------------------------------------------------------------------------


def _header_differences(
    where: str,
    got: ClientResponse | SeenRequest,
    expected: Mapping[str, tuple[str, ...]],
    absent: Sequence[str],
) -> list[str]:
    differences = []
    for name, values in expected.items():
        actual = got.header_values(name)
        if actual != list(values):
            differences.append(f"{where} header {name}: expected {list(values)}, got {actual}")
    for name in absent:
        actual = got.header_values(name)
        if actual:
            differences.append(f"{where} header {name}: expected none, got {actual}")
    return differences


def _upstream_differences(
    expected: UpstreamExpectation | None, received: Sequence[SeenRequest]
) -> list[str]:
    if expected is None:
        if received:
            return [f"upstream: expected no request, got {len(received)}"]
        return []
    if len(received) != 1:
        return [f"upstream: expected one request, got {len(received)}"]
    seen = received[0]
    differences = [
        f"upstream {field}: expected {want!r}, got {got!r}"
        for field, want, got in (
            ("method", expected.method, seen.method),
            ("path", expected.path, seen.path),
            ("query", expected.query, seen.query),
        )
        if want is not None and want != got
    ]
    differences += _header_differences("upstream", seen, expected.headers, expected.absent_headers)
    if expected.body is not None and seen.body != expected.body.encode():
        differences.append(f"upstream body: expected {expected.body!r}, got {seen.body!r}")
    return differences


def _response_differences(expected: ResponseExpectation, got: ClientResponse) -> list[str]:
    differences = []
    if got.status != expected.status:
        differences.append(f"response status: expected {expected.status}, got {got.status}")
    differences += _header_differences("response", got, expected.headers, expected.absent_headers)
    if expected.body is not None and got.body != expected.body.encode():
        differences.append(f"response body: expected {expected.body!r}, got {got.body!r}")
    if expected.json is not None:
        try:
            document = json.loads(got.body)
        except ValueError:
            differences.append(f"response body: expected JSON {expected.json!r}, got {got.body!r}")
        else:
            if document != expected.json:
                differences.append(f"response JSON: expected {expected.json!r}, got {document!r}")
    return differences


# -- the report ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VectorOutcome:
    """One vector's run: every way the gateway's behaviour differed from it (none: passed)."""

    vector: Vector
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


@attrs.frozen(kw_only=True)
class ConformanceReport:
    """Every vector run, and the plugins that were not (no definition given for them)."""

    outcomes: tuple[VectorOutcome, ...]
    not_covered: tuple[str, ...] = ()

    @property
    def failures(self) -> tuple[VectorOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if not outcome.passed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def format(self) -> str:
        """A readable report: one line per vector, each difference below its vector."""
        lines = []
        for outcome in self.outcomes:
            lines.append(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.vector.name}")
            lines += [f"       {difference}" for difference in outcome.differences]
        passed = len(self.outcomes) - len(self.failures)
        lines.append(f"{passed} of {len(self.outcomes)} vectors passed")
        if self.not_covered:
            lines.append(f"not run (no definition given): {', '.join(self.not_covered)}")
        return "\n".join(lines)

    def assert_conforms(self) -> None:
        """Raise AssertionError with :meth:`format` if any vector failed."""
        if not self.ok:
            raise AssertionError("conformance vectors failed:\n" + self.format())


# -- the runner ----------------------------------------------------------------------------------


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: objects merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _full_definition(
    spec: PluginSpec, overlay: Mapping[str, Any], upstream_url: str
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "org_id": "conformance",
        "active": True,
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    document = _merge(_merge(defaults, spec.definition), overlay)
    # The plugin's identity is the vectors' (they check it): a driver's part may not move it.
    document["api_id"] = spec.definition["api_id"]
    document.setdefault("proxy", {})["target_url"] = upstream_url
    document["proxy"]["listen_path"] = spec.definition["proxy"]["listen_path"]
    return document


def _write_definitions(documents: Sequence[Mapping[str, Any]]) -> Path:
    """A new temporary folder holding ``documents``, one file each (the gateway's apps folder)."""
    folder = Path(tempfile.mkdtemp(prefix="trio-gateway-conformance-"))
    for document in documents:
        (folder / f"{document['api_id']}.json").write_text(json.dumps(document), "utf-8")
    return folder


async def _run_vector(
    vector: Vector, upstream: RecordingUpstream, address: tuple[str, int], seconds: float
) -> VectorOutcome:
    upstream.reply = vector.upstream_reply
    upstream.received.clear()
    try:
        with trio.fail_after(seconds):
            response = await send_request(address, vector.request)
    except trio.TooSlowError:
        return VectorOutcome(vector=vector, differences=(f"no response within {seconds} s",))
    except (OSError, ValueError, httptools.HttpParserError) as exc:
        return VectorOutcome(
            vector=vector, differences=(f"no response: {type(exc).__name__}: {exc}",)
        )
    differences = _upstream_differences(vector.upstream, upstream.received)
    differences += _response_differences(vector.response, response)
    return VectorOutcome(vector=vector, differences=tuple(differences))


async def run_conformance(
    definitions: Mapping[str, Mapping[str, Any]],
    *,
    config: GatewayConfig | None = None,
    vectors: VectorSet | None = None,
    request_timeout: float = 10.0,
) -> ConformanceReport:
    """Run the vectors through a real gateway over loopback sockets and report every difference.

    Args:
        definitions: plugin name (a key of ``vectors.plugins``) -> the driver's part of that
            plugin's API definition, usually just ``{"custom_middleware": {...}}``; it is merged
            over the vectors' shared fields (``api_id``, listen path and upstream are fixed by
            the runner). Relative plugin paths would resolve from a temporary folder: read
            definitions with :func:`definition_from_file`, or give absolute paths. Plugins left
            out are listed in the report's ``not_covered``.
        config: the gateway's settings (e.g. the gRPC plugin server for the ``grpc`` driver);
            the listen address is replaced by a free loopback port.
        vectors: the vectors to run (default: the shipped ones, :func:`load_vectors`).
        request_timeout: seconds each vector's request may take.

    Raises:
        ConformanceSetupError: a plugin name the vectors do not know, or a definition the
            gateway refused.
    """
    vectors = vectors or load_vectors()
    unknown = sorted(set(definitions) - set(vectors.plugins))
    if unknown:
        raise ConformanceSetupError(f"no conformance plugin named {', '.join(unknown)}")
    for name, overlay in definitions.items():
        if not isinstance(overlay, Mapping):
            raise ConformanceSetupError(f"{name}: expected an object (a definition's part)")
    config = attrs.evolve(config or GatewayConfig(), listen=ListenConfig(host="127.0.0.1", port=0))
    upstream = RecordingUpstream()
    upstream_server = HttpServer(handler=upstream.handle, log_requests=False, access_log=None)
    outcomes: list[VectorOutcome] = []
    refused: list[str] = []
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(upstream_server.serve, "127.0.0.1", 0)
        documents = [
            _full_definition(vectors.plugins[name], overlay, f"http://{host}:{port}/")
            for name, overlay in definitions.items()
        ]
        folder = await trio.to_thread.run_sync(_write_definitions, documents)
        try:
            running: RunningGateway = await nursery.start(
                functools.partial(serve_gateway, config, apps_dir=folder)
            )
            refused = list(running.report.errors)
            for name in definitions if not refused else ():
                for vector in vectors.for_plugin(name):
                    outcomes.append(
                        await _run_vector(vector, upstream, running.address, request_timeout)
                    )
        finally:
            # A few small files: removing them is quick, and must happen even when cancelled.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(shutil.rmtree, folder, True)
        nursery.cancel_scope.cancel()
    if refused:
        # Raised here, outside the nursery, so the caller gets it as it is (not in a group).
        raise ConformanceSetupError(f"the gateway refused definitions: {'; '.join(refused)}")
    not_covered = tuple(name for name in vectors.plugins if name not in definitions)
    return ConformanceReport(outcomes=tuple(outcomes), not_covered=not_covered)


# The names defined in the private modules show as this module's (in docs and tracebacks).
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("trio_gateway.testing._"):
        _value.__module__ = __name__
del _name, _value
