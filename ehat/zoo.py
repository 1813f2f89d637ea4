"""The model zoo of ``test_demo.py``: ``model_id`` -> network, default weights file, URL, data range.

Ids follow the NTIRE 2024 ESR challenge where they exist (0 = the RLFN baseline, 35 = team
SKDADDYS, i.e. EHAT-L); ids >= 100 are extra reference models. A missing default weights file is
downloaded (progress bar, atomic rename) and its SHA-256 is checked when known, or reported as
unverifiable when not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import torch
from torch import nn

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


class ZooError(RuntimeError):
    """A model_id, weights file or download problem; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry.

    ``arch`` is a preset of :func:`ehat.archs.create_model` or "RLFN" (built with ``arch_kwargs``);
    ``weights`` is relative to the repository root; ``sha256`` None means no reference checksum is
    known (the file's hash is reported, not verified); ``data_range`` is the model's input/output
    range (1 for [0, 1], 255 for [0, 255]).
    """

    model_id: int
    name: str
    arch: str
    weights: str
    url: str | None
    sha256: str | None
    data_range: float
    description: str
    arch_kwargs: Mapping[str, object] = field(default_factory=dict)


_RLFN_NTIRE = {"feature_channels": 46, "mid_channels": 48, "num_blocks": 4}
_RLFN_PAPER = {"feature_channels": 52, "mid_channels": 52, "num_blocks": 6}
_EHAT_RELEASE = "https://github.com/notiom/Ehat/releases/download/vv2.0.0"

ZOO: Mapping[int, ModelSpec] = MappingProxyType(
    {
        0: ModelSpec(
            0,
            "00_RLFN_baseline",
            "RLFN",
            "model_zoo/team00_rlfn.pth",
            "https://github.com/bytedance/RLFN/raw/main/model_zoo/rlfn_ntire_x4.pth",
            "3c9be7b9d7a4bece9b68c83a56a1ffb38010f76413d5f215be6b4be842e18fb2",
            255.0,
            "NTIRE 2024 ESR baseline RLFN (team00_rlfn.pth == rlfn_ntire_x4.pth), [0, 255]",
            MappingProxyType(_RLFN_NTIRE),
        ),
        35: ModelSpec(
            35,
            "35_EHAT_L",
            "ehat_l",
            "model_zoo/SKDADDYS_Ehat.pth",
            f"{_EHAT_RELEASE}/SKDADDYS_Ehat.pth",
            None,
            1.0,
            "EHAT-L, team SKDADDYS (NTIRE 2024 ESR): HAT-L + branch self-attention, [0, 1]",
        ),
        100: ModelSpec(
            100,
            "100_HAT_L",
            "hat_l",
            "model_zoo/preHAT_L_x4.pth",
            f"{_EHAT_RELEASE}/preHAT_L_x4.pth",
            None,
            1.0,
            "HAT-L x4, official ImageNet-pretrained weights (the team's mirror, preHAT_L_x4.pth), [0, 1]",
        ),
        101: ModelSpec(
            101,
            "101_RLFN_x4",
            "RLFN",
            "model_zoo/rlfn_x4.pth",
            "https://github.com/bytedance/RLFN/raw/main/model_zoo/rlfn_x4.pth",
            "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0",
            255.0,
            "RLFN x4 paper model (rlfn_x4.pth, 52 channels, 6 blocks), [0, 255]",
            MappingProxyType(_RLFN_PAPER),
        ),
        102: ModelSpec(
            102,
            "102_EHAT_tiny_demo",
            "ehat_tiny",
            "model_zoo/ehat_tiny_demo_x4.pth",
            None,
            "d77e763f49e702665a6b13354f48fd9dea222889a83987df69a5162dcc0ee2f2",
            1.0,
            "EHAT-tiny quick-start model shipped in model_zoo/ (trained offline on scikit-image photos by "
            "options/train/train_EHAT-tiny_SRx4_CPU_quickstart.yml), [0, 1]",
        ),
    }
)


def get_spec(model_id: int) -> ModelSpec:
    """The zoo entry for ``model_id``; the error lists the known ids."""
    if model_id not in ZOO:
        known = ", ".join(f"{i} ({s.name})" for i, s in sorted(ZOO.items()))
        raise ZooError(f"--model_id {model_id} is not in the model zoo; known ids: {known}")
    return ZOO[model_id]


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_hash(path: Path, expected: str | None, name: str) -> str:
    """Verify ``path`` against ``expected`` (raise on mismatch) or log that it cannot be verified."""
    digest = sha256_of(path)
    if expected is None:
        logger.warning(
            "sha256 of %s is %s; no reference checksum is known for %s, so the file could NOT be verified",
            path,
            digest,
            name,
        )
    elif digest != expected:
        raise ZooError(
            f"{path} has sha256 {digest}, expected {expected} for {name}: the file is corrupt or a different "
            f"model. Delete it and run again to re-download, or pass --model_path to use it anyway."
        )
    else:
        logger.info("sha256 of %s verified (%s)", path, digest)
    return digest


def download(url: str, dest: Path, name: str) -> None:
    """Download ``url`` to ``dest`` (progress bar, atomic); a network failure says what to do offline."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s weights from %s to %s", name, url, dest)
    try:
        torch.hub.download_url_to_file(url, str(dest), progress=True)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ZooError(
            f"could not download the {name} weights from {url} ({e}). If you are offline: download {url} "
            f"on a connected machine and place it at {dest}, or pass --model_path /path/to/weights.pth"
        ) from e


def resolve_weights(
    spec: ModelSpec, model_path: str | os.PathLike | None = None, root: str | os.PathLike = REPO_ROOT
) -> Path:
    """The weights file to load: ``model_path`` if given, else the zoo default (downloaded if absent)."""
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise ZooError(f"--model_path {path} does not exist (model_id {spec.model_id}, {spec.name})")
        if spec.sha256 is not None and path.resolve() == (Path(root) / spec.weights).resolve():
            check_hash(path, spec.sha256, spec.name)
        return path
    path = Path(root) / spec.weights
    if not path.is_file():
        if spec.url is None:
            raise ZooError(f"{path} is missing and {spec.name} has no download URL: pass --model_path")
        download(spec.url, path, spec.name)
        check_hash(path, spec.sha256, spec.name)
    elif spec.sha256 is not None:
        check_hash(path, spec.sha256, spec.name)
    return path


def build_model(spec: ModelSpec, weights: str | os.PathLike | None) -> nn.Module:
    """Build ``spec``'s network and load ``weights`` strictly (None: random init, for tests).

    Returns the model in eval mode with gradients off. A checkpoint that does not fit the
    network raises :class:`ZooError` naming the file, the model_id and the mismatching keys.
    """
    from ehat.archs import create_model
    from ehat.archs.rlfn_arch import RLFN
    from ehat.checkpoints import CheckpointError, load_weights, read_state_dict

    model = RLFN(**spec.arch_kwargs) if spec.arch == "RLFN" else create_model(spec.arch, **spec.arch_kwargs)
    if weights is not None:
        try:
            state = read_state_dict(weights)
        except CheckpointError as e:  # unreadable, empty, corrupt or code-carrying: not a mismatch
            raise ZooError(f"cannot use {weights}: {e}") from e
        try:
            load_weights(model, state)
        except CheckpointError as e:
            raise ZooError(
                f"{weights} does not match --model_id {spec.model_id} ({spec.name}, network {spec.arch}): {e}. "
                f"Pass the --model_id this checkpoint was trained for, or the right --model_path."
            ) from e
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
