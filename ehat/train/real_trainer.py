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

from typing import Any

import torch
from torch import nn

from ehat.options.common import GAN_MODEL_TYPES, REAL_MODEL_TYPES
from ehat.options.distill import DISTILL_MODEL_TYPES
from ehat.options.losses import generator_slots
from ehat.options.train import TrainingOptions
from ehat.train import optim
from ehat.train.distill import DistillTrainer
from ehat.train.realesr import Degradation, PairQueue
from ehat.train.state import StateError
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

        assert opt.network_d is not None and topt.optim_d is not None and topt.gan_opt is not None
        self.net_d = self._build_network("d").to(self.device)
        self.optimizer_d = optim.build_optimizer(self.net_d, topt, key="optim_d")
        self.scheduler_d = optim.build_scheduler(self.optimizer_d, topt)
        self.optimizers.append(self.optimizer_d)
        self.cri_gan = build_loss(topt.gan_opt.to_dict()).to(self.device)

    def _wrap_models(self) -> None:
        if self.net_d is not None:
            self.net_d_train = self._wrap(self.net_d)

    # ------------------------------------------------------------------------------ state
    def _extra_state(self) -> dict:
        if self.net_d is None:
            return {}
        return {
            "net_d": self.net_d.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scheduler_d": optim.scheduler_progress(self.scheduler_d),
        }

    def _restore_extra(self, state: dict) -> None:
        if self.net_d is None:
            return
        if "net_d" not in state:  # an explicit path.resume_state is checked at load already (probes)
            raise StateError(
                "the training state to resume holds no discriminator (net_d): it was written by a run "
                "without network_d; start a new experiment (another name) instead of --auto_resume"
            )
        self.net_d.load_state_dict(state["net_d"], strict=True)
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        optim.restore_scheduler(self.scheduler_d, state.get("scheduler_d"))

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
    def _gan_step(self) -> dict[str, float] | None:
        """One generator step (when due) and one discriminator step on one batch."""
        opt, topt = self.opt, self.opt.train
        assert self.net_d is not None
        optim.scheduler_step(self.scheduler_d)  # the base loop steps the generator's
        batch = self.stream.next()
        lq, gt = self._inputs(batch)
        if not self._inputs_finite(lq, gt, batch):
            return None
        gt_usm = self.degrade.usm(gt) if self.degrade is not None else gt
        targets = {  # per generator loss slot: the USM-sharpened target where its usm_key says so
            f"l_{slot.log_name}": gt_usm if getattr(opt, slot.usm_key) else gt
            for slot in generator_slots()
            if slot.usm_key is not None
        }
        gan_gt = gt_usm if opt.gan_gt_usm else gt
        logged: dict[str, float] = {}

        # generator
        update_g = self.iter % topt.net_d_iters == 0 and self.iter > topt.net_d_init_iters
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.net_d.parameters():
            p.requires_grad_(False)
        if update_g:
            with self._autocast():
                sr = self.net_train(lq)
            sr32 = sr.float()
            losses = self._loss(sr32, gt, "l_g_", targets=targets)
            with self._autocast():
                fake_pred = self.net_d(sr)  # the plain module: D's weights are frozen in this pass
            losses["l_g_gan"] = self.cri_gan(fake_pred.float(), True, is_disc=False)
            if not self._losses_finite(losses, batch):
                return None
            self._backward(sum(losses.values()))
            norm = self._clip_and_step(self.optimizer, "generator")
            if norm is None:
                return None
            logged.update({k: float(v.detach()) for k, v in losses.items()}, grad_norm=norm)
        else:
            with torch.no_grad(), self._autocast():
                sr = self.net(lq)

        # discriminator
        for p in self.net_d.parameters():
            p.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        with self._autocast():
            real_pred = self.net_d_train(gan_gt)
        l_d_real = self.cri_gan(real_pred.float(), True, is_disc=True)
        if not self._losses_finite({"l_d_real": l_d_real}, batch):
            return None
        self._backward(l_d_real)
        with self._autocast():
            fake_pred = self.net_d_train(sr.detach().clone())
        l_d_fake = self.cri_gan(fake_pred.float(), False, is_disc=True)
        if not self._losses_finite({"l_d_fake": l_d_fake}, batch):
            return None
        self._backward(l_d_fake)
        norm_d = self._clip_and_step(self.optimizer_d, "discriminator")
        if norm_d is None:
            return None
        self._finish_step()
        logged.update(
            l_d_real=float(l_d_real.detach()),
            l_d_fake=float(l_d_fake.detach()),
            out_d_real=float(real_pred.detach().float().mean()),
            out_d_fake=float(fake_pred.detach().float().mean()),
            grad_norm_d=norm_d,
        )
        self.last_pair = (
            lq[0].detach().cpu(),
            sr[0].detach().float().cpu(),
            targets["l_pix"][0].detach().cpu(),
        )
        return logged

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> dict[str, dict[str, float]]:
        """The base validation, plus the last training pair as degraded LR | output | target in TensorBoard."""
        from ehat.imaging.convert import to_uint8
        from ehat.train.validation import side_by_side

        results = super().validate()
        if self.is_main and self.last_pair is not None:
            lq, sr, gt = (to_uint8(t, 1.0) for t in self.last_pair)
            self.writer.image(
                "train/degraded_output_target", side_by_side(lq, sr, gt, self.opt.scale), self.iter
            )
        return results


def trainer_class(opt: TrainingOptions) -> type[Trainer]:
    """The loop for ``opt.model_type``: :class:`RealTrainer` for the real-world types,
    :class:`~ehat.train.distill.DistillTrainer` for distillation, else Trainer."""
    if opt.model_type in DISTILL_MODEL_TYPES:
        return DistillTrainer
    return RealTrainer if opt.model_type in REAL_MODEL_TYPES else Trainer


__all__ = ["RealTrainer", "trainer_class"]
