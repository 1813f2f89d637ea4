"""SPAN: the re-parameterisation, the released weights, and two independent oracles.

Oracles: spandrel's SPAN (test-only dependency; its training-mode forward runs the branches, its
eval-mode forward fuses them with its own formula) and, when ``EHAT_NTIRE2026_ESR`` points at a
checkout of Amazingren/NTIRE2026_ESR, the challenge's own ``models/team00_SPAN.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ehat.archs import preset_config
from ehat.archs.descriptor import StateDictError
from ehat.archs.span_arch import SPAN, Conv3XC, drop_stale_eval_convs, span_config_from_state_dict
from ehat.data.image_io import read_image_uint8
from ehat.imaging.convert import to_tensor, to_uint8

spandrel_span = pytest.importorskip("spandrel.architectures.SPAN")

SPAN_MD5 = "008c89950915b836d04aea1fc485d938"  # shared/README.md


def _released(shared_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(shared_dir / "weights" / "span_ntire_x4.pth", map_location="cpu", weights_only=True)


def _set5_lr(shared_dir: Path) -> list[np.ndarray]:
    return [
        read_image_uint8(p)
        for p in sorted((shared_dir / "data" / "Set5" / "LR_bicubic" / "X4").glob("*.png"))
    ]


def _spandrel(feature_channels: int, state: dict[str, torch.Tensor], branches: bool) -> torch.nn.Module:
    """spandrel's SPAN holding ``state``. With ``branches`` its forward (train mode) runs them; without, its
    per-forward re-fusion is switched off so it runs the loaded ``eval_conv`` weights as the release does."""
    model = spandrel_span.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=feature_channels, img_range=255.0)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    absent = (".eval_conv.",) if branches else (".sk.", ".conv.")
    assert missing and all(any(part in k for part in absent) for k in missing), missing
    if not branches:
        for m in model.modules():
            if type(m).__name__ == "Conv3XC":
                m.update_params = lambda: None
    return model.train(branches)


def _random_span(seed: int = 0, **kw) -> SPAN:
    torch.manual_seed(seed)
    model = SPAN(**{"feature_channels": 12, "img_range": 1.0, **kw})
    with torch.no_grad():  # non-trivial biases everywhere, so the bias fusion is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    return model.eval()


def test_conv3xc_fuses_to_one_conv_within_1e_5():
    torch.manual_seed(0)
    conv = Conv3XC(5, 7, gain=2)
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 5, 9, 11)
    with torch.no_grad():
        before = conv(x)
        conv.fuse()
        after = conv(x)
    assert (
        conv.fused
        and not hasattr(conv, "sk")
        and list(dict(conv.named_parameters()))
        == [
            "eval_conv.weight",
            "eval_conv.bias",
        ]
    )
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_fused_span_equals_unfused_on_random_weights():
    model = _random_span()
    x = torch.rand(2, 3, 17, 13)
    with torch.no_grad():
        y_branches = model(x)
        assert y_branches.abs().max() > 0.1  # a real signal, not zeros
        model.fuse()
        y_fused = model(x)
    assert model.fused
    assert (y_fused - y_branches).abs().max() <= 1e-5


def test_unfused_span_equals_spandrel_branches_and_fused_equals_spandrel_fusion():
    """spandrel's train-mode forward runs the branches; its eval mode fuses them with its own formula."""
    model = _random_span(seed=1, img_range=255.0, feature_channels=16)
    reference = _spandrel(16, model.state_dict(), branches=True)
    x = torch.rand(1, 3, 14, 19)
    with torch.no_grad():
        y_ours = model(x)
        torch.testing.assert_close(y_ours, reference(x), rtol=0, atol=1e-5)
        reference.eval()  # spandrel re-fuses its branches inside this forward
        y_ref_fused = reference(x)
        y_fused = model.fuse()(x)
    scale = max(1.0, float(y_ours.abs().max()))  # img_range 255 makes random-weight outputs large
    assert (y_fused - y_ref_fused).abs().max() <= 1e-5 * scale
    assert (y_fused - y_ours).abs().max() <= 1e-5 * scale


def test_released_weights_load_strictly_into_the_fused_form(shared_dir):
    path = shared_dir / "weights" / "span_ntire_x4.pth"
    assert hashlib.md5(path.read_bytes()).hexdigest() == SPAN_MD5
    sd = _released(shared_dir)
    assert all(
        ".eval_conv." in k for k in sd if k.startswith(("conv_1.", "conv_2.", "block_"))
    )  # no branches
    cfg = span_config_from_state_dict(sd)
    preset = {k: v for k, v in preset_config("span_ntire").items() if k != "type"}
    assert {k: cfg[k] for k in preset} == preset  # the preset is the one home of the config
    model = SPAN(**cfg)
    model.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in model.parameters()) == 150_688  # 0.151 M (NTIRE 2026 README)
    with pytest.raises(RuntimeError, match="Missing key"):
        SPAN(feature_channels=28).load_state_dict(sd, strict=True)  # the training form has no eval_conv


def _branches_equal_to(model_fused: SPAN, seed: int = 0) -> SPAN:
    """A training-form SPAN with random branches solved to fuse into ``model_fused``'s weights.

    c1, c3, sk random; c2 = pinv(c3) (W - sk) pinv(c1) per tap, and c3's bias absorbs the rest: the
    fused weights equal the release's to float64 precision, through branches that are not trivial.
    """
    torch.manual_seed(seed)
    cfg = {k: v for k, v in span_config_from_state_dict(model_fused.state_dict()).items() if k != "fused"}
    unfused = SPAN(**cfg)
    fused_convs = dict(model_fused.named_modules())
    with torch.no_grad():
        for name, m in unfused.named_modules():
            if not isinstance(m, Conv3XC):
                continue
            target = fused_convs[name].eval_conv
            w_t, b_t = target.weight.double(), target.bias.double()
            c1, c2, c3 = m.conv
            for conv in (c1, c3, m.sk):
                conv.weight.normal_(0, 0.5)
                conv.bias.normal_(0, 0.1)
            c1.bias.normal_(0, 0.1)
            c2.bias.normal_(0, 0.1)
            w1, w3 = c1.weight.double()[:, :, 0, 0], c3.weight.double()[:, :, 0, 0]
            rest = w_t.clone()
            rest[:, :, 1, 1] -= m.sk.weight.double()[:, :, 0, 0]
            w2 = torch.einsum("no,oihw,im->nmhw", torch.linalg.pinv(w3), rest, torch.linalg.pinv(w1))
            c2.weight.copy_(w2.float())
            inner = w2.sum(dim=(2, 3)) @ c1.bias.double() + c2.bias.double()
            c3.bias.copy_((b_t - w3 @ inner - m.sk.bias.double()).float())
        for name in ("conv_cat", "upsampler.0"):
            dict(unfused.named_modules())[name].load_state_dict(fused_convs[name].state_dict())
    return unfused.eval()


@pytest.mark.slow
def test_released_weights_equal_spandrel_on_set5_fused_and_unfused(shared_dir):
    """On real photos (Set5 LR): ours fused == spandrel running the release's eval_conv weights
    (within 1e-5 and the same uint8), and a training form with branches solved to fuse into the
    release equals it too, before and after fuse()."""
    sd = _released(shared_dir)
    ours = SPAN(feature_channels=28, fused=True).eval()
    ours.load_state_dict(sd, strict=True)
    reference = _spandrel(28, sd, branches=False)
    unfused = _branches_equal_to(ours)
    assert not unfused.fused
    for img in _set5_lr(shared_dir):
        x = to_tensor(img, 1.0, torch.device("cpu"))
        with torch.no_grad():
            y_ref, y_ours, y_unfused = reference(x), ours(x), unfused(x)
        assert (y_ours - y_ref).abs().max() <= 1e-5
        assert np.array_equal(to_uint8(y_ours, 1.0), to_uint8(y_ref, 1.0))
        assert (y_unfused - y_ref).abs().max() <= 1e-4  # branches in fp32 (large c2 from pinv)
    refused = unfused.fuse()
    for name, p in refused.state_dict().items():
        torch.testing.assert_close(p, sd[name], rtol=0, atol=1e-5, msg=name)
    for img in _set5_lr(shared_dir):
        x = to_tensor(img, 1.0, torch.device("cpu"))
        with torch.no_grad():
            assert (refused(x) - reference(x)).abs().max() <= 1e-5


def _team_span_class(path: Path, class_name: str):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "file", "class_name"),
    [("EHAT_NTIRE2026_ESR", "team00_SPAN.py", "SPAN"), ("EHAT_NTIRE2024_ESR", "team38_SPAN.py", "SPAN30")],
)
def test_released_weights_equal_the_challenges_own_model_file(shared_dir, monkeypatch, env, file, class_name):
    """The challenge's own model file (NTIRE 2026 baseline ``team00_SPAN.py``; NTIRE 2024 team 38's
    ``team38_SPAN.py``) built as its test_demo.py does, on Set5 LR: the same uint8 output."""
    root = os.environ.get(env)
    if not root:
        pytest.skip(f"{env} is not set (point it at a checkout of Amazingren/{env.split('_')[1]}_ESR)")
    team_span = _team_span_class(Path(root) / "models" / file, class_name)
    # Its constructor runs a CUDA forward (self.cuda()(torch.randn(...).cuda())): make .cuda() a no-op.
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    reference = team_span(3, 3, upscale=4, feature_channels=28).eval()
    sd = _released(shared_dir)
    reference.load_state_dict(sd, strict=True)  # its test_demo.py says strict=False; every key fits
    ours = SPAN(feature_channels=28, fused=True).eval()
    ours.load_state_dict(sd, strict=True)
    worst = 0.0
    for img in _set5_lr(shared_dir):
        x = to_tensor(img, 1.0, torch.device("cpu"))
        with torch.no_grad():
            y_ref, y_ours = reference(x), ours(x)
        worst = max(worst, float((y_ours - y_ref).abs().max()))
        assert np.array_equal(to_uint8(y_ours, 1.0), to_uint8(y_ref, 1.0))
    assert worst <= 1e-5, worst


def test_config_is_read_off_both_forms():
    model = SPAN(feature_channels=10, num_blocks=3, upscale=2, gain=3)
    cfg = span_config_from_state_dict(model.state_dict())
    assert cfg == {
        "in_channels": 3,
        "out_channels": 3,
        "feature_channels": 10,
        "num_blocks": 3,
        "upscale": 2,
        "img_range": 255.0,
        "fused": False,
        "gain": 3,
    }
    fused_cfg = span_config_from_state_dict(model.fuse().state_dict())
    assert fused_cfg["fused"] is True and fused_cfg["feature_channels"] == 10 and fused_cfg["num_blocks"] == 3
    SPAN(**fused_cfg).load_state_dict(model.state_dict(), strict=True)


def test_reference_training_checkpoint_names_its_unused_eval_convs():
    """The reference code's checkpoints hold branches + eval_conv; eval_conv is recomputed there, i.e. unused."""
    sd = dict(SPAN(feature_channels=8, num_blocks=1).state_dict())
    fused = SPAN(feature_channels=8, num_blocks=1, fused=True).state_dict()
    sd.update({k: v for k, v in fused.items() if ".eval_conv." in k})
    with pytest.raises(StateDictError, match="eval_conv"):
        span_config_from_state_dict(sd)
    cleaned = drop_stale_eval_convs(sd)
    SPAN(**span_config_from_state_dict(cleaned)).load_state_dict(cleaned, strict=True)


def test_state_dict_without_span_keys_names_the_missing_ones():
    with pytest.raises(StateDictError, match="conv_cat.weight"):
        span_config_from_state_dict({"conv_1.eval_conv.weight": torch.zeros(4, 3, 3, 3)})


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 9)])
def test_any_input_size_gives_exactly_upscaled_output(size):
    model = _random_span(feature_channels=8, num_blocks=2)
    with torch.no_grad():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * 4, size[1] * 4) and torch.isfinite(y).all()


def test_fuse_updates_arch_config_and_prepare_for_inference_fuses():
    from ehat.archs import build_network, descriptor_of

    model = build_network({"type": "SPAN", "feature_channels": 8, "num_blocks": 1})
    assert not model.fused
    prepared = descriptor_of(model).prepare_for_inference(model)
    assert prepared.fused and prepared.arch_config["fused"] is True
    assert descriptor_of(model).data_range == 1.0


def test_training_form_trains_and_fused_form_has_a_third_of_the_conv_cost():
    model = _random_span(feature_channels=8, num_blocks=1).train()
    x = torch.rand(2, 3, 8, 8)
    model(x).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters())
    n_fused = sum(p.numel() for p in model.fuse().parameters())
    assert n_fused < n_train


def test_span_ntire_preset_holds_the_checksum_of_the_released_file(shared_dir):
    from ehat.archs import create_model, pretrained_weights
    from ehat.checkpoints import load_weights

    weights = pretrained_weights("span_ntire", "ntire")
    path = (
        shared_dir / "weights" / "span_ntire_x4.pth"
    )  # byte-identical to team00_SPAN.pth (shared/README.md)
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    model = create_model("span_ntire")
    load_weights(model, path)  # strict
    assert model.fused and weights.data_range == 1.0 and weights.scale == model.upscale == 4
    trainable = create_model("span")
    assert not trainable.fused
    assert trainable.fuse().arch_config == preset_config(
        "span_ntire"
    )  # fuse() turns one preset into the other


def test_zoo_ids_38_and_103_are_the_released_span(shared_dir):
    """NTIRE 2024 team 38 and the NTIRE 2026 baseline: one preset, one file (the zoo adds only ids/names)."""
    from ehat.zoo import build_model, get_spec, resolve_weights

    spec38, spec103 = get_spec(38), get_spec(103)
    assert spec38.pretrained is spec103.pretrained and spec38.preset == spec103.preset == "span_ntire"
    assert spec38.data_range == 1.0 and spec38.weights.endswith("team38_span_ch28_slim.pth")
    path = resolve_weights(spec103, shared_dir / "weights" / "span_ntire_x4.pth")
    model = build_model(spec103, path)
    assert model.fused and not model.training
    reference = SPAN(feature_channels=28, fused=True).eval()
    reference.load_state_dict(_released(shared_dir), strict=True)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_fused_span_complexity_matches_the_ntire_2026_readme():
    """README of NTIRE2026_ESR: 0.151 M params, 9.83 G FLOPs and 41.68 M activations at 256x256."""
    from ehat.archs import create_model
    from ehat.evaluation.complexity import measure_complexity

    cx = measure_complexity(create_model("span_ntire").eval())
    assert (round(cx.num_parameters / 1e6, 3), round(cx.flops / 1e9, 2), round(cx.activations / 1e6, 2)) == (
        0.151,
        9.83,
        41.68,
    )
    unfused = measure_complexity(create_model("span").eval())
    assert unfused.flops > 4 * cx.flops  # why scores must be measured after fuse()
