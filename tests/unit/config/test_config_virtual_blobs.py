"""Tyk's ``disable_virtual_path_blobs`` reaches the JavaScript settings from every source."""

from __future__ import annotations

from pathlib import Path

from trio_gateway._config.load import load_config


def test_disable_virtual_path_blobs_from_env_tyk_conf_and_toml(tmp_path: Path) -> None:
    assert load_config(None, {}, {})[0].javascript.disable_virtual_path_blobs is False
    config, warnings = load_config(None, {"TYK_GW_DISABLEVIRTUALPATHBLOBS": "true"}, {})
    assert (config.javascript.disable_virtual_path_blobs, warnings) == (True, [])
    conf = tmp_path / "tyk.conf"
    conf.write_text('{"disable_virtual_path_blobs": true}')
    assert load_config(conf, {}, {})[0].javascript.disable_virtual_path_blobs is True
    toml = tmp_path / "gateway.toml"
    toml.write_text("[javascript]\ndisable_virtual_path_blobs = true\n")
    assert load_config(toml, {}, {})[0].javascript.disable_virtual_path_blobs is True
