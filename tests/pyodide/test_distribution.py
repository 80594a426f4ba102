"""Checks of the built Pyodide distribution: the sona-web wheel and the trimmed lock file."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

EXPECTED_PACKAGES = {"numpy", "micropip", "packaging", "sona-web"}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lock(pyodide_dist_dir: Path) -> dict:
    return json.loads((pyodide_dist_dir / "pyodide-lock.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(pyodide_dist_dir: Path) -> Path:
    wheels = sorted(pyodide_dist_dir.glob("sona_web-*.whl"))
    assert len(wheels) == 1, f"expected one sona-web wheel in {pyodide_dist_dir}, found {wheels}"
    return wheels[0]


def test_wheel_tag_is_pure(wheel: Path):
    name, _, _, tags = parse_wheel_filename(wheel.name)

    assert name == "sona-web"
    assert {str(tag) for tag in tags} == {"py3-none-any"}


def test_wheel_metadata_is_purelib(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        wheel_file = next(n for n in archive.namelist() if n.endswith(".dist-info/WHEEL"))
        metadata = archive.read(wheel_file).decode()

    assert "Root-Is-Purelib: true" in metadata
    assert "Tag: py3-none-any" in metadata


def test_wheel_holds_only_the_package(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/", 1)[0] for name in archive.namelist()}

    assert top_level == {"sona_web", wheel.name.split("-py3")[0] + ".dist-info"}


def test_lock_entry_for_sona_web(lock: dict, wheel: Path):
    entry = lock["packages"]["sona-web"]

    assert entry["name"] == "sona-web"
    assert entry["file_name"] == wheel.name
    assert entry["sha256"] == sha256_of(wheel)
    assert entry["depends"] == ["numpy"]
    assert entry["imports"] == ["sona_web"]


def test_lock_lists_only_present_files(lock: dict, pyodide_dist_dir: Path):
    assert set(lock["packages"]) == EXPECTED_PACKAGES
    for name, entry in lock["packages"].items():
        path = pyodide_dist_dir / entry["file_name"]
        assert path.is_file(), f"{name}: {entry['file_name']} listed but missing"
        assert sha256_of(path) == entry["sha256"], f"{name}: sha256 differs from the lock"


def test_lock_info_is_release(lock: dict):
    assert lock["info"]["version"] == "0.27.7"
    assert lock["info"]["python"].startswith("3.12.")
    assert lock["packages"]["numpy"]["version"] == "2.0.2"


def test_site_links_distribution(pyodide_dist_dir: Path, wheel: Path):
    site = pyodide_dist_dir.parent / "site"
    if not (site / "build-info.json").is_file():
        pytest.skip(f"no site beside {pyodide_dist_dir}: --dist-dir points outside a build_site.py output")
    info = json.loads((site / "build-info.json").read_text(encoding="utf-8"))

    assert info["sona_web"]["wheel"] == wheel.name
    assert info["sona_web"]["sha256"] == sha256_of(wheel)
    if info["mode"] == "offline":
        assert (site / "pyodide" / "pyodide.asm.wasm").is_file()
        assert sha256_of(site / "pyodide" / wheel.name) == sha256_of(wheel)
