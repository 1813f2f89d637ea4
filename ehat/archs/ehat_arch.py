"""EHAT: HAT + branch self-attention (BSA) + DANet dual attention, each switchable.

EHAT plugs its parts into HAT's neutral hooks (``group_pathways``, ``body_pathways``,
``after_group``, ``after_body``, ``image_skip``); HAT itself knows none of them. By default
(``type: EHAT``) BSA is on and dual attention sits on the body; the published ``ehat_l`` preset
(the team's release) has dual attention off. With ``bsa=False``, ``dual_attention='none'`` and
``bicubic_skip=False`` EHAT is HAT (same keys, same function). With BSA or dual attention on, a freshly built EHAT still computes
HAT's function exactly: BSA starts at weight_0 = 0 / weight_1 = 1 and dual attention at gamma = 0.

``bicubic_skip=True`` (off in every published config) adds a learnable image-level skip that
starts as exact bicubic upsampling (:class:`BicubicSkip`) and zeroes ``conv_last``, so a fresh
network computes bicubic and learns the residual: small models train from scratch in far fewer
iterations. Its ``bicubic_skip.*`` keys make a checkpoint with it refuse to load without it and
the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ehat.archs.bicubic_skip import BicubicSkip
from ehat.archs.bsa import BranchWeights
from ehat.archs.descriptor import ExportStep, NetworkDescriptor, register_network
from ehat.archs.dual_attention import DualAttention, PositionAttention
from ehat.archs.hat_arch import (
    HAB,
    HAT,
    HAT_EXPORT_STEPS,
    HAT_SOURCE_MODULES,
    OCAB,
    BodyPathways,
    GroupPathways,
    HATConfigError,
    hat_config_from_state_dict,
)

DUAL_ATTENTION_PLACEMENTS = ("none", "body", "rhag")


class EHATConfigError(HATConfigError):
    """EHAT arguments that cannot build a network; the message names the argument. An
    :class:`ehat.errors.EhatError` and, as before, a ``ValueError``."""


class EHAT(HAT):
    """HAT's arguments plus:

    Args:
        bsa: learnable branch weights on every residual / dense pathway (:mod:`ehat.archs.bsa`).
        dual_attention: 'body' (the default: one PAM+CAM on the deep features before
            ``conv_after_body``), 'rhag' (one after every RHAG) or 'none'.
        dual_attention_branches: which DANet branches to use, a subset of ('pam', 'cam').
        pam_tile: restrict position attention to tiles of this many LR pixels (None: whole map).
        pam_query_chunk: queries per attention call inside PAM (memory bound on CPU).
        bicubic_skip: add a learnable, bicubic-initialized upsampling of the input to the output
            and zero-initialize ``conv_last`` (a fresh network then computes bicubic).
    """

    def __init__(
        self,
        *,
        bsa: bool = True,
        dual_attention: str = "body",
        dual_attention_branches: Sequence[str] = ("pam", "cam"),
        pam_tile: int | None = None,
        pam_query_chunk: int = 4096,
        bicubic_skip: bool = False,
        **hat_kwargs,
    ) -> None:
        super().__init__(**hat_kwargs)
        if dual_attention not in DUAL_ATTENTION_PLACEMENTS:
            raise EHATConfigError(
                f"dual_attention must be one of {DUAL_ATTENTION_PLACEMENTS}, got {dual_attention!r}"
            )
        unknown = set(dual_attention_branches) - {"pam", "cam"}
        if unknown:
            raise EHATConfigError(
                f"dual_attention_branches may hold 'pam' and 'cam' only, got {sorted(unknown)}"
            )
        if dual_attention != "none" and not dual_attention_branches:
            raise EHATConfigError(
                f"dual_attention_branches is empty with dual_attention {dual_attention!r}: give 'pam', 'cam' or "
                "both, or set dual_attention 'none'"
            )
        self.branch_weights = BranchWeights(self.depths) if bsa else None

        def make() -> DualAttention:
            return DualAttention(
                self.embed_dim,
                pam="pam" in dual_attention_branches,
                cam="cam" in dual_attention_branches,
                pam_tile=pam_tile,
                pam_query_chunk=pam_query_chunk,
            )

        self.dual_attention_placement = dual_attention
        if dual_attention == "body":
            self.dual_attention = make()
        elif dual_attention == "rhag":
            self.dual_attention = nn.ModuleList(make() for _ in self.depths)
        else:
            self.dual_attention = None
        self.bicubic_skip = BicubicSkip(self.in_chans, self.upscale) if bicubic_skip else None
        if bicubic_skip:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def group_pathways(self, i: int) -> GroupPathways | None:
        return None if self.branch_weights is None else self.branch_weights.group(i)

    def body_pathways(self) -> BodyPathways | None:
        return None if self.branch_weights is None else self.branch_weights.body()

    def after_group(self, i: int, t: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """Dual attention after RHAG ``i`` (placement 'rhag'); tokens (B, H*W, C)."""
        if self.dual_attention_placement != "rhag":
            return t
        h, w = x_size
        x = t.transpose(1, 2).contiguous().view(-1, self.embed_dim, h, w)
        return self.dual_attention[i](x).flatten(2).transpose(1, 2)

    def after_body(self, x: torch.Tensor) -> torch.Tensor:
        """Dual attention on the deep features (placement 'body'); (B, C, H, W)."""
        return self.dual_attention(x) if self.dual_attention_placement == "body" else x

    def image_skip(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.bicubic_skip is None else self.bicubic_skip(x)


# --------------------------------------------------------------------------- descriptor

BSA_KEYS = ("branch_weights.weight_0", "branch_weights.weight_1")


def _has_ehat_parts(sd: Mapping[str, torch.Tensor]) -> bool:
    """A HAT layout plus BSA vectors, dual attention or a bicubic skip."""
    return "conv_first.weight" in sd and (
        all(k in sd for k in BSA_KEYS)
        or any(k.startswith("dual_attention.") for k in sd)
        or "bicubic_skip.weight" in sd
    )


def ehat_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """EHAT's constructor arguments read off a canonical state dict: HAT's plus its parts' switches."""
    cfg = hat_config_from_state_dict(sd)
    da_keys = [k for k in sd if k.startswith("dual_attention.")]
    placement = "none"
    if da_keys:
        placement = "rhag" if da_keys[0].split(".")[1].isdigit() else "body"  # dual_attention.<i>.
    cfg.update(bsa=all(k in sd for k in BSA_KEYS), dual_attention=placement)
    if da_keys:
        cfg["dual_attention_branches"] = [
            b for b in ("pam", "cam") if any(f".{b}." in f".{k}" for k in da_keys)
        ]
    if "bicubic_skip.weight" in sd:
        cfg["bicubic_skip"] = True
    return cfg


register_network(
    NetworkDescriptor(
        name="EHAT",
        cls=EHAT,
        detect=_has_ehat_parts,
        infer_config=ehat_config_from_state_dict,
        layout="HAT's keys plus branch_weights.*, dual_attention.* or bicubic_skip.*",
        data_range=1.0,
        compile_blocks=(HAB, OCAB),
        source_modules=(
            *HAT_SOURCE_MODULES,
            "ehat.archs.bsa",
            "ehat.archs.dual_attention",
            "ehat.archs.bicubic_skip",
            "ehat.archs.ehat_arch",
        ),
        export_steps=(
            *HAT_EXPORT_STEPS,
            ExportStep(PositionAttention, "residual", "ehat.export.graph:pam_residual"),
        ),
    )
)
