"""Distillation options: the ``distill`` section of a ``model_type: DistillModel`` file (:mod:`ehat.train.distill`).

The teacher itself is ``network_t`` (optional: without it, the network ``path.pretrain_network_t``
describes) and ``path.pretrain_network_t`` / ``param_key_t`` / ``strict_load_t``.
"""

from __future__ import annotations

import dataclasses

from ehat.options.components import check_loss
from ehat.options.converters import as_bool, as_float, as_str, list_of
from ehat.options.schema import Component, OptionsError, option

__all__ = ["DISTILL_MODEL_TYPES", "DistillOptions", "check_distill"]

DISTILL_MODEL_TYPES = ("DistillModel",)
"""A student (``network_g``) trained from a frozen teacher (``network_t``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillOptions:
    """``distill``: what the student learns from the teacher (``model_type: DistillModel``)."""

    output_opt: Component | None = option(
        check_loss,
        None,
        nullable=True,
        doc="output distillation: a basicsr loss (L1Loss, MSELoss...) of the student's SR against the "
        "teacher's SR; its loss_weight weighs it",
    )
    affinity_weight: float = option(
        as_float,
        0.0,
        minimum=0.0,
        doc="weight of the spatial-affinity loss (FAKD's, as in DSCLoRA) over the layer pairs below",
    )
    student_layers: list[str] = option(
        list_of(as_str), [], doc="module names of network_g whose outputs are compared (e.g. block_1)"
    )
    teacher_layers: list[str] = option(
        list_of(as_str),
        [],
        doc="module names of the teacher, one per student layer, at the same spatial size (e.g. layers.0)",
    )
    teacher_bf16: bool = option(as_bool, False, doc="run the teacher under bf16 autocast")

    def check(self, prefix: str) -> None:
        if len(self.student_layers) != len(self.teacher_layers):
            raise OptionsError(
                f"{prefix}.teacher_layers",
                f"gives {len(self.teacher_layers)} names for {len(self.student_layers)} student_layers: "
                "pair every student layer with one teacher layer",
            )
        if self.student_layers and self.affinity_weight == 0:
            raise OptionsError(
                f"{prefix}.affinity_weight", "is 0 while layers are named: set a positive weight or drop them"
            )
        if self.affinity_weight > 0 and not self.student_layers:
            raise OptionsError(
                f"{prefix}.student_layers", "name the layers the affinity loss compares (affinity_weight > 0)"
            )
        if self.output_opt is None and self.affinity_weight == 0:
            raise OptionsError(
                f"{prefix}.output_opt",
                "nothing is distilled: give output_opt, or affinity_weight with student_layers/teacher_layers",
            )


def check_distill(opt: object) -> None:
    """The cross-key rules of distillation on a whole training options object: ``network_t``,
    ``distill`` and ``path.*_t`` only with a distillation model type; there ``distill`` and
    ``path.pretrain_network_t`` are required."""
    model_type = opt.model_type  # type: ignore[attr-defined]
    given = {
        "network_t": opt.network_t is not None,  # type: ignore[attr-defined]
        "distill": opt.distill is not None,  # type: ignore[attr-defined]
        "path.pretrain_network_t": opt.path.pretrain_network_t is not None,  # type: ignore[attr-defined]
    }
    if model_type not in DISTILL_MODEL_TYPES:
        for key, present in given.items():
            if present:
                raise OptionsError(
                    key,
                    f"only for model_type {' / '.join(DISTILL_MODEL_TYPES)} (a student trained from a teacher); "
                    f"model_type is {model_type}: set model_type or remove the key",
                )
        return
    for key in ("distill", "path.pretrain_network_t"):
        if not given[key]:
            raise OptionsError(key, f"is required by model_type {model_type}")
