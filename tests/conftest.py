"""Shared fixtures: the ``../shared`` reference folder and small real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ehat  # noqa: F401  (installs the torchvision alias and registers archs)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    env = os.environ.get("EHAT_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` reference folder. Skips on a user's clone; CI (EHAT_REQUIRE_SHARED=1) fails instead."""
    d = _shared_dir()
    if d is None:
        if os.environ.get("EHAT_REQUIRE_SHARED") == "1":
            pytest.fail("EHAT_REQUIRE_SHARED=1 but ../shared (or $EHAT_SHARED) is missing")
        pytest.skip("../shared reference data is not present (a user's clone): skipping")
    return d


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real RGB photo (scikit-image's astronaut), uint8 HWC, 512x512."""
    from skimage import data

    return data.astronaut()
