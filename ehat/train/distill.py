"""Knowledge distillation: a small student (``network_g``) trained from a frozen teacher (``network_t``).

``model_type: DistillModel`` runs :class:`DistillTrainer`, the :class:`~ehat.train.trainer.Trainer`
whose loss step adds, beside the ground-truth losses of ``train`` (``pixel_opt``...; optional here):

- **output distillation** (``distill.output_opt``, a basicsr loss such as ``L1Loss`` with its
  ``loss_weight``): the student's SR against the teacher's SR, logged as ``l_distill``;
- **spatial-affinity distillation** (``distill.affinity_weight`` on the layer pairs
  ``distill.student_layers`` / ``distill.teacher_layers``), logged as ``l_affinity``: FAKD's
  second-order loss (He et al., ICIP 2020), the one the NTIRE 2025 ESR winner DSCLoRA
  (arXiv 2504.11271) trains SPAN with. For a feature map ``F`` (B, C, H, W) (or tokens (B, H*W, C)),
  every position's C-vector is L2-normalised, ``A = F^T F`` is the (B, HW, HW) cosine affinity of
  positions, and the loss is ``mean |A_student - A_teacher|``, averaged over the layer pairs. It
  compares positions, not channels, so the two widths may differ; the spatial sizes must agree.

The teacher is any network this project loads (EHAT-L, HAT-L, SPAN, RLFN...): built from
``network_t`` (or, without it, from what ``path.pretrain_network_t`` describes), loaded, ``eval()``,
no gradients, optionally run under bf16 autocast (``distill.teacher_bf16``). It reads the student's
[0, 1] input scaled to its own data range (RLFN: [0, 255]) and its output is scaled back. It is not
part of the training state (resume rebuilds it from its file); the seconds it takes per iteration
are logged as ``t_teacher``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import torch
from torch import nn

from ehat.archs.descriptor import descriptor_of
from ehat.errors import EhatError, did_you_mean
from ehat.options.schema import OptionsError
from ehat.train.trainer import Trainer

__all__ = ["DistillTrainer", "FeatureTaps", "Teacher", "affinity_loss", "spatial_affinity"]


def spatial_affinity(feature: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Cosine affinity of a feature map's positions: (B, C, H, W) or tokens (B, L, C) -> (B, L, L).

    Each position's C-vector is divided by its L2 norm (+ ``eps``); entry (i, j) is the cosine of
    positions i and j. Computed in fp32.
    """
    x = feature.float()
    if x.dim() == 4:
        x = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
    elif x.dim() != 3:
        raise ValueError(f"expected a (B, C, H, W) map or (B, L, C) tokens, got shape {tuple(feature.shape)}")
    x = x / (x.norm(dim=2, keepdim=True) + eps)
    return x @ x.transpose(1, 2)


def affinity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``mean |A(student) - A(teacher)|`` of :func:`spatial_affinity` (a scalar)."""
    return (spatial_affinity(student) - spatial_affinity(teacher)).abs().mean()


def module_names(net: nn.Module) -> list[str]:
    """The names ``net.get_submodule`` accepts (the root excluded)."""
    return [name for name, _ in net.named_modules() if name]


def check_layer_names(net: nn.Module, names: Sequence[str], key: str, what: str) -> None:
    """An :class:`OptionsError` at ``key`` for a name that is not a module of ``net``, listing the
    valid ones (the closest first)."""
    valid = module_names(net)
    for i, name in enumerate(names):
        if name not in valid:
            raise OptionsError(
                f"{key}[{i}]",
                f"{name!r} is not a module of the {what} ({type(net).__name__}){did_you_mean(name, valid)}; "
                f"valid names: {', '.join(valid)}",
            )


class FeatureTaps:
    """Forward hooks keeping the outputs of named sub-modules of ``net`` during one forward.

    ``taps.outputs`` maps each name to the module's output (its first element when a tuple, as for
    SPAN's blocks) from the latest forward; :meth:`remove` detaches the hooks.
    """

    def __init__(self, net: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = [net.get_submodule(n).register_forward_hook(self._keep(n)) for n in self.names]

    def _keep(self, name: str):  # noqa: ANN202  (a hook)
        def hook(module: nn.Module, args: object, output: object) -> None:
            self.outputs[name] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    def take(self) -> list[torch.Tensor]:
        """The tapped outputs in ``names`` order; the store is emptied."""
        out = [self.outputs[n] for n in self.names]
        self.outputs = {}
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class Teacher:
    """A frozen network run on the student's [0, 1] inputs: ``teacher(lq) -> (sr, features)``.

    Args:
        net: the teacher, its weights loaded; put in ``eval()`` with ``requires_grad`` off.
        layers: names of the modules whose outputs :meth:`__call__` returns.
        bf16: run under bf16 autocast.
    """

    def __init__(self, net: nn.Module, layers: Sequence[str] = (), bf16: bool = False) -> None:
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.data_range = descriptor_of(net).data_range
        self.bf16 = bf16
        self.taps = FeatureTaps(net, layers)
        self.seconds = 0.0
        """Time spent in the teacher since the last :meth:`lap`."""

    @torch.no_grad()
    def __call__(self, lq: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 3, h, w) in [0, 1] -> SR (B, 3, h*s, w*s) in [0, 1] (fp32), and the tapped features."""
        device = lq.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        )
        with autocast:
            sr = self.net(lq * self.data_range)
        sr = sr.float() / self.data_range
        feats = self.taps.take()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds += time.perf_counter() - start
        return sr, feats

    def lap(self) -> float:
        """Seconds spent since the last lap (and reset)."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


class DistillError(EhatError):
    """Student and teacher layers that cannot be compared (their spatial sizes differ)."""


class DistillTrainer(Trainer):
    """``model_type: DistillModel``: the base loop with the teacher's losses added to the loss step."""

    def _setup_models(self) -> None:
        dopt = self.opt.distill
        assert dopt is not None and self.opt.path.pretrain_network_t
        net_t = self._build_network("t").to(self.device)
        check_layer_names(self.net, dopt.student_layers, "distill.student_layers", "student (network_g)")
        check_layer_names(net_t, dopt.teacher_layers, "distill.teacher_layers", "teacher (network_t)")
        self.teacher = Teacher(net_t, dopt.teacher_layers, dopt.teacher_bf16)
        self.student_taps = FeatureTaps(self.net, dopt.student_layers)
        self.output_loss = None
        if dopt.output_opt is not None:
            from basicsr.losses import build_loss

            self.output_loss = build_loss(dopt.output_opt.to_dict()).to(self.device)
        n_params = sum(p.numel() for p in net_t.parameters())
        self.log.info(
            f"Teacher {type(net_t).__name__} ({n_params:,} parameters, data range [0, {self.teacher.data_range:g}]"
            f"{', bf16' if dopt.teacher_bf16 else ''}): frozen, not saved in training states"
        )

    def _loss_step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        dopt = self.opt.distill
        assert dopt is not None
        sr = self._forward(lq)
        losses = self._loss(sr, gt)  # the ground-truth losses (none when train has none)
        t_sr, t_feats = self.teacher(lq)
        s_feats = self.student_taps.take()
        if self.output_loss is not None:
            losses["l_distill"] = self.output_loss(sr, t_sr)
        if dopt.affinity_weight > 0 and s_feats:
            terms = [self._affinity(i, s, t) for i, (s, t) in enumerate(zip(s_feats, t_feats))]
            losses["l_affinity"] = dopt.affinity_weight * torch.stack(terms).mean()
        return losses

    def _affinity(self, i: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        def positions(t: torch.Tensor) -> int:
            return t.shape[2] * t.shape[3] if t.dim() == 4 else t.shape[1]

        if positions(student) != positions(teacher):
            dopt = self.opt.distill
            raise DistillError(
                f"distill.student_layers[{i}] {dopt.student_layers[i]!r} gives shape {tuple(student.shape)}, "
                f"distill.teacher_layers[{i}] {dopt.teacher_layers[i]!r} gives {tuple(teacher.shape)}: their "
                "spatial sizes differ; pair layers at the same resolution (LR-sized feature maps)"
            )
        return affinity_loss(student, teacher)

    def train_step(self) -> dict[str, float] | None:
        logged = super().train_step()
        seconds = self.teacher.lap()
        if logged is not None:
            logged["t_teacher"] = seconds
        return logged
