"""Exponential moving average of a network's weights (BasicSR's ``params_ema``)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` updated as ``ema = decay * ema + (1 - decay) * param`` after each step.

    Buffers (e.g. relative-position indices) are copied, not averaged. ``decay`` = 0 makes the
    copy track the model exactly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average."""
        ema_params = dict(self.module.named_parameters())
        for name, p in model.named_parameters():
            ema_params[name].lerp_(p.detach().to(ema_params[name].dtype), 1.0 - self.decay)
        ema_buffers = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)
