"""``MODEL`` arguments of the ``ehat`` command: a model zoo id or name, or a checkpoint file.

One resolution for ``ehat export``, ``ehat submission`` and ``ehat upscale``: the network the
file describes (:func:`ehat.checkpoints.load_model`), its input/output range and scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ehat.errors import EhatError, did_you_mean

__all__ = ["ModelArgError", "ResolvedModel", "data_range_of", "resolve_model"]


class ModelArgError(EhatError):
    """A MODEL argument that is neither a zoo id/name nor a checkpoint file."""


@dataclass
class ResolvedModel:
    """A loaded network (eval mode, CPU, fp32, in its inference form) and what its users need to know.

    ``data_range``: the input/output range (1.0 for [0, 1], 255.0 for [0, 255]); ``scale``: the SR
    factor; ``name``: a short name for file names; ``weights``: the file it was loaded from.
    """

    model: nn.Module
    data_range: float
    scale: int
    name: str
    weights: Path


def data_range_of(model: nn.Module) -> float:
    """The range a network reads and writes (its descriptor's ``data_range``): 255 for RLFN, 1 for
    HAT/EHAT (whose ``img_range`` is an internal gain, not the input range)."""
    from ehat.archs import descriptor_of

    return descriptor_of(model).data_range


def _zoo_spec(arg: str):  # noqa: ANN202  (ehat.zoo.ModelSpec | None; the zoo imports torch lazily)
    from ehat.zoo import ZOO

    if arg.isdigit() and int(arg) in ZOO:
        return ZOO[int(arg)]
    for spec in ZOO.values():
        if arg in (spec.name, spec.preset):
            return spec
    return None


def resolve_model(arg: str | os.PathLike) -> ResolvedModel:
    """``arg``: an existing checkpoint file, a zoo id (``102``), a zoo name (``102_EHAT_tiny_demo``)
    or the preset of a zoo entry (``ehat_tiny``); zoo weights missing locally are downloaded.

    Raises :class:`ModelArgError` (or a ``CheckpointError`` / ``ZooError``) naming what is wrong.
    """
    from ehat.archs import descriptor_of, prepare_for_inference
    from ehat.checkpoints import load_model, read_safetensors_metadata
    from ehat.zoo import ZOO, build_model, resolve_weights

    text = str(arg)
    path = Path(text)
    if path.is_file() or path.is_dir():
        model = prepare_for_inference(load_model(path))
        data_range = data_range_of(model)
        if path.suffix == ".safetensors":  # our files carry it in the header (save_network)
            data_range = float(read_safetensors_metadata(path).get("data_range", data_range))
        return ResolvedModel(model, data_range, descriptor_of(model).scale_of(model), path.stem, path)
    spec = _zoo_spec(text)
    if spec is None:
        names = [str(i) for i in ZOO] + [s.name for s in ZOO.values()] + [s.preset for s in ZOO.values()]
        known = ", ".join(f"{i} ({s.name}, {s.preset})" for i, s in sorted(ZOO.items()))
        raise ModelArgError(
            f"model {text!r} is neither a checkpoint file nor a model zoo entry{did_you_mean(text, names)}; "
            f"give a .pth/.safetensors path or one of: {known}"
        )
    weights = resolve_weights(spec)
    model = build_model(spec, weights)
    return ResolvedModel(model, spec.data_range, spec.scale, spec.name, weights)
