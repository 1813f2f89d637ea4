"""Optimizer (with an optional learning rate for EHAT's new parameters), scheduler, warm-up."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from ehat.options.train import TrainOptions

DEFAULT_NEW_PARAM_KEYS = ("branch_weights", "dual_attention")
"""Parameter-name fragments of what EHAT adds to HAT: BSA vectors and DANet dual attention."""

_SCHEDULER_PROGRESS = ("last_epoch", "_step_count", "_last_lr")


def build_optimizer(model: nn.Module, train_opt: TrainOptions, key: str = "optim_g") -> torch.optim.Optimizer:
    """``train.<key>`` (``optim_g``, or the discriminator's ``optim_d``) over the trainable parameters of ``model``.

    With ``train.new_param_lr`` the generator's parameters whose names contain a
    ``train.new_param_keys`` fragment (default: BSA and dual attention) form a second group with
    that learning rate.
    """
    spec = getattr(train_opt, key)
    cls, kwargs = getattr(torch.optim, spec.type), dict(spec.args)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    new_lr = train_opt.new_param_lr if key == "optim_g" else None
    if new_lr is None:
        return cls([{"params": [p for _, p in named], "name": "base"}], **kwargs)
    keys = tuple(train_opt.new_param_keys or DEFAULT_NEW_PARAM_KEYS)
    new = [p for n, p in named if any(k in n for k in keys)]
    assert new, "train.new_param_keys matching no parameter is refused at load (ehat.options.probes)"
    base = [p for n, p in named if not any(k in n for k in keys)]
    groups = [{"params": base, "name": "base"}, {"params": new, "lr": new_lr, "name": "new"}]
    return cls(groups, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, train_opt: TrainOptions
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """BasicSR's MultiStepRestartLR (also for ``MultiStepLR``) or CosineAnnealingRestartLR; None without one."""
    from basicsr.models import lr_scheduler

    spec = train_opt.scheduler
    if spec is None:
        return None
    kwargs = dict(spec.args)
    if spec.type == "CosineAnnealingRestartLR":
        return lr_scheduler.CosineAnnealingRestartLR(optimizer, **kwargs)
    return lr_scheduler.MultiStepRestartLR(optimizer, **kwargs)


def scheduler_step(scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
    """Advance the schedule by one iteration (BasicSR order: before the optimizer step)."""
    if scheduler is None:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
        scheduler.step()


def scheduler_progress(scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> dict | None:
    """Where the schedule is (not its milestones/periods, which come from the options, so a resumed
    run may extend them along with ``total_iter``)."""
    if scheduler is None:
        return None
    return {k: getattr(scheduler, k) for k in _SCHEDULER_PROGRESS if hasattr(scheduler, k)}


def restore_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler | None, progress: dict | None) -> None:
    if scheduler is None or progress is None:
        return
    for k, v in progress.items():
        setattr(scheduler, k, v)


def warmup_factor(it: int, warmup_iter: int) -> float:
    """Linear warm-up multiplier for iteration ``it`` (1-based): it / warmup_iter, then 1."""
    if warmup_iter <= 0 or it >= warmup_iter:
        return 1.0
    return it / warmup_iter


def step_with_factor(
    optimizer: torch.optim.Optimizer, factor: float, step: Callable[..., object], *args: object
) -> None:
    """Run ``step(*args)`` with every group's lr multiplied by ``factor``, then put the lrs back
    (the scheduler keeps seeing its own values)."""
    saved = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * factor
    try:
        step(*args)
    finally:
        for g, lr in zip(optimizer.param_groups, saved):
            g["lr"] = lr
