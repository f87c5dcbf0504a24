"""Custom auth's ID extractor (Tyk's ``id_extractor``; tyk-compat §2.3, §4.6 step 2). Pure.

The extractor reads a credential from the request; the session custom auth creates is cached in
the store under :func:`session_id` of it until the session's ``id_extractor_deadline``, and while
that holds the auth plugin is not called.

Supported as in Tyk: ``value`` from a header or a form field; ``regex`` over a header, a form field
or the whole body, picking ``regex_match_index`` among *all whole matches* (Go's
``FindAllString``), not capture groups. Tyk hashes an empty value for the pairs it does not
implement (``value``/``body``, any ``xpath``), which would make every request share one cached
session; we do not cache then (:func:`usable` is False and the plugin runs every time).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl

import attrs

from .._apidef.model import IdExtractor

__all__ = ["CompiledExtractor", "compile_extractor", "session_id"]

_SOURCES = {"value": frozenset({"header", "form"}), "regex": frozenset({"header", "form", "body"})}


@attrs.frozen(kw_only=True)
class CompiledExtractor:
    """An extractor ready for requests (compiled once at load time)."""

    source: str  # header | form | body
    header_name: bytes = b""
    param_name: str = ""
    pattern: re.Pattern[str] | None = None
    match_index: int = 0

    @property
    def needs_body(self) -> bool:
        return self.source in ("form", "body")

    def extract(self, header: bytes | None, query: str, body: bytes) -> str:
        """The credential ("" when there is none). ``header`` is the configured header's value;
        ``query`` and ``body`` feed the ``form`` source (Go's ``r.Form``: query + form body)."""
        if self.source == "header":
            raw = header.decode("latin-1") if header is not None else ""
        elif self.source == "form":
            raw = _form_value(query, body, self.param_name)
        else:
            raw = body.decode("utf-8", "replace")
        if self.pattern is None:
            return raw
        if not raw:
            return ""
        matches = [m.group(0) for m in self.pattern.finditer(raw)]
        if 0 <= self.match_index < len(matches):
            return matches[self.match_index]
        return ""


def _form_value(query: str, body: bytes, name: str) -> str:
    # Go's Form.Get: body values come first, then the query's.
    for source in (body.decode("latin-1"), query):
        for key, value in parse_qsl(source, keep_blank_values=True):
            if key == name:
                return value
    return ""


def compile_extractor(extractor: IdExtractor | None) -> CompiledExtractor | None:
    """None when there is no usable extractor (absent, disabled, or a pair Tyk leaves empty).

    Raises ``ValueError`` for a regular expression that does not compile.
    """
    if extractor is None or extractor.disabled:
        return None
    if extractor.extract_from not in _SOURCES.get(extractor.extract_with, frozenset()):
        return None
    pattern = None
    if extractor.extract_with == "regex":
        pattern = re.compile(extractor.regex_expression)
    return CompiledExtractor(
        source=extractor.extract_from,
        header_name=extractor.header_name.lower().encode("latin-1"),
        param_name=extractor.param_name,
        pattern=pattern,
        match_index=extractor.regex_match_index,
    )


def session_id(org_id: str, value: str) -> str:
    """The key the session is cached under: Tyk's legacy ``generateToken`` (org id + md5 hex)."""
    return org_id + hashlib.md5(value.encode()).hexdigest()  # an identifier, not a secret
