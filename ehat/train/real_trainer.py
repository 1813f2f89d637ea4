"""Real-world SR in the training loop: HAT's ``RealHATMSEModel`` / ``RealHATGANModel`` (and the EHAT
names) on basicsr's parts.

:class:`RealTrainer` is the :class:`~ehat.train.trainer.Trainer` with its inputs made on the fly
(:class:`~ehat.train.realesr.Degradation` then :class:`~ehat.train.realesr.PairQueue`); the GAN
model types add basicsr's discriminator (``network_d``, e.g. ``UNetDiscriminatorSN``), its optimizer
(``train.optim_d``) and scheduler (``train.scheduler``, as for the generator), and ``GANLoss``. Per
iteration (BasicSR's SRGANModel order): the generator steps when ``iter % net_d_iters == 0`` and
``iter > net_d_init_iters`` on pixel (``l1_gt_usm``) + perceptual (``percep_gt_usm``) + GAN losses,
then the discriminator on real (``gan_gt_usm``) and fake images. AMP, clipping (both networks),
EMA (generator), the NaN guard, signals and DDP behave as in the base loop; the discriminator, its
optimizer and scheduler, and every rank's pair pool are part of the training state.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ehat.train import distributed as du
from ehat.train.optim import (
    build_scheduler,
    restore_scheduler,
    scheduler_progress,
    scheduler_step,
    step_with_factor,
    warmup_factor,
)
from ehat.train.options import GAN_MODEL_TYPES, REAL_MODEL_TYPES, OptionsError, TrainingOptions
from ehat.train.realesr import Degradation, PairQueue
from ehat.train.trainer import Trainer


class RealTrainer(Trainer):
    """Train a real-world model type (``opt.model_type`` in ``REAL_MODEL_TYPES``)."""

    def __init__(self, opt: TrainingOptions, **kwargs: Any) -> None:
        super().__init__(opt, **kwargs)
        self.gan = opt.model_type in GAN_MODEL_TYPES
        self.side_by_side = True
        self.last_pair: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        """(degraded LR, output, target) of the last training batch's first image, on the CPU."""

    # ------------------------------------------------------------------------------ setup
    def _setup_models(self) -> None:
        opt, topt = self.opt, self.opt.train
        self.degrade = (
            Degradation(opt, self.device, usm_source=self.gan) if opt.high_order_degradation else None
        )
        self.queue = PairQueue(opt.queue_size) if self.degrade is not None else None
        self.net_d: nn.Module | None = None
        if not self.gan:
            if topt.optim_d is not None:
                self.log.warning(
                    f"train.optim_d is not used: {opt.model_type} has no discriminator (HAT's MSE option "
                    "file carries it; it is accepted so that file runs unchanged)"
                )
            return
        from basicsr.losses import build_loss

        from ehat.archs import build_network

        assert opt.network_d is not None and topt.optim_d is not None and topt.gan_opt is not None
        self.net_d = build_network(dict(opt.network_d)).to(self.device)
        paths = opt.path
        if paths.pretrain_network_d:
            from ehat.checkpoints import load_weights

            report = load_weights(
                self.net_d, paths.pretrain_network_d, paths.param_key_d, strict=paths.strict_load_d
            )
            log = self.log.info if report.complete else self.log.warning
            log(f"path.pretrain_network_d ({paths.param_key_d}): {report.summary()}")
        cls = getattr(torch.optim, topt.optim_d.type)
        self.optimizer_d = cls([p for p in self.net_d.parameters() if p.requires_grad], **topt.optim_d.args)
        self.scheduler_d = build_scheduler(self.optimizer_d, topt)
        self.cri_gan = build_loss(topt.gan_opt.to_dict()).to(self.device)
        self.net_d_train: nn.Module = self.net_d

    def _setup(self) -> None:
        super()._setup()
        if self.net_d is not None and self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_d_train = nn.parallel.DistributedDataParallel(
                self.net_d, device_ids=ids, find_unused_parameters=self.opt.find_unused_parameters
            )

    # ------------------------------------------------------------------------------ state
    def _extra_state(self) -> dict:
        if self.net_d is None:
            return {}
        return {
            "net_d": self.net_d.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scheduler_d": scheduler_progress(self.scheduler_d),
        }

    def _restore_extra(self, state: dict) -> None:
        if self.net_d is None:
            return
        if "net_d" not in state:
            raise OptionsError(
                "path.resume_state",
                "holds no discriminator (written by a run without network_d): start a new run",
            )
        self.net_d.load_state_dict(state["net_d"], strict=True)
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        restore_scheduler(self.scheduler_d, state.get("scheduler_d"))

    def _rank_state(self) -> dict:
        return {"queue": self.queue.state_dict()} if self.queue is not None else {}

    def _restore_rank_state(self, state: dict) -> None:
        if self.queue is not None and "queue" in state:
            self.queue.load_state_dict(state["queue"], self.device)

    # ------------------------------------------------------------------------------ data
    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(degraded LR, HR) after the pair pool; the dataset's own LR with high_order_degradation false."""
        if self.degrade is None:
            return super()._inputs(batch)
        assert self.queue is not None
        lq, gt = self.degrade(batch)
        return self.queue(lq, gt)

    def train_step(self) -> dict[str, float] | None:
        if not self.gan:
            return super().train_step()
        return self._gan_step()

    # ------------------------------------------------------------------------------ GAN
    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _clip_and_step(self, optimizer: torch.optim.Optimizer, what: str) -> float | None:
        """Unscale, clip to ``train.grad_clip``, step with the warm-up factor; None when the norm is
        not finite (the step is skipped or training stops, per ``train.on_nonfinite``)."""
        topt = self.opt.train
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        max_norm = topt.grad_clip if topt.grad_clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if self.scaler is None and not math.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            self._nonfinite(f"non-finite {what} gradient norm {norm}", {})
            return None
        factor = warmup_factor(self.iter, topt.warmup_iter)
        if self.scaler is not None:
            step_with_factor(optimizer, factor, self.scaler.step, optimizer)
        else:
            step_with_factor(optimizer, factor, optimizer.step)
        return norm

    def _finite(self, values: dict[str, torch.Tensor], batch: dict) -> bool:
        bad = not all(bool(torch.isfinite(v)) for v in values.values())
        if du.any_rank(bad, self.device):
            self.optimizer.zero_grad(set_to_none=True)
            self.optimizer_d.zero_grad(set_to_none=True)
            shown = {k: float(v.detach()) for k, v in values.items()}
            self._nonfinite(f"non-finite loss {shown}", batch)
            return False
        return True

    def _gan_step(self) -> dict[str, float] | None:
        """One generator step (when due) and one discriminator step on one batch."""
        opt, topt = self.opt, self.opt.train
        assert self.net_d is not None
        scheduler_step(self.scheduler_d)  # the base loop steps the generator's
        batch = self.stream.next()
        lq, gt = self._inputs(batch)
        if du.any_rank(not (torch.isfinite(lq).all() and torch.isfinite(gt).all()), self.device):
            self._nonfinite("NaN/inf in the input images", batch)
            return None
        gt_usm = self.degrade.usm(gt) if self.degrade is not None else gt
        l1_gt = gt_usm if opt.l1_gt_usm else gt
        percep_gt = gt_usm if opt.percep_gt_usm else gt
        gan_gt = gt_usm if opt.gan_gt_usm else gt
        amp = {
            "device_type": self.device.type,
            "dtype": self.amp_dtype,
            "enabled": self.amp_dtype is not None,
        }
        logged: dict[str, float] = {}

        # generator
        update_g = self.iter % topt.net_d_iters == 0 and self.iter > topt.net_d_init_iters
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.net_d.parameters():
            p.requires_grad_(False)
        if update_g:
            with torch.autocast(**amp):
                sr = self.net_train(lq)
            sr32 = sr.float()
            losses: dict[str, torch.Tensor] = {}
            if "l_pix" in self.losses:
                losses["l_g_pix"] = self.losses["l_pix"](sr32, l1_gt)
            if "l_percep" in self.losses:
                percep, style = self.losses["l_percep"](sr32, percep_gt)
                if percep is not None:
                    losses["l_g_percep"] = percep
                if style is not None:
                    losses["l_g_style"] = style
            with torch.autocast(**amp):
                fake_pred = self.net_d(sr)  # the plain module: D's weights are frozen in this pass
            losses["l_g_gan"] = self.cri_gan(fake_pred.float(), True, is_disc=False)
            if not self._finite(losses, batch):
                return None
            self._backward(sum(losses.values()))
            norm = self._clip_and_step(self.optimizer, "generator")
            if norm is None:
                return None
            logged.update({k: float(v.detach()) for k, v in losses.items()}, grad_norm=norm)
        else:
            with torch.no_grad(), torch.autocast(**amp):
                sr = self.net(lq)

        # discriminator
        for p in self.net_d.parameters():
            p.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        with torch.autocast(**amp):
            real_pred = self.net_d_train(gan_gt)
        l_d_real = self.cri_gan(real_pred.float(), True, is_disc=True)
        if not self._finite({"l_d_real": l_d_real}, batch):
            return None
        self._backward(l_d_real)
        with torch.autocast(**amp):
            fake_pred = self.net_d_train(sr.detach().clone())
        l_d_fake = self.cri_gan(fake_pred.float(), False, is_disc=True)
        if not self._finite({"l_d_fake": l_d_fake}, batch):
            return None
        self._backward(l_d_fake)
        norm_d = self._clip_and_step(self.optimizer_d, "discriminator")
        if norm_d is None:
            return None
        if self.scaler is not None:
            self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.net)
        logged.update(
            l_d_real=float(l_d_real.detach()),
            l_d_fake=float(l_d_fake.detach()),
            out_d_real=float(real_pred.detach().float().mean()),
            out_d_fake=float(fake_pred.detach().float().mean()),
            grad_norm_d=norm_d,
        )
        self.last_pair = (lq[0].detach().cpu(), sr[0].detach().float().cpu(), l1_gt[0].detach().cpu())
        return logged

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> dict[str, dict[str, float]]:
        """The base validation, plus the last training pair as degraded LR | output | target in TensorBoard."""
        from ehat.evaluation.inference import to_uint8
        from ehat.train.validation import side_by_side

        results = super().validate()
        if self.is_main and self.last_pair is not None:
            lq, sr, gt = (to_uint8(t, 1.0) for t in self.last_pair)
            self.writer.image(
                "train/degraded_output_target", side_by_side(lq, sr, gt, self.opt.scale), self.iter
            )
        return results


def trainer_class(opt: TrainingOptions) -> type[Trainer]:
    """The loop for ``opt.model_type``: :class:`RealTrainer` for the real-world types, else Trainer."""
    return RealTrainer if opt.model_type in REAL_MODEL_TYPES else Trainer


__all__ = ["RealTrainer", "trainer_class"]
