"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Return the read-only data folder ``../shared/data`` beside the checkout, or skip."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"data folder {SHARED_DATA_DIR} not found: ../shared/data is not beside the checkout")
    return SHARED_DATA_DIR
