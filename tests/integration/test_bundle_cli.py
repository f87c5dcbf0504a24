"""``trio-gateway bundle build|verify`` and compatibility with Tyk's bundler, checked with the
``openssl`` command line: a bundle signed by openssl exactly as Tyk's bundler signs loads here,
and a bundle built here verifies with openssl."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import trio

from tests.helpers.bundles import (
    HELPERS,
    PLUGIN,
    bundles_config,
    make_bundle,
    public_pem,
    rsa_key,
    sent_headers,
    serve,
    setup,
)
from tests.helpers.client import fetch
from trio_gateway._cli import main
from trio_gateway._config.model import BundlesConfig, GatewayConfig

EXAMPLE_BUNDLES = Path(__file__).resolve().parents[2] / "examples" / "bundles"


def openssl(*args: str, stdin: bytes = b"") -> bytes:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """An RSA key pair made by openssl: PKCS#1 ``RSA PRIVATE KEY``, as Tyk's docs make it."""
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    openssl("genrsa", "-traditional", "-out", str(private), "2048")
    openssl("rsa", "-in", str(private), "-pubout", "-out", str(public))
    return private, public


def write_plugin_folder(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "middleware.py").write_bytes(PLUGIN)
    (folder / "helpers.py").write_bytes(HELPERS)
    manifest = {
        "file_list": ["middleware.py", "helpers.py"],
        "custom_middleware": {"driver": "python", "pre": [{"name": "tag"}]},
        "checksum": "",
        "signature": "",
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


async def test_a_bundle_signed_with_openssl_as_tyk_signs_loads(
    nursery: trio.Nursery, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(PLUGIN + HELPERS)  # the file_list files' bytes, in order
    checksum = openssl("dgst", "-md5", "-r", str(data_file)).split()[0].decode()
    signature = openssl("dgst", "-sha256", "-sign", str(private), str(data_file))
    # Go's json.Marshal of Tyk's manifest struct: its field order, no spaces.
    manifest = json.dumps(
        {
            "file_list": ["middleware.py", "helpers.py"],
            "custom_middleware": {"pre": [{"name": "tag"}], "driver": "python"},
            "checksum": checksum,
            "signature": base64.b64encode(signature).decode(),
        },
        separators=(",", ":"),
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("middleware.py", PLUGIN)
        zf.writestr("helpers.py", HELPERS)
        zf.writestr("manifest.json", manifest)
    s = await setup(nursery, tmp_path)
    s.server.files["b.zip"] = out.getvalue()
    gw = await serve(nursery, s, "b.zip", bundles_config(s, public_key_path=str(public)))
    response = await fetch(gw.address, "GET", "/bundled/x")
    assert response.status == 200
    assert sent_headers(response.body)["x-bundle"] == "from-bundle"


def test_a_bundle_built_here_verifies_with_openssl(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    manifest = write_plugin_folder(tmp_path / "plugin")
    output = tmp_path / "bundle.zip"
    code = main(["bundle", "build", "-m", str(manifest), "-o", str(output), "-k", str(private)])
    assert code == 0, capsys.readouterr()
    with zipfile.ZipFile(output) as zf:
        # Tyk's layout: the file_list files in order, then the manifest.
        assert zf.namelist() == ["middleware.py", "helpers.py", "manifest.json"]
        written = json.loads(zf.read("manifest.json"))
        data = zf.read("middleware.py") + zf.read("helpers.py")
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(written["signature"]))
    verified = openssl(
        "dgst",
        "-sha256",
        "-verify",
        str(public),
        "-signature",
        str(tmp_path / "sig.bin"),
        str(tmp_path / "data.bin"),
    )
    assert verified.strip() == b"Verified OK"
    md5 = openssl("dgst", "-md5", "-r", str(tmp_path / "data.bin")).split()[0].decode()
    assert written["checksum"] == md5
    assert (output.stat().st_mode & 0o777) == 0o755
    assert main(["bundle", "verify", str(output), "--key", str(public)]) == 0
    assert "checksum and signature verified" in capsys.readouterr().out


def test_verify_reports_a_tampered_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = rsa_key()
    (tmp_path / "public.pem").write_bytes(public_pem(key))
    good = make_bundle(key=key)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        manifest = zf.read("manifest.json")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("middleware.py", PLUGIN + b"# changed\n")
        zf.writestr("helpers.py", HELPERS)
        zf.writestr("manifest.json", manifest)
    assert main(["bundle", "verify", str(bad)]) == 1
    assert "invalid checksum" in capsys.readouterr().err
    unsigned = tmp_path / "unsigned.zip"
    unsigned.write_bytes(make_bundle())
    assert main(["bundle", "verify", str(unsigned), "--key", str(tmp_path / "public.pem")]) == 1
    assert "Bundle isn't signed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"file_list": ["middleware.py", "missing.py"]}, "Referencing a nonexistent file"),
        ({"custom_middleware": {"driver": "python"}}, "No hooks defined"),
        ({"custom_middleware": {"pre": [{"name": "tag"}]}}, "No driver specified"),
    ],
)
def test_build_refuses_with_tyks_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], message: str
) -> None:
    manifest = write_plugin_folder(tmp_path / "plugin")
    doc = json.loads(manifest.read_text())
    doc.update(change)
    manifest.write_text(json.dumps(doc))
    output = tmp_path / "bundle.zip"
    assert main(["bundle", "build", "-m", str(manifest), "-o", str(output), "-y"]) == 1
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_build_without_a_key_asks_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_plugin_folder(tmp_path / "plugin")
    output = tmp_path / "bundle.zip"
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["bundle", "build", "-m", str(manifest), "-o", str(output)]) == 1
    assert not output.exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert main(["bundle", "build", "-m", str(manifest), "-o", str(output)]) == 0
    assert main(["bundle", "verify", str(output)]) == 0


def test_check_reports_a_bundle_failure_like_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import write_keyless_api

    apps = tmp_path / "apps"
    write_keyless_api(
        apps,
        api_id="bundled",
        listen_path="/b/",
        target_url="http://127.0.0.1:1",
        custom_middleware_bundle="b.zip",
    )
    write_keyless_api(apps, api_id="plain", listen_path="/p/", target_url="http://127.0.0.1:1")
    conf = tmp_path / "tyk.conf"
    conf.write_text(
        json.dumps(
            {"middleware_path": str(tmp_path / "mw"), "bundle_base_url": "http://b.invalid/"}
        )
    )
    assert main(["check", "--apps", str(apps), "--config", str(conf)]) == 1
    out = capsys.readouterr().out
    assert "plugin bundle 'b.zip': Bundle downloader is disabled" in out
    assert "ok: " in out
    assert "plain" in out


async def test_the_example_bundle_builds_and_runs(
    nursery: trio.Nursery, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tests.helpers import start_gateway, write_keyless_api
    from tests.helpers.upstream import start_upstream

    example = EXAMPLE_BUNDLES
    source = tmp_path / "add-headers"
    shutil.copytree(example / "add-headers", source)
    served = tmp_path / "served"
    served.mkdir()
    manifest, output = source / "manifest.json", served / "add-headers-v1.zip"
    assert main(["bundle", "build", "-y", "-m", str(manifest), "-o", str(output)]) == 0
    upstream = await start_upstream(nursery)
    doc = json.loads((example / "apps" / "add-headers-bundle.json").read_text())
    write_keyless_api(
        tmp_path / "apps",
        api_id=doc["api_id"],
        listen_path=doc["proxy"]["listen_path"],
        target_url=upstream.url,
        custom_middleware_bundle=doc["custom_middleware_bundle"],
        config_data=doc["config_data"],
    )
    config = GatewayConfig(
        bundles=BundlesConfig(
            enable_downloader=True,
            base_url=served.as_uri(),
            middleware_path=str(tmp_path / "middleware"),
        )
    )
    gw = await start_gateway(nursery, tmp_path / "apps", config=config)
    response = await fetch(gw.address, "GET", "/bundle/headers/x", [("X-Internal-Debug", "1")])
    headers = sent_headers(response.body)
    assert headers["x-gateway"] == "bundle-gateway"
    assert "x-internal-debug" not in headers
