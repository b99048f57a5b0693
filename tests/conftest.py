"""Shared fixtures: paths of the repository's sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture
def ramp20_jtl() -> Path:
    path = SAMPLES / "jmeter-ramp20" / "results.jtl"
    assert path.is_file(), f"missing sample {path}"
    return path


@pytest.fixture
def steps_jtl() -> Path:
    path = SAMPLES / "jmeter-steps" / "results.jtl"
    assert path.is_file(), f"missing sample {path}"
    return path
