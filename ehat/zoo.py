"""The model zoo of ``test_demo.py``: ``model_id`` -> an alias onto a preset and its released weights.

Ids follow the NTIRE 2024 ESR challenge where they exist (0 = the RLFN baseline, 35 = team
SKDADDYS, i.e. EHAT-L); ids >= 100 are extra reference models. The network config, download URL,
SHA-256, data range and scale all live with the preset (:mod:`ehat.archs.presets`); an alias only
adds the id, the results name, the local file and a description. A missing default weights file
is downloaded (progress bar, atomic rename) and its SHA-256 is checked when known, or reported as
unverifiable when not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
from torch import nn

from ehat.archs.presets import PretrainedWeights, pretrained_weights
from ehat.errors import EhatError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


class ZooError(EhatError):
    """A model_id, weights file or download problem; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: ``model_id`` -> preset ``preset`` with its released weights ``pretrained``.

    ``weights`` is the local file, relative to the repository root. ``url``, ``sha256``,
    ``data_range`` and ``scale`` are the preset's (see :class:`PretrainedWeights`).
    """

    model_id: int
    name: str
    preset: str
    pretrained: PretrainedWeights
    weights: str
    description: str

    @property
    def arch(self) -> str:
        """The preset name (the network ``test_demo.py`` builds)."""
        return self.preset

    @property
    def url(self) -> str | None:
        return self.pretrained.url

    @property
    def sha256(self) -> str | None:
        return self.pretrained.sha256

    @property
    def data_range(self) -> float:
        return self.pretrained.data_range

    @property
    def scale(self) -> int:
        return self.pretrained.scale


def alias(
    model_id: int, name: str, preset: str, tag: str, description: str, weights: str | None = None
) -> ModelSpec:
    """A zoo entry for ``preset``'s weights ``tag``; the local file defaults to ``model_zoo/<file>``."""
    pretrained = pretrained_weights(preset, tag)
    return ModelSpec(
        model_id, name, preset, pretrained, weights or f"model_zoo/{pretrained.file}", description
    )


_ZOO: dict[int, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        alias(
            0,
            "00_RLFN_baseline",
            "rlfn_ntire",
            "ntire",
            "NTIRE 2024 ESR baseline RLFN (team00_rlfn.pth == rlfn_ntire_x4.pth), [0, 255]",
            weights="model_zoo/team00_rlfn.pth",  # the challenge repository's file name
        ),
        alias(
            35,
            "35_EHAT_L",
            "ehat_l",
            "skdaddys",
            "EHAT-L, team SKDADDYS (NTIRE 2024 ESR): HAT-L + branch self-attention, [0, 1]",
        ),
        alias(
            38,
            "38_SPAN",
            "span_ntire",
            "ntire",
            "SPAN, team XiaomiMM (NTIRE 2024 ESR winner), fused 28-channel release, [0, 1]",
            weights="model_zoo/team38_span_ch28_slim.pth",  # the 2024 repository's name for the same bytes
        ),
        alias(
            100,
            "100_HAT_L",
            "hat_l",
            "imagenet",
            "HAT-L x4, official ImageNet-pretrained weights (the team's mirror, preHAT_L_x4.pth), [0, 1]",
        ),
        alias(
            101,
            "101_RLFN_x4",
            "rlfn",
            "paper",
            "RLFN x4 paper model (rlfn_x4.pth, 52 channels, 6 blocks), [0, 255]",
        ),
        alias(
            102,
            "102_EHAT_tiny_demo",
            "ehat_tiny",
            "demo",
            "EHAT-tiny quick-start model shipped in model_zoo/ (trained offline on scikit-image photos by "
            "options/train/train_EHAT-tiny_SRx4_CPU_quickstart.yml), [0, 1]",
        ),
        alias(
            103,
            "103_SPAN_baseline_2026",
            "span_ntire",
            "ntire",
            "NTIRE 2026 ESR baseline SPAN (team00_SPAN.pth, byte-identical to 2024 team 38's), [0, 1]",
        ),
        alias(
            104,
            "104_EFDN_baseline_2025",
            "efdn",
            "ntire",
            "NTIRE 2025 ESR baseline EFDN (team00_EFDN.pth, deployed form), [0, 1]",
        ),
    )
}
ZOO: Mapping[int, ModelSpec] = MappingProxyType(_ZOO)
"""model_id -> entry (read-only view; :func:`register_model` adds one)."""


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a zoo entry (e.g. ``register_model(alias(900, "900_Toy", "toy", "demo", "..."))`` beside a
    network's presets); an id already taken by another entry is a :class:`ZooError`."""
    if _ZOO.get(spec.model_id, spec) != spec:
        raise ZooError(f"model_id {spec.model_id} is taken by {_ZOO[spec.model_id].name}: pick another id")
    _ZOO[spec.model_id] = spec
    return spec


def zoo_help() -> str:
    """The ``--model_id`` choices for help texts, generated from :data:`ZOO`: ``0 00_RLFN_baseline, ...``."""
    return ", ".join(f"{i} {s.name}" for i, s in sorted(ZOO.items()))


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
    from ehat.checkpoints import CheckpointError, checkpoint_file

    if model_path is not None:
        path = Path(model_path)
        if path.is_dir():
            try:
                checkpoint_file(path)
            except CheckpointError as e:
                raise ZooError(f"--model_path {e} (model_id {spec.model_id}, {spec.name})") from e
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

    Returns the model in eval mode with gradients off, in its inference form
    (:func:`ehat.archs.prepare_for_inference`). A checkpoint that does not fit the
    network raises :class:`ZooError` naming the file, the model_id and the mismatching keys.
    """
    from ehat.archs import create_model, prepare_for_inference
    from ehat.checkpoints import CheckpointError, load_weights, read_checkpoint, read_state_dict

    model = create_model(spec.preset)
    if weights is not None:
        try:
            raw = read_checkpoint(weights)
            state = read_state_dict(raw)
        except CheckpointError as e:  # unreadable, empty, corrupt or code-carrying: not a mismatch
            raise ZooError(f"cannot use {weights}: {e}") from e
        try:
            load_weights(model, raw, name=str(weights), hint=_mismatch_hint(spec, state))
        except CheckpointError as e:
            raise ZooError(
                f"{weights} does not match --model_id {spec.model_id} ({spec.name}, network {spec.preset}): {e}"
            ) from e
    model = prepare_for_inference(model.eval())
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _mismatch_hint(spec: ModelSpec, state: Mapping[str, torch.Tensor]) -> str:
    """What to do with weights that do not fit ``spec``: the zoo id whose preset they fit, if any."""
    from ehat.archs import preset_config
    from ehat.checkpoints import CheckpointError, infer_config

    right_file = f"or pass --model_path with {spec.name}'s own weights ({spec.pretrained.file})"
    try:
        file_cfg = infer_config(state)
    except CheckpointError:
        return f"pass the --model_id this checkpoint was trained for, {right_file}"
    ignored = ("drop_path_rate", "img_size")
    fits = [
        s
        for s in ZOO.values()
        if s.model_id != spec.model_id
        and {k: v for k, v in preset_config(s.preset).items() if k not in ignored}.items()
        <= {k: v for k, v in file_cfg.items() if k not in ignored}.items()
    ]
    if fits:
        return f"the file fits --model_id {fits[0].model_id} ({fits[0].name}): pass that id, {right_file}"
    return (
        "no --model_id describes this file: evaluate it with test.py and network_g set to the config it "
        f"looks like (above), {right_file}"
    )
