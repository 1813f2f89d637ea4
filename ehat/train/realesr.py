"""Real-world SR training data: basicsr's second-order degradations run on the device, and the
training pair pool, as basicsr's ``RealESRGANModel.feed_data`` and HAT's Real-HAT models do them.

:class:`Degradation` turns a batch of :class:`ehat.data.realesrgan_dataset.RealESRGANDataset`
(GT crops + blur/sinc kernels) into an (LR, HR) patch pair: blur, random resize, Gaussian or
Poisson noise, JPEG, then a second round of the same, a final sinc filter and a resize to HR / scale,
rounded to 8 bits, then a random paired crop of ``gt_size``. The random draws use the global Python,
NumPy and torch RNGs in basicsr's order (so a seeded run matches basicsr's own functions, and the
trainer's RNG capture makes a resume exact). :class:`PairQueue` is the pool of ``queue_size`` pairs
that mixes degradations across batches; its contents are part of the training state.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from ehat.options.train import TrainingOptions

RESIZE_MODES = ("area", "bilinear", "bicubic")


class Degradation:
    """Second-order degradation of HR batches on ``device`` (``opt``: a real-world model's options).

    ``usm_source``: degrade the USM-sharpened GT (the GAN models, as basicsr's RealESRGANModel), else
    the GT itself, sharpened first when ``opt.gt_usm`` (the MSE models).
    """

    def __init__(self, opt: TrainingOptions, device: torch.device, usm_source: bool) -> None:
        from basicsr.utils import DiffJPEG, USMSharp

        self.opt = opt
        self.device = device
        self.usm_source = usm_source
        self.jpeger = DiffJPEG(differentiable=False).to(device)
        self.usm_sharpener = USMSharp().to(device)

    def usm(self, img: torch.Tensor) -> torch.Tensor:
        """Unsharp-masked ``img`` (B, 3, H, W) in [0, 1]."""
        return self.usm_sharpener(img)

    def _resize(self, out: torch.Tensor, probs: list[float], rng: list[float], size: tuple[int, int] | None):
        kind = random.choices(["up", "down", "keep"], probs)[0]
        if kind == "up":
            factor = np.random.uniform(1, rng[1])
        elif kind == "down":
            factor = np.random.uniform(rng[0], 1)
        else:
            factor = 1
        mode = random.choice(RESIZE_MODES)
        if size is None:
            return F.interpolate(out, scale_factor=factor, mode=mode)
        return F.interpolate(out, size=(int(size[0] * factor), int(size[1] * factor)), mode=mode)

    def _noise(self, out: torch.Tensor, p_gauss: float, sigma: list, poisson: list, gray: float):
        from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt

        if np.random.uniform() < p_gauss:
            return random_add_gaussian_noise_pt(
                out, sigma_range=sigma, clip=True, rounds=False, gray_prob=gray
            )
        return random_add_poisson_noise_pt(out, scale_range=poisson, gray_prob=gray, clip=True, rounds=False)

    def _jpeg(self, out: torch.Tensor, quality: list[float]) -> torch.Tensor:
        q = out.new_zeros(out.size(0)).uniform_(*quality)
        return self.jpeger(torch.clamp(out, 0, 1), quality=q).contiguous()  # filter2D needs .view()

    @torch.no_grad()
    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR (B, 3, g/s, g/s), HR (B, 3, g, g)) in [0, 1] from a RealESRGANDataset batch; g = ``gt_size``.

        The HR is the GT (USM-sharpened first for an MSE model with ``gt_usm``); the LR is rounded to
        8 bits like a saved image."""
        from basicsr.data.transforms import paired_random_crop
        from basicsr.utils.img_process_util import filter2D

        o, s = self.opt, self.opt.scale
        gt = batch["gt"].to(self.device)
        if not self.usm_source and o.gt_usm:
            gt = self.usm(gt)
        source = self.usm(gt) if self.usm_source else gt
        k1, k2 = batch["kernel1"].to(self.device), batch["kernel2"].to(self.device)
        sinc = batch["sinc_kernel"].to(self.device)
        h, w = gt.shape[2:4]
        # first degradation: blur, resize, noise, JPEG
        out = filter2D(source, k1)
        out = self._resize(out, o.resize_prob, o.resize_range, None)
        out = self._noise(out, o.gaussian_noise_prob, o.noise_range, o.poisson_scale_range, o.gray_noise_prob)
        out = self._jpeg(out, o.jpeg_range)
        # second degradation
        if np.random.uniform() < o.second_blur_prob:
            out = filter2D(out, k2)
        out = self._resize(out, o.resize_prob2, o.resize_range2, (h / s, w / s))
        out = self._noise(
            out, o.gaussian_noise_prob2, o.noise_range2, o.poisson_scale_range2, o.gray_noise_prob2
        )
        # [resize back + sinc] and JPEG, in a random order
        if np.random.uniform() < 0.5:
            out = F.interpolate(out, size=(h // s, w // s), mode=random.choice(RESIZE_MODES))
            out = filter2D(out, sinc)
            out = self._jpeg(out, o.jpeg_range2)
        else:
            out = self._jpeg(out, o.jpeg_range2)
            out = F.interpolate(out, size=(h // s, w // s), mode=random.choice(RESIZE_MODES))
            out = filter2D(out, sinc)
        lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
        gt, lq = paired_random_crop(gt, lq, o.gt_size, s)
        return lq.contiguous(), gt


class PairQueue:
    """The training pair pool of basicsr's Real-ESRGAN models: the first ``size / B`` batches are stored
    and trained on as they come; once full, every batch is swapped against ``B`` random stored pairs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None
        self.ptr = 0

    @torch.no_grad()
    def __call__(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair to train on for the batch (``lq``, ``gt``) (B, C, h, w) / (B, C, H, W)."""
        b = lq.size(0)
        if self.size % b:
            raise ValueError(f"queue size {self.size} is not a multiple of the batch size {b}")
        if self.lq is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        assert self.gt is not None
        if self.ptr < self.size:
            self.lq[self.ptr : self.ptr + b] = lq
            self.gt[self.ptr : self.ptr + b] = gt
            self.ptr += b
            return lq, gt
        idx = torch.randperm(self.size)
        self.lq, self.gt = self.lq[idx], self.gt[idx]
        out_lq, out_gt = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b], self.gt[:b] = lq, gt
        return out_lq, out_gt

    def state_dict(self) -> dict:
        """The pool on CPU (empty before the first batch)."""
        if self.lq is None or self.gt is None:
            return {"ptr": 0}
        return {"ptr": self.ptr, "lq": self.lq.cpu(), "gt": self.gt.cpu()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.ptr = int(state.get("ptr", 0))
        lq, gt = state.get("lq"), state.get("gt")
        self.lq = None if lq is None else lq.to(device)
        self.gt = None if gt is None else gt.to(device)


__all__ = ["Degradation", "PairQueue"]
