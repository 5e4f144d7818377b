"""Data for the eval tests: small fixtures in the official formats, and the real LoCoMo file
when present (LOCI_LOCOMO_PATH, else ../shared/data/locomo/locomo10.json beside the repo)."""

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def locomo_mini() -> Path:
    return DATA / "locomo_mini.json"


@pytest.fixture()
def longmemeval_mini() -> Path:
    return DATA / "longmemeval_mini.json"


@pytest.fixture()
def real_locomo() -> Path:
    path = Path(os.environ.get("LOCI_LOCOMO_PATH") or REPO / "../shared/data/locomo/locomo10.json")
    if not path.is_file():
        pytest.skip(f"LoCoMo data not found at {path} (set LOCI_LOCOMO_PATH)")
    return path
