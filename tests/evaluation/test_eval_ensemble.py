"""Self-ensemble x8."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ehat.evaluation.ensemble import self_ensemble


def _up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def test_equivariant_model_is_unchanged_by_the_ensemble():
    x = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(self_ensemble(_up, x), _up(x))


def test_ensemble_is_the_mean_over_the_eight_dihedral_transforms():
    ramp = torch.arange(14.0).view(1, 1, 1, 14)

    def biased(x):  # not equivariant: adds a left-to-right ramp in its own frame
        return _up(x) + ramp[..., : x.shape[-1] * 2]

    x = torch.rand(1, 1, 7, 7)
    expected = torch.zeros(1, 1, 14, 14)
    for flip in (False, True):
        for k in range(4):
            t = torch.rot90(x.flip(-1) if flip else x, k, (2, 3))
            y = torch.rot90(biased(t), -k, (2, 3))
            expected += (y.flip(-1) if flip else y) / 8
    torch.testing.assert_close(self_ensemble(biased, x), expected)


def test_non_square_inputs_keep_their_shape():
    assert self_ensemble(_up, torch.rand(2, 3, 4, 9)).shape == (2, 3, 8, 18)
