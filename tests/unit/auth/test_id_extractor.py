"""The ID extractor (pure): sources, value/regex, whole-match index, unsupported pairs."""

from __future__ import annotations

import hashlib
import re

import pytest

from trio_gateway._apidef.model import IdExtractor
from trio_gateway._auth.id_extractor import compile_extractor, session_id


def extractor(**fields: object) -> IdExtractor:
    return IdExtractor(**fields)  # type: ignore[arg-type]


def test_header_value() -> None:
    ex = compile_extractor(
        extractor(extract_from="header", extract_with="value", header_name="X-Token")
    )
    assert ex is not None
    assert ex.header_name == b"x-token"
    assert ex.extract(b"abc", "", b"") == "abc"
    assert ex.extract(None, "", b"") == ""


def test_form_value_prefers_the_body_then_the_query() -> None:
    ex = compile_extractor(extractor(extract_from="form", extract_with="value", param_name="id"))
    assert ex is not None
    assert ex.needs_body
    assert ex.extract(None, "id=q", b"id=b&x=1") == "b"
    assert ex.extract(None, "id=q", b"x=1") == "q"
    assert ex.extract(None, "", b"") == ""


def test_regex_index_counts_whole_matches_not_groups() -> None:
    ex = compile_extractor(
        extractor(
            extract_from="body",
            extract_with="regex",
            regex_expression=r"id-(\d+)",
            regex_match_index=1,
        )
    )
    assert ex is not None
    assert ex.extract(None, "", b"id-1 id-22 id-333") == "id-22"
    assert ex.extract(None, "", b"id-1") == ""  # index out of range: no credential
    assert ex.extract(None, "", b"") == ""


def test_regex_over_a_header() -> None:
    ex = compile_extractor(
        extractor(
            extract_from="header",
            extract_with="regex",
            header_name="Authorization",
            regex_expression=r"[a-z]+$",
        )
    )
    assert ex is not None
    assert ex.extract(b"Bearer 123abc", "", b"") == "abc"


@pytest.mark.parametrize(
    "fields",
    [
        {"extract_from": "body", "extract_with": "value"},  # Tyk would hash ""
        {"extract_from": "header", "extract_with": "xpath"},
        {"extract_from": "querystring", "extract_with": "value"},
        {"extract_from": "header", "extract_with": "value", "disabled": True},
    ],
)
def test_unusable_extractors_are_not_used(fields: dict[str, object]) -> None:
    assert compile_extractor(extractor(**fields)) is None
    assert compile_extractor(None) is None


def test_bad_regex_is_refused() -> None:
    with pytest.raises(re.error):
        compile_extractor(
            extractor(extract_from="header", extract_with="regex", regex_expression="(")
        )


def test_session_id_is_tyks_legacy_token() -> None:
    assert session_id("org", "v") == "org" + hashlib.md5(b"v").hexdigest()
