"""Shared pytest fixtures: paths to the real data in tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import hed2rgb, rgb2hed

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of real test data shipped with the repository."""
    return FIXTURES


@pytest.fixture(scope="session")
def histo() -> np.ndarray:
    """The H&E fixture image, RGB uint8 [300, 500, 3]."""
    return np.asarray(Image.open(FIXTURES / "images" / "histo.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def restained(histo: np.ndarray) -> np.ndarray:
    """The same tissue with more haematoxylin and less eosin (a different stain batch)."""
    hed = rgb2hed(histo)
    hed[..., 0] *= 1.6
    hed[..., 1] *= 0.5
    return (np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)


def _fixture_files() -> set[Path]:
    return {p for p in FIXTURES.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def fixtures_stay_read_only():
    """No test may write into tests/fixtures (e.g. an index beside a fixture TFRecord): tests
    that need to write copy the fixtures into tmp_path first."""
    before = _fixture_files()
    yield
    added = sorted(str(p.relative_to(FIXTURES)) for p in _fixture_files() - before)
    assert not added, f"tests wrote into tests/fixtures: {added}"
