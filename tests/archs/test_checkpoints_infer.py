"""``infer_config`` against many HAT/EHAT variants, in the spirit of spandrel's ``assert_loads_correctly``.

Each tiny variant is built, its weights randomised (so identity-initialised BSA vectors and
dual-attention gammas are not trivially zero/one), and its state dict alone is given to
``infer_config``. The inferred network must take the weights strictly and compute the same output
bit for bit. Values no state dict records (conv_scale, img_range, qk_scale, drop_path_rate) are
left at their defaults here: the docs say they cannot be inferred.
"""

from __future__ import annotations

import pytest
import torch

from ehat.archs import build_network, preset_config
from ehat.checkpoints import infer_config, load_model
from tests.helpers import perturb

BASE = {
    "type": "HAT",
    "upscale": 4,
    "in_chans": 3,
    "embed_dim": 16,
    "depths": [1, 1],
    "num_heads": [2, 2],
    "window_size": 8,
    "compress_ratio": 2,
    "squeeze_factor": 4,
    "mlp_ratio": 2,
    "drop_path_rate": 0.0,
}

EHAT = {"type": "EHAT", "bsa": True, "dual_attention": "none"}

VARIANTS: dict[str, dict] = {
    "hat": {},
    "hat_uneven_depths_heads": {"depths": [2, 1, 3], "num_heads": [2, 4, 1]},
    "hat_window12": {"window_size": 12},
    "hat_window16": {"window_size": 16, "depths": [1], "num_heads": [4]},
    "hat_overlap_0.25": {"overlap_ratio": 0.25},
    "hat_overlap_0.3_rounds_down": {"overlap_ratio": 0.3},
    "hat_overlap_0.75": {"overlap_ratio": 0.75},  # (window * ratio must be even: HAT's OCAB padding)
    "hat_x2": {"upscale": 2},
    "hat_x3": {"upscale": 3},
    "hat_x8": {"upscale": 8, "depths": [1], "num_heads": [2]},
    "hat_embed24": {"embed_dim": 24, "num_heads": [3, 6]},
    "hat_gray": {"in_chans": 1},
    "hat_mlp_1.5": {"mlp_ratio": 1.5},
    "hat_mlp_4_over_3_embed30": {"embed_dim": 30, "num_heads": [3, 5], "mlp_ratio": 4 / 3},
    # int(22 * 1.4) == 30, but int(22 * (30 / 22)) == 29: the naive inverse builds a narrower MLP.
    "hat_mlp_embed22_float_trap": {"embed_dim": 22, "num_heads": [2, 11], "mlp_ratio": 1.4},
    "hat_compress3_squeeze5_uneven": {"compress_ratio": 3, "squeeze_factor": 5},
    "hat_no_qkv_bias": {"qkv_bias": False},
    "hat_no_patch_norm": {"patch_norm": False},
    "hat_ape_img16": {"ape": True, "img_size": 16},
    "hat_identity_resi": {"resi_connection": "identity"},
    "ehat_bsa": {**EHAT},
    "ehat_bsa_da_body": {**EHAT, "dual_attention": "body"},
    "ehat_bsa_da_rhag": {**EHAT, "dual_attention": "rhag", "depths": [1, 2, 1], "num_heads": [2, 2, 4]},
    "ehat_da_body_pam_only_no_bsa": {
        **EHAT,
        "bsa": False,
        "dual_attention": "body",
        "dual_attention_branches": ["pam"],
    },
    "ehat_da_rhag_cam_only": {**EHAT, "dual_attention": "rhag", "dual_attention_branches": ["cam"]},
    "ehat_bsa_bicubic_skip": {**EHAT, "bicubic_skip": True},
    "ehat_bicubic_skip_only": {**EHAT, "bsa": False, "bicubic_skip": True},
    "ehat_rhag_window12_x3_gray": {
        **EHAT,
        "dual_attention": "rhag",
        "window_size": 12,
        "upscale": 3,
        "in_chans": 1,
    },
    "ehat_x2_overlap_0.25_da_body_skip": {
        **EHAT,
        "upscale": 2,
        "overlap_ratio": 0.25,
        "dual_attention": "body",
        "bicubic_skip": True,
    },
    "ehat_window16_embed24": {**EHAT, "window_size": 16, "embed_dim": 24, "num_heads": [6, 4]},
    "preset_ehat_tiny": {**preset_config("ehat_tiny")},
}

# Normalised on inference (the same network, written differently): compared through what they build.
NORMALISED = {"drop_path_rate", "overlap_ratio", "compress_ratio", "squeeze_factor", "mlp_ratio"}


def _randomised(cfg: dict, seed: int = 0) -> torch.nn.Module:
    model = build_network(cfg)
    return perturb(model, seed).eval()


def _input(cfg: dict) -> torch.Tensor:
    size = (cfg["img_size"],) * 2 if cfg.get("ape") else (13, 19)  # ape needs img_size^2 tokens
    return torch.rand(1, cfg.get("in_chans", 3), *size, generator=torch.Generator().manual_seed(1))


def test_at_least_twenty_variants():
    assert len(VARIANTS) >= 20


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_inferred_config_loads_strictly_and_gives_the_same_output(name):
    cfg = {**BASE, **VARIANTS[name]}
    src = _randomised(cfg)
    sd = src.state_dict()
    inferred = infer_config(sd)

    # Recorded values come back as given; normalised ones build the same layers.
    for key, value in cfg.items():
        if key not in NORMALISED and key != "type":
            assert inferred[key] == value, key
    assert inferred["type"] == cfg["type"]
    ws = inferred["window_size"]
    assert int(ws * inferred["overlap_ratio"]) == int(ws * cfg.get("overlap_ratio", 0.5))
    assert int(cfg["embed_dim"] * inferred["mlp_ratio"]) == int(cfg["embed_dim"] * cfg["mlp_ratio"])

    rebuilt = build_network(inferred).eval()
    rebuilt.load_state_dict(sd, strict=True)
    x = _input(cfg)
    with torch.no_grad():
        expected, got = src(x), rebuilt(x)
    assert got.shape == (1, cfg["in_chans"], x.shape[2] * cfg["upscale"], x.shape[3] * cfg["upscale"])
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", ["hat_x3", "ehat_bsa_da_rhag", "ehat_bicubic_skip_only"])
def test_a_bare_state_dict_file_loads_through_load_model(tmp_path, name):
    """The same through a file without a stored config (the public entry point)."""
    cfg = {**BASE, **VARIANTS[name]}
    src = _randomised(cfg)
    torch.save(src.state_dict(), tmp_path / "bare.pth")
    x = _input(cfg)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "bare.pth")(x), src(x))
