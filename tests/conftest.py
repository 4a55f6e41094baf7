"""Shared pytest fixtures: paths to the real data in tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of real test data shipped with the repository."""
    return FIXTURES
