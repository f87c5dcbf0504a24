"""The pytest plugin (fixtures with no conftest) and ``trio-gateway test-plugins``."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from trio_gateway._cli import main

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples"

pytest_plugins = ["pytester"]


def test_fixtures_come_from_the_entry_point_without_a_conftest(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "plugins").mkdir()
    shutil.copy(EXAMPLES / "plugins" / "add_headers.py", pytester.path / "plugins")
    shutil.copy(EXAMPLES / "apps-plugins" / "add-headers.json", pytester.path / "api.json")
    doc = json.loads((pytester.path / "api.json").read_text())
    doc["custom_middleware"]["pre"][0]["path"] = "plugins/add_headers.py"
    (pytester.path / "api.json").write_text(json.dumps(doc))
    pytester.makepyfile(
        """
        async def test_header_reaches_upstream(gateway_harness):
            async with gateway_harness("api.json") as h:
                r = await h.request("GET", h.path("x"))
            assert r.upstream.header("x-gateway") == "example-gateway"
        """
    )
    result = pytester.runpytest_subprocess("-p", "trio", "-o", "trio_mode=true")
    result.assert_outcomes(passed=1)


def test_gateway_fake_upstream_and_session_store_are_the_style_guides_fixtures(
    pytester: pytest.Pytester,
) -> None:
    """``gateway`` serves against ``fake_upstream`` (queued replies, then the echo; ``seen``
    records) with the sessions put in ``session_store``; ``gateway_harness`` stays an alias."""
    (pytester.path / "plugins").mkdir()
    shutil.copy(EXAMPLES / "plugins" / "add_headers.py", pytester.path / "plugins")
    doc = json.loads((EXAMPLES / "apps-plugins" / "add-headers.json").read_text())
    doc["custom_middleware"]["pre"][0]["path"] = "plugins/add_headers.py"
    (pytester.path / "add-headers.json").write_text(json.dumps(doc))
    pytester.makepyfile(
        """
        from trio_gateway.hooks import Session
        from trio_gateway.testing import UpstreamReply

        async def test_fake_upstream(gateway, fake_upstream):
            fake_upstream.reply(UpstreamReply(status=503, body=b"down"))
            async with gateway("add-headers.json") as h:
                first = await h.request("GET", h.path("a"))
                second = await h.request("GET", h.path("b"))
            assert (first.status, first.body) == (503, b"down")
            assert second.status == 200 and second.json()["path"] == "/b"
            assert [seen.path for seen in fake_upstream.seen] == ["/a", "/b"]
            assert fake_upstream.seen[0].header("x-gateway") == "example-gateway"

        KEYED = {
            "api_id": "keyed", "org_id": "default", "use_keyless": False,
            "auth": {"auth_header_name": "Authorization"},
            "proxy": {"listen_path": "/keyed/", "target_url": "http://up.invalid/"},
        }

        async def test_session_store(gateway, session_store):
            session_store["stored-key"] = Session(org_id="default")
            async with gateway(KEYED) as h:
                known = await h.request("GET", h.path(), headers={"Authorization": "stored-key"})
                unknown = await h.request("GET", h.path(), headers={"Authorization": "other"})
            assert (known.status, unknown.status) == (200, 403)

        async def test_the_old_name(gateway_harness):
            async with gateway_harness("add-headers.json") as h:
                assert (await h.request("GET", h.path("x"))).status == 200
        """
    )
    result = pytester.runpytest_subprocess("-p", "trio", "-o", "trio_mode=true")
    result.assert_outcomes(passed=3)


def _apps(tmp_path: Path, hook: str) -> Path:
    apps = tmp_path / "apps"
    apps.mkdir(parents=True)
    doc = {
        "api_id": "cli",
        "org_id": "o",
        "use_keyless": True,
        "proxy": {"listen_path": "/c/", "target_url": "http://up.invalid/"},
        "custom_middleware": {
            "driver": "python",
            "pre": [{"name": hook, "path": str(HERE / "plugins" / "buggy.py")}],
        },
    }
    (apps / "cli.json").write_text(json.dumps(doc))
    return apps


def test_test_plugins_exits_1_on_a_buggy_plugin_and_0_on_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = main(["test-plugins", "--apps", str(_apps(tmp_path / "a", "bug_no_errors")),
                "--max-examples", "20"])  # fmt: skip
    out = capsys.readouterr().out
    assert bad == 1
    assert "no_errors" in out
    assert "smallest example found" in out
    good = main(["test-plugins", "--apps", str(_apps(tmp_path / "b", "fixed_no_errors")),
                 "--max-examples", "20"])  # fmt: skip
    assert good == 0


def test_test_plugins_exits_2_naming_the_extra_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_hypothesis(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hypothesis)
    assert main(["test-plugins", "--apps", str(tmp_path)]) == 2
    assert "trio-gateway[testing]" in capsys.readouterr().err


def test_test_plugins_exits_2_for_a_missing_folder(tmp_path: Path) -> None:
    assert main(["test-plugins", "--apps", str(tmp_path / "nope")]) == 2
