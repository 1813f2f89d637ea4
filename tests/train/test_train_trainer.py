"""The training loop on CPU with tiny real-photo data: learning, exact resume, accumulation, AMP,
fine-tuning start, checkpoints, logging, non-finite handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ehat.options.train import validate_options
from ehat.train.trainer import NonFiniteError, Trainer
from tests.helpers import assert_same_tensors, final_weights, make_data, tiny_options


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"))


def train(opt: dict, **kwargs) -> dict:
    return Trainer(validate_options(opt), **kwargs).run()


def losses(result: dict) -> list[float]:
    return [h["l_pix"] for h in result["history"]]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_reproduces_losses_and_weights(tmp_path, data):
    """6 iterations straight == 3 iterations, then resume with total_iter raised to 6 (mid-epoch,
    across an epoch boundary, with warm-up, a milestone, clipping and EMA)."""
    straight = train(tiny_options(tmp_path / "a", data))
    first = train(tiny_options(tmp_path / "b", data, **{"train.total_iter": 3}))
    second = train(tiny_options(tmp_path / "b", data), auto_resume=True)
    assert [h["iter"] for h in second["history"]] == [4, 5, 6]
    assert losses(first) + losses(second) == losses(straight)
    a, b = (
        load(straight["root"] / "models/net_g_latest.pth"),
        load(second["root"] / "models/net_g_latest.pth"),
    )
    assert_same_tensors(a["params"], b["params"])
    assert_same_tensors(a["params_ema"], b["params_ema"])
    sa, sb = (
        load(straight["root"] / "training_states/6.state"),
        load(second["root"] / "training_states/6.state"),
    )
    assert_same_tensors(sa["optimizer"]["state"][0], sb["optimizer"]["state"][0])
    assert sa["optimizer"]["param_groups"][0]["lr"] == sb["optimizer"]["param_groups"][0]["lr"] == 5e-4
    assert (sa["epoch"], sa["consumed"]) == (sb["epoch"], sb["consumed"]) == (1, 4)


def test_explicit_resume_state_path(tmp_path, data):
    train(tiny_options(tmp_path / "b", data, **{"train.total_iter": 2, "logger.save_checkpoint_freq": 1}))
    state = tmp_path / "b/exp/training_states/1.state"
    out = train(
        tiny_options(tmp_path / "b", data, **{"train.total_iter": 3, "path.resume_state": str(state)})
    )
    assert [h["iter"] for h in out["history"]] == [2, 3]


def test_same_seed_gives_identical_weights(tmp_path, data):
    changes = {"train.deterministic": True, "train.total_iter": 4}
    a = train(tiny_options(tmp_path / "a", data, **changes))
    b = train(tiny_options(tmp_path / "b", data, **changes))
    assert losses(a) == losses(b)
    assert_same_tensors(final_weights(a["root"]), final_weights(b["root"]))
    c = train(tiny_options(tmp_path / "c", data, **changes, manual_seed=8))
    assert losses(c) != losses(a)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path, data):
    common = {"train.total_iter": 3, "train.grad_clip": None, "train.ema_decay": 0, "train.warmup_iter": -1}
    big = train(tiny_options(tmp_path / "big", data, **common, **{"datasets.train.batch_size_per_gpu": 4}))
    acc = train(
        tiny_options(
            tmp_path / "acc",
            data,
            **common,
            **{"datasets.train.batch_size_per_gpu": 2, "train.grad_accum_steps": 2},
        )
    )
    np.testing.assert_allclose(losses(acc), losses(big), rtol=1e-5)
    a, b = final_weights(big["root"]), final_weights(acc["root"])
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path, data, amp):
    out = train(tiny_options(tmp_path, data, **{"train.amp": amp, "train.total_iter": 3}))
    assert len(out["history"]) == 3 and all(math.isfinite(v) for v in losses(out))
    state = load(out["root"] / "training_states/3.state")
    assert (state["scaler"] is not None) == (amp == "fp16")


def test_channels_last_gives_the_same_training(tmp_path, data):
    plain = train(tiny_options(tmp_path / "a", data, **{"train.total_iter": 2}))
    cl = train(tiny_options(tmp_path / "b", data, **{"train.total_iter": 2, "train.channels_last": True}))
    np.testing.assert_allclose(losses(cl), losses(plain), rtol=1e-5)


def test_keeps_last_k_checkpoints_and_the_best(tmp_path, data):
    out = train(
        tiny_options(
            tmp_path,
            data,
            **{
                "train.total_iter": 5,
                "logger.save_checkpoint_freq": 1,
                "logger.keep_last": 2,
                "val.val_freq": 1,
            },
        )
    )
    root = out["root"]
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["4.state", "5.state"]
    assert sorted(p.name for p in (root / "models").iterdir()) == [
        "net_g_4.pth",
        "net_g_5.pth",
        "net_g_best.pth",
        "net_g_latest.pth",
    ]
    scores = [(v["held_out"]["psnr"], v["iter"]) for v in out["val_history"]]
    best_psnr, best_iter = max(scores, key=lambda s: (s[0], -s[1]))
    best = load(root / "models/net_g_best.pth")
    assert best["best"] == {"metric": "psnr", "value": best_psnr, "iter": best_iter}
    assert out["best"]["iter"] == best_iter
    assert load(root / "training_states/5.state")["best"]["value"] == best_psnr
    assert (root / "options.yml").is_file() and list(root.glob("train_tiny_*.log"))


def test_validation_reports_evaluation_metrics_of_the_ema_network(tmp_path, data):
    """Metrics equal ehat.evaluation on the EMA weights saved at that iteration, averaged over images."""
    from ehat.archs import build_network
    from ehat.imaging.convert import to_uint8
    from ehat.imaging.metrics import image_metrics
    from ehat.imaging.tiling import forward_tiled

    opt = tiny_options(
        tmp_path, data, **{"train.total_iter": 2, "val.val_freq": 2, "val.tile": 6, "val.tile_overlap": 2}
    )
    out = train(opt)
    reported = out["val_history"][-1]["held_out"]
    net = build_network(opt["network_g"])
    net.load_state_dict(load(out["root"] / "models/net_g_2.pth")["params_ema"])
    net.eval()
    import cv2

    per_image = []
    for name in ("0000.png", "0001.png"):
        lq = cv2.imread(str(data["val"][1] / name))[..., ::-1].astype(np.float32) / 255.0
        hr = cv2.imread(str(data["val"][0] / name))[..., ::-1]
        x = torch.from_numpy(lq.copy()).permute(2, 0, 1)[None]
        sr = forward_tiled(net, x, 4, tile=6, overlap=2)
        per_image.append(image_metrics(to_uint8(sr, 1.0), np.ascontiguousarray(hr), scale=4))
    for k in ("psnr", "psnr_y", "ssim_y"):
        assert reported[k] == pytest.approx(np.mean([m[k] for m in per_image]), abs=1e-9)


def test_basicsr_metric_entries_are_computed_beside_ours(tmp_path, data):
    """HAT configs' val.metrics (calculate_psnr on Y, crop 4, named psnr: reported as psnr_opt) give the
    same number as our psnr_y."""
    metrics = {
        "psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True, "better": "higher"}
    }
    out = train(
        tiny_options(tmp_path, data, **{"train.total_iter": 1, "val.val_freq": 1, "val.metrics": metrics})
    )
    reported = out["val_history"][-1]["held_out"]
    assert reported["psnr_opt"] == pytest.approx(reported["psnr_y"], abs=1e-6)


def test_wandb_configured_but_not_installed_is_a_warning(tmp_path, data, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails even where wandb is installed
    out = train(tiny_options(tmp_path, data, **{"train.total_iter": 1, "logger.wandb": {"project": "ehat"}}))
    (log,) = out["root"].glob("train_tiny_*.log")
    assert "WARNING: logger.wandb.project is set but wandb is not installed" in log.read_text()


def test_tensorboard_scalars_are_written(tmp_path, data):
    pytest.importorskip("tensorboard")
    out = train(
        tiny_options(
            tmp_path, data, **{"train.total_iter": 2, "logger.use_tb_logger": True, "val.val_freq": 2}
        )
    )
    assert list((out["root"] / "tb_logger").glob("events.out.tfevents.*"))


def test_outputs_go_under_the_current_folder_by_default(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = train(tiny_options(tmp_path, data, **{"train.total_iter": 1, "path.experiments_root": None}))
    assert out["root"] == tmp_path / "experiments" / "tiny"
    assert (tmp_path / "experiments/tiny/models/net_g_latest.pth").is_file()


def test_a_fresh_run_archives_an_earlier_one(tmp_path, data):
    train(tiny_options(tmp_path, data, **{"train.total_iter": 1}))
    train(tiny_options(tmp_path, data, **{"train.total_iter": 1}))
    assert len(list(tmp_path.glob("exp_archived_*"))) == 1


# ------------------------------------------------------------------------------ EHAT specifics
def test_new_parameters_get_their_own_learning_rate(tmp_path, data):
    from ehat.train.optim import build_optimizer

    opt = validate_options(
        tiny_options(tmp_path, data, network_g={"type": "ehat_tiny"}, **{"train.new_param_lr": 1e-2})
    )
    from ehat.archs import build_network

    net = build_network(opt.network_g)
    optimizer = build_optimizer(net, opt.train)
    base, new = optimizer.param_groups
    assert (base["lr"], new["lr"]) == (1e-3, 1e-2)
    names = {id(p): n for n, p in net.named_parameters()}
    new_names = {names[id(p)] for p in new["params"]}
    assert new_names and all(n.startswith(("branch_weights.", "dual_attention.")) for n in new_names)
    assert len(base["params"]) + len(new["params"]) == len(list(net.parameters()))


@pytest.mark.slow
def test_ehat_started_from_a_hat_checkpoint_validates_at_hat_psnr(tmp_path, data):
    """Fine-tuning start: EHAT (BSA + dual attention at identity) loaded from a HAT checkpoint scores
    exactly HAT's PSNR at iteration 0."""
    from ehat.archs import build_network, preset_config
    from ehat.checkpoints import save_network
    from ehat.imaging.convert import to_uint8
    from ehat.imaging.metrics import image_metrics

    torch.manual_seed(3)
    hat_cfg = {k: v for k, v in preset_config("ehat_tiny").items() if k not in ("bsa", "dual_attention")}
    hat = build_network({**hat_cfg, "type": "HAT"}).eval()
    ckpt = tmp_path / "hat.pth"
    save_network(hat, ckpt, ema_model=hat)
    import cv2

    psnrs = []
    for name in ("0000.png", "0001.png"):
        lq = cv2.imread(str(data["val"][1] / name))[..., ::-1].astype(np.float32) / 255.0
        hr = np.ascontiguousarray(cv2.imread(str(data["val"][0] / name))[..., ::-1])
        with torch.no_grad():
            sr = hat(torch.from_numpy(lq.copy()).permute(2, 0, 1)[None])
        psnrs.append(image_metrics(to_uint8(sr, 1.0), hr, scale=4)["psnr"])
    opt = tiny_options(
        tmp_path,
        data,
        network_g={"type": "ehat_tiny"},
        **{"path.pretrain_network_g": str(ckpt), "path.param_key_g": "params_ema", "val.val_at_start": True},
        **{"train.total_iter": 1},
    )
    out = train(opt)
    at_start = out["val_history"][0]
    assert at_start["iter"] == 0
    assert at_start["held_out"]["psnr"] == pytest.approx(float(np.mean(psnrs)), abs=1e-9)


@pytest.mark.slow
def held_out_bicubic_psnr_y(data: dict, matlab: bool) -> float:
    """Mean PSNR-Y (crop 4) of bicubic x4 on the held-out crops: PyTorch's (a=-0.75) or MATLAB's."""
    import cv2
    from basicsr.utils.matlab_functions import imresize

    from ehat.imaging.metrics import image_metrics

    values = []
    for name in ("0000.png", "0001.png"):
        lq = cv2.imread(str(data["val"][1] / name))[..., ::-1] / 255.0
        hr = np.ascontiguousarray(cv2.imread(str(data["val"][0] / name))[..., ::-1])
        if matlab:
            up = imresize(lq, 4)
        else:
            t = torch.from_numpy(np.ascontiguousarray(lq)).permute(2, 0, 1)[None]
            up = (
                F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)[0]
                .permute(1, 2, 0)
                .numpy()
            )
        sr = np.clip(np.round(up * 255.0), 0, 255).astype(np.uint8)
        values.append(image_metrics(sr, hr, scale=4)["psnr_y"])
    return float(np.mean(values))


def training_set_l1(data: dict, model: torch.nn.Module | None) -> float:
    """Mean L1 ([0, 1] scale) over the whole training crops of ``model`` (None: PyTorch bicubic)."""
    import cv2

    errors = []
    for name in sorted(p.name for p in data["train"][0].iterdir()):
        lq = torch.from_numpy(cv2.imread(str(data["train"][1] / name))[..., ::-1] / 255.0).permute(2, 0, 1)
        hr = torch.from_numpy(cv2.imread(str(data["train"][0] / name))[..., ::-1] / 255.0).permute(2, 0, 1)
        lq, hr = lq[None].float(), hr[None].float()
        with torch.no_grad():
            if model is None:
                sr = F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)
            else:
                sr = model(lq)
        errors.append((sr.clamp(0, 1) - hr).abs().mean().item())
    return float(np.mean(errors))


def test_50_iterations_of_tiny_ehat_beat_bicubic_on_held_out_crops(tmp_path, data):
    """50 iterations of ehat_tiny on real photo crops lower the L1 loss and beat bicubic PSNR-Y on
    held-out crops. With ``bicubic_skip`` a fresh network computes bicubic exactly (checked at
    iteration 0), so what it gains over bicubic is what those 50 steps learned."""
    from ehat.archs import build_network

    network = {"type": "ehat_tiny", "bicubic_skip": True}
    opt = tiny_options(
        tmp_path,
        data,
        network_g=network,
        **{
            "train.total_iter": 50,
            "train.optim_g": {"type": "Adam", "lr": 5e-4, "betas": [0.9, 0.99]},
            "train.scheduler": None,
            "train.warmup_iter": 5,
            "train.ema_decay": 0,
            "datasets.train.gt_size": 64,
            "datasets.train.batch_size_per_gpu": 8,
            "datasets.train.dataset_enlarge_ratio": 100,
            "val.val_at_start": True,
            "val.val_freq": 50,
            "logger.print_freq": 10,
        },
    )
    out = train(opt)
    torch_bicubic = held_out_bicubic_psnr_y(data, matlab=False)
    matlab_bicubic = held_out_bicubic_psnr_y(data, matlab=True)
    start, end = out["val_history"][0]["held_out"], out["val_history"][-1]["held_out"]
    assert out["val_history"][-1]["iter"] == 50
    print(
        f"held-out PSNR-Y: iteration 0 {start['psnr_y']:.3f}, iteration 50 {end['psnr_y']:.3f}; "
        f"bicubic: PyTorch {torch_bicubic:.3f}, MATLAB {matlab_bicubic:.3f}"
    )
    assert abs(start["psnr_y"] - torch_bicubic) < 0.01  # iteration 0 is bicubic, as built
    assert end["psnr_y"] > max(torch_bicubic, matlab_bicubic) + 0.1
    model = build_network(network)
    model.load_state_dict(final_weights(out["root"]))
    trained, bicubic = training_set_l1(data, model.eval()), training_set_l1(data, None)
    print(f"training-set L1: bicubic (iteration 0) {bicubic:.5f}, iteration 50 {trained:.5f}")
    assert trained < 0.97 * bicubic


def test_tiny_ehat_learns_from_scratch_without_the_skip(tmp_path, data):
    """Plain ehat_tiny (no image skip, the published structure) from random init: 50 iterations
    lower the L1 loss and raise held-out PSNR-Y by 3 dB (bicubic needs ~thousands: see the demo)."""
    opt = tiny_options(
        tmp_path,
        data,
        network_g={"type": "ehat_tiny"},
        **{
            "train.total_iter": 50,
            "train.optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
            "train.scheduler": None,
            "train.warmup_iter": 5,
            "train.ema_decay": 0.8,
            "datasets.train.dataset_enlarge_ratio": 50,
            "val.val_at_start": True,
            "val.val_freq": 50,
            "logger.print_freq": 10,
        },
    )
    out = train(opt)
    ls = losses(out)
    assert np.mean(ls[-10:]) < 0.85 * np.mean(ls[:10])
    start, end = out["val_history"][0]["held_out"], out["val_history"][-1]["held_out"]
    assert end["psnr_y"] > start["psnr_y"] + 3.0


# ------------------------------------------------------------------------------ non-finite values
class _NaNLoss(torch.nn.Module):
    def forward(self, sr, gt):
        return (sr - gt).abs().mean() * float("nan")


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    train(tiny_options(tmp_path, data, **{"train.total_iter": 2}))
    good = load(tmp_path / "exp/training_states/2.state")
    import basicsr.losses

    monkeypatch.setattr(basicsr.losses, "build_loss", lambda opt: _NaNLoss())
    with pytest.raises(NonFiniteError, match=r"iteration 3: non-finite loss.*2\.state"):
        train(tiny_options(tmp_path, data, **{"train.total_iter": 4}), auto_resume=True)
    states = sorted(p.name for p in (tmp_path / "exp/training_states").iterdir())
    assert states == ["2.state"]
    assert_same_tensors(load(tmp_path / "exp/training_states/2.state")["net"], good["net"])


def test_nonfinite_loss_can_skip_the_step(tmp_path, data, monkeypatch):
    import basicsr.losses

    monkeypatch.setattr(basicsr.losses, "build_loss", lambda opt: _NaNLoss())
    out = train(tiny_options(tmp_path, data, **{"train.total_iter": 3, "train.on_nonfinite": "skip"}))
    assert out["iter"] == 3 and out["history"] == []
    from ehat.archs import build_network

    torch.manual_seed(7)
    fresh = build_network(tiny_options(tmp_path, data)["network_g"]).state_dict()
    assert_same_tensors(final_weights(out["root"]), fresh)  # never updated


def test_nan_in_the_input_images_stops_with_the_file_names(tmp_path, data, monkeypatch):
    from ehat.train import data as train_data

    original = train_data.SeededDataset.__getitem__

    def poisoned(self, item):
        sample = original(self, item)
        sample["lq"][0, 0, 0] = float("inf")
        return sample

    monkeypatch.setattr(train_data.SeededDataset, "__getitem__", poisoned)
    with pytest.raises(NonFiniteError, match=r"NaN/inf in the input images.*\.png"):
        train(tiny_options(tmp_path, data, **{"train.total_iter": 2}))


# ------------------------------------------------------------------------------ speed switches
def test_compile_option_calls_compile_model_in_place_and_logs_the_first_step_apart(
    tmp_path, data, monkeypatch
):
    """``train.compile: blocks`` compiles the trained network in place (the saved keys stay those of the
    plain network) and the first step, which compiles, is logged on its own line."""
    from ehat import acceleration

    calls = []

    def fake_compile(net, mode, dynamic=None):
        calls.append((net, mode))
        return net

    monkeypatch.setattr(acceleration, "compile_model", fake_compile)
    out = train(tiny_options(tmp_path, data, **{"train.total_iter": 2, "train.compile": "blocks"}))
    assert len(calls) == 1 and calls[0][1] == "blocks"
    from ehat.archs import build_network

    plain_keys = build_network(tiny_options(tmp_path, data)["network_g"]).state_dict().keys()
    assert final_weights(out["root"]).keys() == plain_keys
    (log,) = out["root"].glob("train_tiny_*.log")
    assert "First step (torch.compile 'blocks' included)" in log.read_text()


def test_compile_false_does_not_call_compile_model(tmp_path, data, monkeypatch):
    from ehat import acceleration

    monkeypatch.setattr(acceleration, "compile_model", lambda *a, **k: pytest.fail("compiled"))
    train(tiny_options(tmp_path, data, **{"train.total_iter": 1, "train.compile": False}))


def test_tf32_option_enables_tf32_for_the_run_only(tmp_path, data, monkeypatch):
    from ehat import acceleration

    calls = []
    monkeypatch.setattr(acceleration, "enable_tf32", calls.append)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    train(tiny_options(tmp_path, data, **{"train.total_iter": 1, "train.tf32": True}))
    assert calls == [True]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
