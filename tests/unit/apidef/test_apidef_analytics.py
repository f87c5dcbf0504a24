"""Analytics settings in API definitions: do_not_track, tags, expiry and the analytics plugin
(Classic ``analytics_plugin``, OAS ``middleware.global.trafficLogs``)."""

from __future__ import annotations

import pytest
from apidef_builders import make_classic, make_oas, messages_of

from trio_gateway._apidef.classic import parse_classic
from trio_gateway._apidef.model import AnalyticsPluginRef
from trio_gateway._apidef.oas import parse_oas
from trio_gateway.errors import ApiDefinitionError


def test_classic_analytics_settings_are_read() -> None:
    api = parse_classic(
        make_classic(
            do_not_track=True,
            enable_detailed_recording=True,
            tags=["a", "b"],
            expire_analytics_after=60,
            analytics_plugin={
                "enable": True,
                "plugin_path": "plugins/mask.py",
                "func_name": "mask",
                "timeout": 0.5,
            },
        ),
        "x.json",
    )
    assert api.do_not_track is True
    assert api.detailed_recording is True
    assert api.tags == ("a", "b")
    assert api.expire_analytics_after == 60
    assert api.analytics_plugin == AnalyticsPluginRef(
        path="plugins/mask.py", function_name="mask", timeout=0.5
    )
    assert api.warnings == ()


def test_a_disabled_classic_analytics_plugin_is_no_plugin() -> None:
    doc = make_classic(analytics_plugin={"enable": False, "plugin_path": "x.so", "func_name": "F"})
    assert parse_classic(doc, "x.json").analytics_plugin is None


def test_a_go_analytics_plugin_is_refused_naming_the_key() -> None:
    doc = make_classic(
        analytics_plugin={"enable": True, "plugin_path": "analytics.so", "func_name": "Mask"}
    )
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_classic(doc, "x.json")
    assert "analytics_plugin.plugin_path" in messages_of(excinfo)
    assert "Go plugin (.so)" in messages_of(excinfo)


def test_oas_traffic_logs_and_their_plugin() -> None:
    plugins = [
        {"enabled": False, "path": "off.py", "functionName": "off"},
        {"enabled": True, "path": "mask.py", "functionName": "mask"},
    ]
    api = parse_oas(
        make_oas(
            {
                "x.middleware.global.trafficLogs": {"enabled": True, "plugins": plugins},
                "x.server.detailedActivityLogs": {"enabled": True},
            }
        ),
        "x.json",
    )
    assert api.do_not_track is False
    assert api.detailed_recording is True
    assert api.analytics_plugin == AnalyticsPluginRef(path="mask.py", function_name="mask")
    assert api.warnings == ()
    # As in Tyk's OAS mapping, an API without trafficLogs.enabled records nothing.
    assert parse_oas(make_oas(), "x.json").do_not_track is True


def test_oas_go_analytics_plugin_is_refused() -> None:
    plugins = [{"enabled": True, "path": "a.so", "functionName": "F"}]
    doc = make_oas({"x.middleware.global.trafficLogs": {"enabled": True, "plugins": plugins}})
    with pytest.raises(ApiDefinitionError) as excinfo:
        parse_oas(doc, "x.json")
    assert "trafficLogs.plugins[0].path" in messages_of(excinfo)
