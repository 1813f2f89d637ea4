"""HAT / EHAT: official layout, equality with an independent implementation, EHAT-at-init == HAT."""

from __future__ import annotations

import re

import pytest
import torch

from ehat.archs import EHAT, HAT, branch_weight_sizes, build_network, create_model, preset_config
from tests.helpers import perturb

TINY_HAT = dict(
    type="HAT",
    upscale=4,
    in_chans=3,
    img_size=16,
    window_size=8,
    compress_ratio=3,
    squeeze_factor=10,
    conv_scale=0.01,
    overlap_ratio=0.5,
    img_range=1.0,
    depths=[2, 2],
    embed_dim=30,
    num_heads=[3, 3],
    mlp_ratio=2,
    upsampler="pixelshuffle",
    resi_connection="1conv",
)
# A second, differently shaped config: 3 groups, odd depth, other heads, window 4, x2.
OTHER_HAT = dict(
    TINY_HAT, depths=[1, 3, 2], num_heads=[2, 4, 2], embed_dim=24, window_size=4, upscale=2, mlp_ratio=4
)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so no pathway sits at a trivial value."""
    return perturb(model, seed).eval()


def official_keys_hat_l() -> dict[str, tuple[int, ...]]:
    """The official HAT-L x4 layout, written out from REFERENCE.md's description."""
    shapes: dict[str, tuple[int, ...]] = {
        "relative_position_index_SA": (256, 256),
        "relative_position_index_OCA": (256, 576),
        "conv_first.weight": (180, 3, 3, 3),
        "conv_first.bias": (180,),
        "patch_embed.norm.weight": (180,),
        "patch_embed.norm.bias": (180,),
        "norm.weight": (180,),
        "norm.bias": (180,),
        "conv_after_body.weight": (180, 180, 3, 3),
        "conv_after_body.bias": (180,),
        "conv_before_upsample.0.weight": (64, 180, 3, 3),
        "conv_before_upsample.0.bias": (64,),
        "upsample.0.weight": (256, 64, 3, 3),
        "upsample.0.bias": (256,),
        "upsample.2.weight": (256, 64, 3, 3),
        "upsample.2.bias": (256,),
        "conv_last.weight": (3, 64, 3, 3),
        "conv_last.bias": (3,),
    }
    for i in range(12):
        g = f"layers.{i}."
        shapes[g + "conv.weight"] = (180, 180, 3, 3)
        shapes[g + "conv.bias"] = (180,)
        o = g + "residual_group.overlap_attn."
        shapes[o + "relative_position_bias_table"] = (1521, 6)
        for n in ("norm1", "norm2"):
            shapes[o + n + ".weight"] = (180,)
            shapes[o + n + ".bias"] = (180,)
        shapes[o + "qkv.weight"], shapes[o + "qkv.bias"] = (540, 180), (540,)
        shapes[o + "proj.weight"], shapes[o + "proj.bias"] = (180, 180), (180,)
        shapes[o + "mlp.fc1.weight"], shapes[o + "mlp.fc1.bias"] = (360, 180), (360,)
        shapes[o + "mlp.fc2.weight"], shapes[o + "mlp.fc2.bias"] = (180, 360), (180,)
        for j in range(6):
            b = f"{g}residual_group.blocks.{j}."
            for n in ("norm1", "norm2"):
                shapes[b + n + ".weight"] = (180,)
                shapes[b + n + ".bias"] = (180,)
            shapes[b + "attn.relative_position_bias_table"] = (961, 6)
            shapes[b + "attn.qkv.weight"], shapes[b + "attn.qkv.bias"] = (540, 180), (540,)
            shapes[b + "attn.proj.weight"], shapes[b + "attn.proj.bias"] = (180, 180), (180,)
            shapes[b + "conv_block.cab.0.weight"], shapes[b + "conv_block.cab.0.bias"] = (
                (60, 180, 3, 3),
                (60,),
            )
            shapes[b + "conv_block.cab.2.weight"], shapes[b + "conv_block.cab.2.bias"] = (
                (180, 60, 3, 3),
                (180,),
            )
            shapes[b + "conv_block.cab.3.attention.1.weight"] = (6, 180, 1, 1)
            shapes[b + "conv_block.cab.3.attention.1.bias"] = (6,)
            shapes[b + "conv_block.cab.3.attention.3.weight"] = (180, 6, 1, 1)
            shapes[b + "conv_block.cab.3.attention.3.bias"] = (180,)
            shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (360, 180), (360,)
            shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (180, 360), (180,)
    return shapes


def test_hat_l_state_dict_equals_official_layout():
    model = create_model("hat_l")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = official_keys_hat_l()
    assert len(official) == 1710
    assert ours == official
    assert sum(p.numel() for p in model.parameters()) == 40_846_575


@pytest.mark.parametrize(("name", "params", "keys"), [("hat_s", 9_621_183, 864), ("hat", 20_772_507, 864)])
def test_published_parameter_counts(name, params, keys):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == keys


def test_spandrel_loads_our_hat_l_layout_strictly():
    from spandrel.architectures.HAT.__arch.HAT import HAT as ReferenceHAT

    cfg = {k: v for k, v in preset_config("hat_l").items() if k != "type"}
    ReferenceHAT(**cfg).load_state_dict(create_model("hat_l").state_dict(), strict=True)


def test_ehat_l_adds_exactly_the_bsa_vectors():
    hat_l = sum(p.numel() for p in create_model("hat_l").parameters())
    ehat_l = create_model("ehat_l")
    assert sum(p.numel() for p in ehat_l.parameters()) == hat_l + 326
    assert ehat_l.branch_weights.weight_0.shape == (169,)
    assert ehat_l.branch_weights.weight_1.shape == (157,)
    assert branch_weight_sizes([6] * 12) == (169, 157)
    with_da = create_model("ehat_l", dual_attention="body")
    # PAM: query/key 1x1 convs 180 -> 22, value 180 -> 180, two gammas (PAM, CAM).
    da_params = 2 * (180 * 22 + 22) + (180 * 180 + 180) + 2
    assert sum(p.numel() for p in with_da.parameters()) == hat_l + 326 + da_params


@pytest.mark.parametrize("cfg", [TINY_HAT, OTHER_HAT], ids=["tiny", "other"])
@pytest.mark.parametrize("size", [(37, 45), (8, 8), (5, 11)])
def test_hat_matches_spandrel_reference(cfg, size):
    from spandrel.architectures.HAT.__arch.HAT import HAT as ReferenceHAT

    ours = randomize(build_network(cfg))
    ref = ReferenceHAT(**{k: v for k, v in cfg.items() if k != "type"}).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    if any((-n) % cfg["window_size"] >= n for n in size):
        pytest.skip("the reference's single reflect pad cannot pad an image this small")
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == (1, 3, size[0] * cfg["upscale"], size[1] * cfg["upscale"])
    assert (a - b).abs().max().item() <= 1e-5


def test_images_smaller_than_a_window_are_padded_and_cropped():
    model = randomize(build_network(TINY_HAT))
    with torch.no_grad():
        y = model(torch.rand(1, 3, 3, 5))
    assert y.shape == (1, 3, 12, 20)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("placement", ["none", "body", "rhag"])
@pytest.mark.parametrize("bsa", [True, False])
def test_ehat_at_init_equals_hat(placement, bsa):
    hat = randomize(build_network(TINY_HAT))
    ehat = build_network({**TINY_HAT, "type": "EHAT", "bsa": bsa, "dual_attention": placement}).eval()
    own = ehat.state_dict()
    own.update(hat.state_dict())
    ehat.load_state_dict(own, strict=True)
    x = torch.rand(2, 3, 19, 23, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ehat(x) - hat(x)).abs().max().item() <= 1e-6


def test_trained_branch_weights_change_the_function():
    """The converse: BSA and gammas are really wired in (moving them moves the output)."""
    ehat = randomize(build_network({**TINY_HAT, "type": "EHAT"}))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        base = ehat(x)
        ehat.branch_weights.weight_0[3] += 0.5  # a CAB identity in group 0
        moved_bsa = ehat(x)
        ehat.dual_attention.pam.gamma += 0.5
        moved_pam = ehat(x)
    assert (moved_bsa - base).abs().max() > 1e-4
    assert (moved_pam - moved_bsa).abs().max() > 1e-4


def test_every_branch_weight_is_used():
    """Each of the 2 x (1 + sum(2d+2)) scalars gets a gradient: none is left out of the forward."""
    ehat = randomize(build_network({**TINY_HAT, "type": "EHAT", "dual_attention": "none"})).train()
    ehat(torch.rand(1, 3, 16, 16)).square().mean().backward()
    assert (ehat.branch_weights.weight_0.grad != 0).all()
    assert (ehat.branch_weights.weight_1.grad != 0).all()


def test_forward_is_pure():
    """Repeated and interleaved calls give identical results: no call counters or state."""
    ehat = randomize(build_network({**TINY_HAT, "type": "EHAT"}))
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 24, 8)
    with torch.no_grad():
        ya = ehat(a)
        ehat(b)
        ehat(a[..., :8, :8])
        assert torch.equal(ehat(a), ya)


def test_gradient_checkpointing_gives_same_outputs_and_gradients():
    cfg = {**TINY_HAT, "type": "EHAT", "drop_path_rate": 0.0}
    plain = randomize(build_network(cfg)).train()
    ckpt = build_network({**cfg, "use_checkpoint": True}).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    outs, grads = [], []
    for model in (plain, ckpt):
        model.zero_grad()
        y = model(x)
        y.square().mean().backward()
        outs.append(y.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5), name


def test_gradient_checkpointing_really_recomputes():
    """With use_checkpoint the blocks run again in backward (so activations were not kept)."""
    model = build_network({**TINY_HAT, "use_checkpoint": True}).train()
    calls = []
    model.layers[0].residual_group.blocks[0].register_forward_pre_hook(lambda *a: calls.append(1))
    model(torch.rand(1, 3, 16, 16)).mean().backward()
    assert len(calls) == 2


def test_registered_in_basicsr_registry():
    from basicsr.utils.registry import ARCH_REGISTRY

    assert ARCH_REGISTRY.get("HAT") is HAT
    assert ARCH_REGISTRY.get("EHAT") is EHAT


def test_unknown_network_argument_names_the_key():
    with pytest.raises(TypeError, match="network_g.windw_size.*window_size"):
        build_network({**TINY_HAT, "windw_size": 8})
    with pytest.raises(KeyError, match="EHTA.*EHAT"):
        build_network({"type": "EHTA"})


@pytest.mark.parametrize(("h", "w"), [(8, 8), (8, 24), (32, 16), (40, 48)])
def test_windows_grouped_by_kind_carry_the_official_shift_mask(h, w):
    from ehat.archs.hat_arch import (
        partition_by_kind,
        reverse_by_kind,
        shift_kind_masks,
        shift_window_mask,
        window_partition,
    )

    ws, shift = 8, 4
    x = torch.randn(2, h, w, 3)
    windows, counts = partition_by_kind(x, ws)
    assert torch.equal(reverse_by_kind(windows, counts, ws, h, w), x)
    # Every window, found by content among the official row-major windows, gets the official mask.
    official_windows = window_partition(x, ws)
    official_masks = shift_window_mask(h, w, ws, shift).repeat(2, 1, 1)  # (B*nW, N, N), batch-major
    kinds = torch.repeat_interleave(torch.arange(4), torch.tensor(counts))
    masks = shift_kind_masks(ws, shift, torch.device("cpu"))
    for win, kind in zip(windows, kinds):
        idx = next(i for i, o in enumerate(official_windows) if torch.equal(o, win))
        assert torch.equal(masks[kind], official_masks[idx])


def test_hat_on_the_explicit_attention_path_equals_the_fused_path():
    """The whole network through the explicit formula (CUDA's auto path) gives the fused CPU path's output."""
    x = torch.rand(1, 3, 19, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    outs = []
    for backend in ("sdpa", "explicit"):
        torch.manual_seed(0)
        model = randomize(build_network({**TINY_HAT, "attn_backend": backend})).double()
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-10)


def test_branch_weights_index_map_follows_the_release_order():
    """Named pathways sit at the release's indices: weight_0 = [body input] + per group [group input,
    (CAB identity_j, HAB output_j)..., group output]; weight_1 = per group [(attn_j, mlp_j)..., residual]
    + [long skip]. Written out here from that description, not from bsa.py's arithmetic."""
    from ehat.archs.bsa import BranchWeights

    depths = (2, 3)
    bw = BranchWeights(depths)
    with torch.no_grad():
        bw.weight_0.copy_(torch.arange(bw.weight_0.numel()))
        bw.weight_1.copy_(torch.arange(bw.weight_1.numel()))
    w0_expected, w1_expected = [("body", "input")], []
    for i, d in enumerate(depths):
        w0_expected.append((i, "input"))
        for j in range(d):
            w0_expected += [(i, j, "cab"), (i, j, "out")]
        w0_expected.append((i, "output"))
        for j in range(d):
            w1_expected += [(i, j, "attn"), (i, j, "mlp")]
        w1_expected.append((i, "residual"))
    w1_expected.append(("body", "long_skip"))
    w0 = {name: k for k, name in enumerate(w0_expected)}
    w1 = {name: k for k, name in enumerate(w1_expected)}
    assert bw.body().dense_input.item() == w0[("body", "input")]
    assert bw.body().long_skip.item() == w1[("body", "long_skip")]
    for i, d in enumerate(depths):
        g = bw.group(i)
        assert g.dense_input.item() == w0[(i, "input")]
        assert g.dense_output.item() == w0[(i, "output")]
        assert g.residual.item() == w1[(i, "residual")]
        for j in range(d):
            assert g.blocks[j].cab_identity.item() == w0[(i, j, "cab")]
            assert g.dense_blocks[j].item() == w0[(i, j, "out")]
            assert g.blocks[j].attn_shortcut.item() == w1[(i, j, "attn")]
            assert g.blocks[j].mlp_residual.item() == w1[(i, j, "mlp")]


def test_hat_knows_its_extensions_by_no_name():
    """hat_arch.py exposes neutral hooks; BSA, DANet and the bicubic skip live in EHAT's files."""
    from pathlib import Path

    import ehat.archs.hat_arch as hat_arch

    # Package paths (ehat.archs..., ehat.errors, ehat.export.graph:... in the descriptor) are not EHAT.
    source = re.sub(r"\behat\.\w+", "", Path(hat_arch.__file__).read_text().lower())
    found = re.findall(r"\b(branch\w*|bsa|dual_attention\w*|danet|bicubic\w*|ehat(?!error)\w*)\b", source)
    assert found == []


def test_an_odd_ocab_overlap_is_refused_at_construction():
    from ehat.archs.hat_arch import HATConfigError

    with pytest.raises(HATConfigError, match="overlap_ratio 0.75 with window_size 12"):
        build_network({**TINY_HAT, "window_size": 12, "overlap_ratio": 0.75})


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dual_attention": "everywhere"}, "dual_attention must be one of"),
        ({"dual_attention_branches": ["pam", "sam"]}, "may hold 'pam' and 'cam' only"),
        ({"dual_attention_branches": []}, "dual_attention_branches is empty"),
    ],
)
def test_bad_ehat_arguments_are_ehat_errors_and_still_value_errors(kwargs, words):
    from ehat.archs.ehat_arch import EHATConfigError
    from ehat.errors import EhatError

    cfg = {**preset_config("ehat_tiny"), **kwargs}
    with pytest.raises(EHATConfigError, match=words) as err:
        build_network(cfg)
    assert isinstance(err.value, EhatError) and isinstance(err.value, ValueError)
