"""Branch Self-Attention (BSA): one learnable scalar on every residual / dense pathway of HAT.

Stored as two vectors, in the order of team SKDADDYS's release (NTIRE 2024 ESR):

* ``weight_0`` (init 0), for pathways that EHAT *adds* to HAT: the dense sums and the CAB identity.
  ``[body input] + per RHAG i: [group input, (CAB identity_j, HAB output_j) for j, group output]``
* ``weight_1`` (init 1), for HAT's identity pathways:
  ``per RHAG i: [(attention shortcut_j, MLP residual_j) for j, group residual] + [long skip]``

For HAT-L (12 groups of 6 HABs) that is 169 and 157 scalars. The index of every pathway is fixed
at construction (a slice per group), so forward is pure: no call counters, any order of calls,
gradient checkpointing and partial forwards give the same result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ehat.archs.hat_arch import BlockPathways, BodyPathways, GroupPathways


def branch_weight_sizes(depths: Sequence[int]) -> tuple[int, int]:
    """(len(weight_0), len(weight_1)) for RHAG depths ``depths``: (169, 157) for [6] * 12."""
    return 1 + sum(2 * d + 2 for d in depths), sum(2 * d + 1 for d in depths) + 1


class BranchWeights(nn.Module):
    """The two BSA vectors and their fixed index map for RHAG depths ``depths``.

    The only place that knows the layout: :meth:`group` and :meth:`body` hand HAT's hooks the
    scalars by name (:class:`~ehat.archs.hat_arch.GroupPathways`, ``BodyPathways``).
    """

    def __init__(self, depths: Sequence[int]) -> None:
        super().__init__()
        self.depths = tuple(int(d) for d in depths)
        n0, n1 = branch_weight_sizes(self.depths)
        self.weight_0 = nn.Parameter(torch.zeros(n0))
        self.weight_1 = nn.Parameter(torch.ones(n1))
        starts0, starts1 = [], []
        s0, s1 = 1, 0
        for d in self.depths:
            starts0.append(s0)
            starts1.append(s1)
            s0 += 2 * d + 2
            s1 += 2 * d + 1
        self._starts0 = tuple(starts0)
        self._starts1 = tuple(starts1)

    def body(self) -> BodyPathways:
        """weight_0[0]: the embedded body input's share of the body's dense sum;
        weight_1[-1]: the long skip from conv_first."""
        return BodyPathways(dense_input=self.weight_0[0], long_skip=self.weight_1[-1])

    def group(self, i: int) -> GroupPathways:
        """RHAG ``i``'s scalars. Its slice of weight_0 (2*depth + 2 entries) is
        ``[group input, (CAB identity_j, HAB output_j) per HAB, group output]``, of weight_1
        (2*depth + 1) ``[(attention shortcut_j, MLP residual_j) per HAB, group residual]``."""
        d = self.depths[i]
        s0, s1 = self._starts0[i], self._starts1[i]
        w0, w1 = self.weight_0[s0 : s0 + 2 * d + 2], self.weight_1[s1 : s1 + 2 * d + 1]
        blocks = tuple(BlockPathways(w0[1 + 2 * j], w1[2 * j], w1[2 * j + 1]) for j in range(d))
        return GroupPathways(
            blocks=blocks,
            dense_input=w0[0],
            dense_blocks=tuple(w0[2 + 2 * j] for j in range(d)),
            residual=w1[-1],
            dense_output=w0[-1],
        )

    def extra_repr(self) -> str:
        return (
            f"depths={list(self.depths)}, weight_0={self.weight_0.numel()}, weight_1={self.weight_1.numel()}"
        )
