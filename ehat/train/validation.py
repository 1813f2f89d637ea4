"""Validation during training: full images through the evaluation's tiling helper, metrics averaged
over all ranks (each rank takes every world_size-th image)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ehat.data.image_io import write_image
from ehat.imaging.convert import to_uint8
from ehat.imaging.metrics import image_metrics
from ehat.imaging.tiling import forward_tiled
from ehat.imaging.visualize import side_by_side as labelled_row
from ehat.options.components import Metric
from ehat.options.schema import OptionsError
from ehat.train import distributed as du

NIQE_BLOCK = 96
"""basicsr's calculate_niqe fits 96x96 blocks: with fewer than two it crashes (no covariance)."""


def side_by_side(lq: np.ndarray, sr: np.ndarray, hr: np.ndarray | None, scale: int) -> np.ndarray:
    """The evaluation's labelled ``MATLAB bicubic | SR | HR`` row (:func:`ehat.imaging.visualize.side_by_side`)
    over the largest centred square of the SR image, for TensorBoard. (H, W, 3) uint8 in and out."""
    return labelled_row(lq, sr, hr, scale, crop=min(sr.shape[:2]))


def compute_metrics(
    sr: np.ndarray, hr: np.ndarray, scale: int, extra: Mapping[str, Metric] | None
) -> dict[str, float]:
    """The evaluation's metrics (``psnr`` RGB, ``psnr_y``, ``ssim_y``) plus ``val.metrics`` entries
    computed by basicsr on BGR images (as BasicSR's SRModel does); the options refuse entries named
    like a built-in one."""
    out = {k: float(v) for k, v in image_metrics(sr, hr, scale=scale).items()}
    if extra:
        from basicsr.metrics import calculate_metric

        data = {"img": np.ascontiguousarray(sr[..., ::-1]), "img2": np.ascontiguousarray(hr[..., ::-1])}
        for name, spec in extra.items():
            if spec.type == "calculate_niqe":
                crop = int(spec.args.get("crop_border", 0))
                h, w = sr.shape[0] - 2 * crop, sr.shape[1] - 2 * crop
                if (h // NIQE_BLOCK) * (w // NIQE_BLOCK) < 2:
                    raise OptionsError(
                        f"val.metrics.{name}",
                        f"NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks of output pixels, but an output is "
                        f"{w}x{h} after crop_border: validate on larger images or remove the metric",
                    )
            out[name] = float(calculate_metric(data, {"type": spec.type, **spec.args}))
    return out


@torch.no_grad()
def validate(
    model: nn.Module,
    dataset: Dataset,
    *,
    scale: int,
    device: torch.device,
    tile: int | None = None,
    overlap: int = 32,
    extra_metrics: Mapping[str, Metric] | None = None,
    save_dir: Path | None = None,
    suffix: str = "",
    pbar: bool = True,
    on_image: Callable[[int, str, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    desc: str = "val",
) -> dict[str, float]:
    """Mean metrics of ``model`` (eval mode, fp32) over ``dataset`` items ``{'lq', 'gt', 'lq_path'}``.

    ``lq`` (C, h, w) and ``gt`` (C, h*scale, w*scale) are [0, 1] RGB. ``save_dir``: write each SR
    image there as ``<name><suffix>.png`` (rank-local shards). ``on_image(index, name, sr, lq, hr)`` (uint8 HWC) is
    called on every image (TensorBoard samples). Every rank must call this (collective reduction).
    """
    was_training = model.training
    model.eval()
    indices = range(du.rank(), len(dataset), du.world_size())
    sums: dict[str, float] = {}
    count = 0
    for i in tqdm(indices, desc=desc, unit="img", disable=not (pbar and du.is_main()), leave=False):
        item = dataset[i]
        lq = item["lq"].unsqueeze(0).to(device)
        sr = forward_tiled(model, lq, scale, tile=tile, overlap=overlap)
        sr_u8 = to_uint8(sr, 1.0)
        hr_u8 = to_uint8(item["gt"], 1.0)
        for k, v in compute_metrics(sr_u8, hr_u8, scale, extra_metrics).items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        name = Path(str(item.get("lq_path", f"{i:04d}"))).stem
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            write_image(save_dir / f"{name}{suffix}.png", sr_u8)
        if on_image is not None:
            on_image(i, name, sr_u8, to_uint8(item["lq"], 1.0), hr_u8)
    model.train(was_training)
    names = sorted(du.gather_objects(sorted(sums))[0])  # rank 0's names (every rank computes the same set)
    totals = du.all_reduce_sum(
        torch.tensor([sums.get(k, 0.0) for k in names] + [count], dtype=torch.float64, device=device)
    )
    n = max(totals[-1].item(), 1.0)
    return {k: totals[j].item() / n for j, k in enumerate(names)}
