"""Pyodide test set-up: where the distribution is, and Chromium for pytest-pyodide.

The ``@run_in_pyodide`` tests load numpy and the built sona-web wheel from the
distribution that ``build_scripts/build_site.py`` writes to ``dist/pyodide``.
Without ``--dist-dir`` they use that folder and skip when it is missing; with
an explicit ``--dist-dir`` a missing distribution is a usage error.

The default runtime is Node. ``--rt chrome --runner playwright`` runs the same
tests in the system Chromium, because ``playwright install`` is not available
offline.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_DIST_DIR = REPO_ROOT / "dist" / "pyodide"
BUILD_SCRIPTS_DIR = REPO_ROOT / "build_scripts"
TESTS_DIR = Path(__file__).resolve().parent

# pytest-pyodide's default for --dist-dir, relative to the working folder.
DEFAULT_DIST_DIR_OPTION = "pyodide"

def _load_chromium_settings():
    spec = importlib.util.spec_from_file_location("chromium", REPO_ROOT / "build_scripts" / "chromium.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CHROMIUM = _load_chromium_settings()
CHROMIUM_PATH = _CHROMIUM.CHROMIUM_PATH
CHROMIUM_ARGS = _CHROMIUM.CHROMIUM_ARGS

# Fixtures through which a test reads the distribution.
DIST_FIXTURES = {"runtime", "pyodide_dist_dir"}

# Whether --dist-dir was given, recorded before this conftest changes it.
DIST_DIR_GIVEN = pytest.StashKey[bool]()


def has_pyodide(path: Path) -> bool:
    return (path / "pyodide.asm.wasm").is_file() and (path / "pyodide-lock.json").is_file()


def _resolved_dist_dir(config: pytest.Config) -> Path:
    return Path(config.invocation_params.dir, config.option.dist_dir).resolve()


def _dist_dir_is_default(config: pytest.Config) -> bool:
    default = Path(config.invocation_params.dir, DEFAULT_DIST_DIR_OPTION).resolve()
    return _resolved_dist_dir(config) == default


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # pytest-pyodide reads config.option.dist_dir when its fixtures start, so
    # changing it here (at import of this conftest, before any such fixture)
    # is enough to point the tests at the built distribution.
    dist_dir_given = not _dist_dir_is_default(config)
    config.stash[DIST_DIR_GIVEN] = dist_dir_given
    if not dist_dir_given and not has_pyodide(_resolved_dist_dir(config)):
        config.option.dist_dir = BUILT_DIST_DIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dist_dir = _resolved_dist_dir(config)
    if has_pyodide(dist_dir):
        return

    needing_dist = [
        item for item in items
        if TESTS_DIR in Path(item.path).parents and DIST_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if not needing_dist:
        return
    if config.stash.get(DIST_DIR_GIVEN, True):
        raise pytest.UsageError(
            f"--dist-dir={config.option.dist_dir}: no Pyodide distribution there "
            "(pyodide.asm.wasm or pyodide-lock.json missing); run build_scripts/build_site.py"
        )

    skip = pytest.mark.skip(
        reason=f"Pyodide distribution not found at {BUILT_DIST_DIR}: "
        "run build_scripts/build_site.py or pass --dist-dir"
    )
    for item in needing_dist:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def pyodide_dist_dir(request: pytest.FixtureRequest) -> Path:
    """Return the Pyodide distribution folder the tests run against."""
    return _resolved_dist_dir(request.config)


@pytest.fixture(scope="session")
def build_scripts():
    """Return the build_scripts modules as attributes: build_site, pyodide_dist, serve_site."""
    sys.path.insert(0, str(BUILD_SCRIPTS_DIR))
    try:
        modules = {name: importlib.import_module(name) for name in ("pyodide_dist", "build_site", "serve_site")}
    finally:
        sys.path.remove(str(BUILD_SCRIPTS_DIR))
    return type("BuildScripts", (), modules)


@pytest.fixture(scope="module")
def playwright_browsers(request: pytest.FixtureRequest):
    """Launch the system Chromium for pytest-pyodide's Playwright runner.

    Replaces pytest-pyodide's fixture of the same name, which launches
    Playwright's own browser builds.
    """
    from pytest_pyodide.config import get_global_config
    from pytest_pyodide.hook import pytest_wrapper

    browser_runtimes = set(pytest_wrapper.pyodide_runtimes) - {"node"}
    if request.config.option.runner.lower() != "playwright" or not browser_runtimes:
        yield {}
        return
    if browser_runtimes != {"chrome"}:
        raise pytest.UsageError(f"--rt {sorted(browser_runtimes)}: only chrome and node are supported here")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            args=CHROMIUM_ARGS + get_global_config().get_flags("chrome"),
        )
        try:
            yield {"chrome": browser}
        finally:
            browser.close()
