"""Fixtures for every test folder: the ``../shared`` reference folder, a real photo, random RLFN weights.

Plain helper functions live in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ehat  # noqa: F401  (installs the torchvision alias and registers archs)
from tests.helpers import REPO_ROOT


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


@pytest.fixture()
def rlfn_weights(tmp_path: Path) -> Path:
    """A randomly initialised RLFN of the NTIRE baseline's shape (46/48 channels, 4 blocks), seed 0, x4.

    Saved as a bare state dict in ``tmp_path / "rlfn_random.pth"``.
    """
    from ehat.archs.rlfn_arch import RLFN

    torch.manual_seed(0)
    path = tmp_path / "rlfn_random.pth"
    torch.save(RLFN(feature_channels=46, mid_channels=48, num_blocks=4).state_dict(), path)
    return path
