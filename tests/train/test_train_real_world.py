"""Real-world SR: HAT's two Real-HAT training files' keys through train.py, the degradation against
basicsr's own RealESRNetModel / RealESRGANModel.feed_data, GAN resume bit-exact, the VGG weights check.

A VGG19 file with random weights is written where basicsr's VGGFeatureExtractor looks for it
(``VGG_PRETRAIN_PATH``, relative to the current folder), so basicsr's real loading code runs and
nothing is downloaded.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import assert_same_tensors, write_pairs

KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
DEGRADATION = {
    "resize_prob": [0.2, 0.7, 0.1],
    "resize_range": [0.15, 1.5],
    "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 3],
    "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4,
    "jpeg_range2": [30, 95],
}
BLUR = {
    "blur_kernel_size": 21,
    "kernel_list": KERNELS,
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "blur_kernel_size2": 21,
    "kernel_list2": KERNELS,
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "betag_range2": [0.5, 4],
    "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with GT photos, HAT's meta-info file, a validation pair set and a random VGG19 file at
    basicsr's ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (features random, classifier a
    zero-stride view so the file stays ~80 MB)."""
    import torchvision
    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH

    root = tmp_path_factory.mktemp("real")
    gt, _ = write_pairs(root / "DFO", [("astronaut", 30, 180, 64, 64), ("coffee", 100, 200, 64, 64)])
    (root / "meta_info_DFOsub_GT.txt").write_text("0000.png\n0001.png\n")
    write_pairs(root / "val", [("astronaut", 250, 250, 48, 48)])
    g = torch.Generator().manual_seed(0)
    sd = {
        k: torch.randn(v.shape, generator=g) * 0.05
        if k.startswith("features")
        else torch.zeros(1).expand(v.shape)
        for k, v in torchvision.models.vgg19().state_dict().items()
    }
    vgg = root / VGG_PRETRAIN_PATH
    vgg.parent.mkdir(parents=True)
    torch.save(sd, vgg)
    return root


def real_file(root: Path, gan: bool, total_iter: int = 2) -> dict:
    """HAT's train_Real_HAT_SRx4_mse_model.yml / train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml keys;
    tiny HAT, 32x32 patches, queue of 4, crop_pad_size 64 (ours; basicsr's 400 otherwise)."""
    opt = {
        "name": "train_Real_HAT_GAN_SRx4_finetune_from_mse_model" if gan else "train_Real_HAT_mse_model",
        "model_type": "RealHATGANModel" if gan else "RealHATMSEModel",
        "scale": 4,
        "num_gpu": "auto",
        "manual_seed": 0,
        **({"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False} if gan else {"gt_usm": True}),
        **DEGRADATION,
        "gt_size": 32,
        "queue_size": 4,
        "datasets": {
            "train": {
                "name": "DF2K+OST",
                "type": "RealESRGANDataset",
                "dataroot_gt": str(root / "DFO" / "HR"),
                "meta_info_file": str(root / "meta_info_DFOsub_GT.txt"),
                "io_backend": {"type": "disk"},
                **BLUR,
                "crop_pad_size": 64,
                "gt_size": 32,
                "use_hflip": True,
                "use_rot": False,
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            }
        },
        "network_g": {
            "type": "HAT",
            "upscale": 4,
            "in_chans": 3,
            "img_size": 64,
            "window_size": 4,
            "compress_ratio": 3,
            "squeeze_factor": 30,
            "conv_scale": 0.01,
            "overlap_ratio": 0.5,
            "img_range": 1.0,
            "depths": [1],
            "embed_dim": 30,
            "num_heads": [2],
            "mlp_ratio": 2,
            "upsampler": "pixelshuffle",
            "resi_connection": "1conv",
        },  # fmt: skip
        "path": {
            "pretrain_network_g": None,
            "param_key_g": "params_ema",
            "strict_load_g": True,
            "resume_state": None,
        },
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [1000000], "gamma": 0.5},
            "total_iter": total_iter,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {
            "print_freq": 1,
            "save_checkpoint_freq": 10000,
            "use_tb_logger": True,
            "wandb": {"project": None, "resume_id": None},
        },  # fmt: skip
        "dist_params": {"backend": "nccl", "port": 29500},
    }
    if gan:
        opt["network_d"] = {
            "type": "UNetDiscriminatorSN",
            "num_in_ch": 3,
            "num_feat": 8,
            "skip_connection": True,
        }
        opt["train"].update(
            perceptual_opt={
                "type": "PerceptualLoss",
                "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1},
                "vgg_type": "vgg19",
                "use_input_norm": True,
                "perceptual_weight": 1.0,
                "style_weight": 0,
                "range_norm": False,
                "criterion": "l1",
            },  # fmt: skip
            gan_opt={
                "type": "GANLoss",
                "gan_type": "vanilla",
                "real_label_val": 1.0,
                "fake_label_val": 0.0,
                "loss_weight": 0.1,
            },  # fmt: skip
            net_d_iters=1,
            net_d_init_iters=0,
        )
    else:
        del opt["train"]["optim_d"]  # HAT's MSE file has it too; ours refuses it without a discriminator
    return opt


@pytest.mark.slow
@pytest.mark.parametrize("gan", [False, True], ids=["mse", "gan"])
def test_official_real_hat_file_runs(workdir, tmp_path, monkeypatch, capsys, gan):
    from ehat.train.cli import main

    monkeypatch.chdir(workdir)
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(real_file(workdir, gan)))
    assert main(["-opt", str(path), "--force_yml", f"path:experiments_root={tmp_path / 'exp'}"]) == 0, (
        capsys.readouterr().err
    )
    log = "".join(p.read_text() for p in (tmp_path / "exp").glob("train_*.log"))
    assert "iter:       2" in log
    names = ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake") if gan else ("l_pix",)
    assert all(f"{n}:" in log for n in names)


@pytest.mark.slow
def test_gan_losses_finite_and_resume_bit_exact(workdir, tmp_path, monkeypatch):
    """4 iterations straight vs 2 + resume + 2 (queue full from iteration 3 on): same losses, same
    generator, discriminator and EMA weights."""
    from ehat.train.options import validate_options
    from ehat.train.real_trainer import RealTrainer

    monkeypatch.chdir(workdir)
    opt = real_file(workdir, gan=True, total_iter=4)
    opt["logger"]["save_checkpoint_freq"] = 2
    opt["logger"]["use_tb_logger"] = False
    straight = RealTrainer(
        validate_options({**opt, "path": {**opt["path"], "experiments_root": str(tmp_path / "a")}})
    )
    ref = straight.run()
    assert all(np.isfinite(v) for h in ref["history"] for v in h.values())
    part = copy.deepcopy(opt)
    part["path"]["experiments_root"] = str(tmp_path / "b")
    part["train"]["total_iter"] = 2
    RealTrainer(validate_options(part)).run()
    part["train"]["total_iter"] = 4
    resumed = RealTrainer(validate_options(part), auto_resume=True).run()
    assert resumed["history"] == ref["history"][2:]
    a = torch.load(tmp_path / "a/training_states/4.state", weights_only=True)
    b = torch.load(tmp_path / "b/training_states/4.state", weights_only=True)
    for key in ("net", "ema", "net_d"):
        assert_same_tensors(a[key], b[key])
    qa, qb = a["rank_state"][0]["queue"], b["rank_state"][0]["queue"]
    assert qa["ptr"] == qb["ptr"] == 4 and torch.equal(qa["lq"], qb["lq"]) and torch.equal(qa["gt"], qb["gt"])


@pytest.mark.parametrize("gan", [False, True], ids=["mse", "gan"])
def test_degradation_equals_basicsr_feed_data(workdir, monkeypatch, gan):
    """Our Degradation + PairQueue against basicsr's own RealESRNetModel / RealESRGANModel.feed_data on
    the same batch with the same seeds (basicsr's model built without its CUDA-only __init__)."""
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.models.realesrnet_model import RealESRNetModel
    from basicsr.utils import DiffJPEG, USMSharp

    from ehat.data.realesrgan_dataset import RealESRGANDataset
    from ehat.train.options import validate_options
    from ehat.train.realesr import Degradation, PairQueue

    monkeypatch.chdir(workdir)  # the VGG file
    raw = real_file(workdir, gan)
    opt = validate_options(raw, check_paths=False)
    ds = RealESRGANDataset(
        {**opt.train_set.to_dict(), "meta_info_file": str(workdir / "meta_info_DFOsub_GT.txt")}
    )
    torch.manual_seed(3)
    batches = [{k: torch.stack([ds[i][k] for i in (0, 1)]) for k in ("gt", "kernel1", "kernel2", "sinc_kernel")}
               for _ in range(3)]  # fmt: skip
    cls = RealESRGANModel if gan else RealESRNetModel
    ref = cls.__new__(cls)
    ref.opt = {k: v for k, v in raw.items() if k != "datasets"}
    ref.device, ref.is_train, ref.queue_size = torch.device("cpu"), True, 4
    jpeg = DiffJPEG(differentiable=False)
    # newer torch: DiffJPEG's output is not viewable by basicsr's filter2D; .contiguous() changes no value
    ref.jpeger, ref.usm_sharpener = lambda x, quality: jpeg(x, quality=quality).contiguous(), USMSharp()
    ref.queue_lr, ref.queue_gt, ref.queue_ptr = torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 32, 32), 0
    ours, queue = Degradation(opt, torch.device("cpu"), usm_source=gan), PairQueue(4)
    for batch in batches:
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        ref.feed_data(batch)
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        lq, gt = queue(*ours(batch))
        assert torch.equal(lq, ref.lq) and torch.equal(gt, ref.gt)


def test_missing_vgg_weights_stop_before_training(tmp_path, monkeypatch, workdir):
    from ehat.train import options
    from ehat.train.options import OptionsError, validate_options

    monkeypatch.chdir(tmp_path)  # no experiments/pretrained_models here
    monkeypatch.setattr(options, "_vgg_downloadable", lambda url: False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(OptionsError) as err:
        validate_options(real_file(workdir, gan=True))
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path / "experiments/pretrained_models/vgg19-dcbb9e9d.pth") in msg
    assert "train.perceptual_opt" in err.value.key


def test_gan_keys_need_a_gan_model_type(workdir, monkeypatch):
    from ehat.train.options import OptionsError, validate_options

    monkeypatch.chdir(workdir)
    opt = real_file(workdir, gan=True)
    opt["model_type"] = "RealHATMSEModel"
    with pytest.raises(OptionsError, match="only for the real-world|only for the GAN"):
        validate_options(opt)
    opt = real_file(workdir, gan=False)
    del opt["queue_size"]
    with pytest.raises(OptionsError, match="queue_size"):
        validate_options(opt)
