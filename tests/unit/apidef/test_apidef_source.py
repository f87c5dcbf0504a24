from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apidef_builders import make_classic, make_oas

from trio_gateway._apidef.source import (
    load_api_definition_file,
    load_api_definitions,
    parse_definition,
)
from trio_gateway.errors import ApiDefinitionError

REPO = Path(__file__).resolve().parents[3]


def _write(folder: Path, name: str, doc: Any) -> Path:
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def test_loads_both_formats_sorted(tmp_path: Path) -> None:
    _write(tmp_path, "b.json", make_classic(api_id="b", proxy__listen_path="/b/"))
    _write(tmp_path, "a.json", make_oas({"x.info.id": "a", "x.server.listenPath.value": "/a/"}))
    _write(tmp_path, "notes.txt", "not json")
    report = load_api_definitions(tmp_path)
    assert [api.api_id for api in report.apis] == ["a", "b"]
    assert [api.format for api in report.apis] == ["oas", "classic"]
    assert report.errors == []
    assert report.warnings == []
    assert report.ok


def test_broken_files_beside_good_ones(tmp_path: Path) -> None:
    _write(tmp_path, "1-bad-json.json", '{"api_id": "x",\n  "proxy": }')
    _write(tmp_path, "2-wrong-type.json", make_classic(api_id="w", proxy__listen_path=7))
    _write(tmp_path, "3-missing.json", {"name": "no id"})
    _write(tmp_path, "4-good.json", make_classic())
    report = load_api_definitions(tmp_path)
    assert [api.api_id for api in report.apis] == ["a1"]
    bad_json = str(tmp_path / "1-bad-json.json")
    assert f"{bad_json}: invalid JSON at line 2, column 12" in report.errors[0]
    assert any(
        e.startswith(str(tmp_path / "2-wrong-type.json"))
        and "proxy.listen_path: expected a string, got a number" in e
        for e in report.errors
    )
    assert any(e == f"{tmp_path / '3-missing.json'}: api_id: required" for e in report.errors)
    assert not report.ok


def test_duplicate_api_id_refuses_the_second(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", make_classic(proxy__listen_path="/one/"))
    _write(tmp_path, "b.json", make_classic(proxy__listen_path="/two/"))
    report = load_api_definitions(tmp_path)
    assert [api.source for api in report.apis] == [str(tmp_path / "a.json")]
    assert report.errors == [
        f"{tmp_path / 'b.json'}: api_id 'a1' is already used by {tmp_path / 'a.json'}; not loaded"
    ]


def test_duplicate_listen_path_refuses_the_second(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", make_classic(api_id="one", proxy__listen_path="/orders"))
    _write(tmp_path, "b.json", make_oas({"x.info.id": "two"}))  # "/orders/": the same route
    _write(tmp_path, "c.json", make_classic(api_id="three", domain="shop.example.com"))
    report = load_api_definitions(tmp_path)
    assert [api.api_id for api in report.apis] == ["one", "three"]
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"{tmp_path / 'b.json'}: listen path '/orders/'")
    assert str(tmp_path / "a.json") in report.errors[0]


def test_inactive_api_is_not_served(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", make_classic(active=False))
    report = load_api_definitions(tmp_path)
    assert report.apis == []
    assert report.warnings == [f"{tmp_path / 'a.json'}: active is false; the API is not served"]


def test_definition_warnings_carry_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", make_classic(odd=1))
    report = load_api_definitions(tmp_path)
    assert report.warnings == [f"{tmp_path / 'a.json'}: odd: not a Tyk Classic key, ignored"]


def test_oas_file_mode_pair_loads_as_one_api(tmp_path: Path) -> None:
    classic_half = make_classic(api_id="pair", is_oas=True)
    oas_half = make_oas({"x.info": {"name": "Pair", "state": {"active": True}}})
    _write(tmp_path, "pair.json", classic_half)
    _write(tmp_path, "pair-oas.json", oas_half)
    report = load_api_definitions(tmp_path)
    assert report.errors == []
    assert len(report.apis) == 1
    api = report.apis[0]
    assert (api.api_id, api.name, api.format) == ("pair", "Pair", "oas")
    assert api.source == str(tmp_path / "pair-oas.json")
    # loading either half on its own gives the same API
    assert load_api_definition_file(tmp_path / "pair.json") == api


def test_is_oas_without_its_twin_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "lonely.json", make_classic(is_oas=True))
    report = load_api_definitions(tmp_path)
    assert report.apis == []
    assert report.errors == [
        f"{tmp_path / 'lonely.json'}: is_oas: true, but its OAS document lonely-oas.json is missing"
    ]


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    report = load_api_definitions(tmp_path / "nope")
    assert report.apis == []
    assert report.ok
    with pytest.raises(ApiDefinitionError, match="cannot read"):
        load_api_definition_file(tmp_path / "nope.json")  # ... a missing file is


def test_parse_definition_detects_format() -> None:
    assert parse_definition(make_oas(), "admin API").format == "oas"
    assert parse_definition(make_classic(), "admin API").format == "classic"
    with pytest.raises(ApiDefinitionError, match="without x-tyk-api-gateway"):
        parse_definition({"openapi": "3.0.3"}, "admin API")
    with pytest.raises(ApiDefinitionError, match="expected a JSON object"):
        parse_definition("x", "admin API")


def test_bundled_examples_load_cleanly() -> None:
    report = load_api_definitions(REPO / "trio_gateway" / "_examples" / "apps")
    assert report.errors == []
    assert report.warnings == []
    by_id = {api.api_id: api for api in report.apis}
    assert by_id["demo-classic"].listen_path == "/demo/"
    assert by_id["demo-oas"].listen_path == "/demo-oas/"
    for api in report.apis:
        assert api.use_keyless
        assert api.strip_listen_path
        assert api.target_url == "http://127.0.0.1:8091/"


def test_repo_examples_are_the_same_api_in_both_formats() -> None:
    report = load_api_definitions(REPO / "examples" / "apps")
    assert report.errors == []
    assert report.warnings == []
    classic, oas = sorted(report.apis, key=lambda a: a.format)
    assert (classic.format, oas.format) == ("classic", "oas")
    same_fields = (
        "org_id",
        "target_url",
        "strip_listen_path",
        "use_keyless",
        "middleware",
        "auth",
        "custom_auth",
        "global_rate_limit",
        "preserve_host_header",
        "domain",
    )
    for field in same_fields:
        assert getattr(classic, field) == getattr(oas, field), field
    assert classic.config_data == oas.config_data


# --- Tyk Dashboard exports ------------------------------------------------------------------


def _dashboard_export(**extra: Any) -> dict[str, Any]:
    # The shape of GET /api/apis/{id}, the Dashboard's export button and tyk-sync dumps.
    return {"api_model": {}, "hook_references": [], "is_site": False, "sort_by": 0, **extra}


def test_a_dashboard_classic_export_loads_without_unwrapping(tmp_path: Path) -> None:
    doc = _dashboard_export(api_definition=make_classic(api_id="dash", proxy__listen_path="/d/"))
    path = _write(tmp_path, "api-dash.json", doc)
    api = load_api_definition_file(path)
    assert (api.api_id, api.listen_path, api.format) == ("dash", "/d/", "classic")


def test_a_dashboard_oas_export_loads_its_oas_document(tmp_path: Path) -> None:
    oas = make_oas({"x.server.listenPath.value": "/o/"})
    oas["x-tyk-api-gateway"]["info"].pop("id", None)  # then the Classic half names it
    classic = make_classic(api_id="from-classic", is_oas=True, proxy__listen_path="/o/")
    path = _write(tmp_path, "api-oas.json", _dashboard_export(api_definition=classic, oas=oas))
    api = load_api_definition_file(path)
    assert (api.api_id, api.listen_path, api.format) == ("from-classic", "/o/", "oas")


def test_a_dashboard_oas_export_without_its_document_says_what_to_export() -> None:
    doc = _dashboard_export(api_definition=make_classic(is_oas=True))
    with pytest.raises(ApiDefinitionError) as info:
        parse_definition(doc, "x.json")
    assert "export the API with its OAS document" in info.value.messages[0]


def test_a_dashboard_api_list_says_to_split_it() -> None:
    entry = _dashboard_export(api_definition=make_classic())
    with pytest.raises(ApiDefinitionError) as info:
        parse_definition({"apis": [entry, entry], "pages": 1}, "list.json")
    assert info.value.messages == [
        "list.json: this is a Tyk Dashboard API list (2 entries under `apis`); save each entry "
        "in its own file (the entry as it is, or its `api_definition`)"
    ]
