"""EHAT: HAT + branch self-attention (BSA) + DANet dual attention, each switchable.

With ``bsa=False`` and ``dual_attention='none'`` EHAT is HAT (same keys, same function). With
either on, a freshly built EHAT still computes HAT's function exactly: BSA starts at
weight_0 = 0 / weight_1 = 1 and dual attention at gamma = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ehat.archs.bsa import BranchWeights
from ehat.archs.dual_attention import DualAttention
from ehat.archs.hat_arch import HAT

DUAL_ATTENTION_PLACEMENTS = ("none", "body", "rhag")


@ARCH_REGISTRY.register()
class EHAT(HAT):
    """HAT's arguments plus:

    Args:
        bsa: learnable branch weights on every residual / dense pathway (:mod:`ehat.archs.bsa`).
        dual_attention: 'body' (one PAM+CAM on the deep features before ``conv_after_body``),
            'rhag' (one after every RHAG) or 'none'.
        dual_attention_branches: which DANet branches to use, a subset of ('pam', 'cam').
        pam_tile: restrict position attention to tiles of this many LR pixels (None: whole map).
        pam_query_chunk: queries per attention call inside PAM (memory bound on CPU).
    """

    def __init__(
        self,
        *,
        bsa: bool = True,
        dual_attention: str = "body",
        dual_attention_branches: Sequence[str] = ("pam", "cam"),
        pam_tile: int | None = None,
        pam_query_chunk: int = 4096,
        **hat_kwargs,
    ) -> None:
        super().__init__(**hat_kwargs)
        if dual_attention not in DUAL_ATTENTION_PLACEMENTS:
            raise ValueError(
                f"dual_attention must be one of {DUAL_ATTENTION_PLACEMENTS}, got {dual_attention!r}"
            )
        unknown = set(dual_attention_branches) - {"pam", "cam"}
        if unknown:
            raise ValueError(f"dual_attention_branches may hold 'pam' and 'cam' only, got {sorted(unknown)}")
        if bsa:
            self.branch_weights = BranchWeights(self.depths)

        def make() -> DualAttention:
            return DualAttention(
                self.embed_dim,
                pam="pam" in dual_attention_branches,
                cam="cam" in dual_attention_branches,
                pam_tile=pam_tile,
                pam_query_chunk=pam_query_chunk,
            )

        if dual_attention == "body":
            self.dual_attention = make()
        elif dual_attention == "rhag":
            self.dual_attention = nn.ModuleList(make() for _ in self.depths)
        self.dual_attention_placement = None if dual_attention == "none" else dual_attention
