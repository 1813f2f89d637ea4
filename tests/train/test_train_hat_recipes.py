"""Every official XPixelGroup/HAT option file's keys run through train.py / test.py, only paths (and the
network's and data's sizes) changed: 19 of the 20 training files train for two iterations, the 20th
(a strict load of x2 weights into x4) fails naming both scales; all 15 test files evaluate.

The key sets are our own written copies of HAT's ``options/train/*.yml`` and ``options/test/*.yml``
(same keys, same values except paths, network width/depth, patch and batch sizes, workers).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from ehat.train.cli import main as train_main
from tests.helpers import write_pairs

SIZES = {"HAT-L": (3, 30, 2), "HAT": (3, 30, 1), "HAT-S": (24, 24, 1)}
"""compress_ratio, squeeze_factor, groups of each variant (HAT-L has twice HAT's groups)."""
CROPS = [("astronaut", 30, 180, 96, 96), ("coffee", 100, 200, 96, 96), ("chelsea", 60, 150, 96, 96)]
VAL_CROPS = [("astronaut", 250, 250, 48, 48), ("coffee", 200, 380, 48, 48)]


def network(variant: str, scale: int) -> dict:
    """HAT's network_g keys with a tiny width and depth (embed 30, window 4)."""
    compress, squeeze, groups = SIZES[variant]
    return {
        "type": "HAT",
        "upscale": scale,
        "in_chans": 3,
        "img_size": 64,
        "window_size": 4,
        "compress_ratio": compress,
        "squeeze_factor": squeeze,
        "conv_scale": 0.01,
        "overlap_ratio": 0.5,
        "img_range": 1.0,
        "depths": [1] * groups,
        "embed_dim": 30,
        "num_heads": [2] * groups,
        "mlp_ratio": 2,
        "upsampler": "pixelshuffle",
        "resi_connection": "1conv",
    }


def val_metrics(scale: int) -> dict:
    return {
        "psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True, "better": "higher"},
        "ssim": {"type": "calculate_ssim", "crop_border": scale, "test_y_channel": True, "better": "higher"},
    }


def train_file(name: str, scale: int, variant: str, data: dict, pretrain: str | None, **path: object) -> dict:
    """One of HAT's PSNR training files (DF2K paired data or ImageNet GT-only data)."""
    imagenet = "ImageNet_from_scratch" in name
    gt, lq = data[scale]["train"]
    train = {
        "name": "ImageNet" if imagenet else "DF2K",
        "type": "ImageNetPairedDataset" if imagenet else "PairedImageDataset",
        "dataroot_gt": str(gt),
        "dataroot_lq": str(gt if imagenet else lq),
        "meta_info_file": str(data["meta_imagenet" if imagenet else "meta"]),
        "io_backend": {"type": "disk"},
        "gt_size": 8 * scale,
        "use_hflip": True,
        "use_rot": True,
        "use_shuffle": True,
        "num_worker_per_gpu": 0,
        "batch_size_per_gpu": 2,
        "dataset_enlarge_ratio": 1,
        "prefetch_mode": None,
    }
    val = {
        f"val_{i}": {
            "name": f"Set{i}",
            "type": "PairedImageDataset",
            "dataroot_gt": str(data[scale]["val"][0]),
            "dataroot_lq": str(data[scale]["val"][1]),
            "io_backend": {"type": "disk"},
        }
        for i in (1, 2)
    }
    return {
        "name": name,
        "model_type": "HATModel",
        "scale": scale,
        "num_gpu": "auto",
        "manual_seed": 0,
        "datasets": {"train": train, **val},
        "network_g": network(variant, scale),
        "path": {"pretrain_network_g": pretrain, "strict_load_g": True, "resume_state": None, **path},
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {
                "type": "MultiStepLR",
                "milestones": [250000, 400000, 450000, 475000],
                "gamma": 0.5,
            },
            "total_iter": 2,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {"val_freq": 2, "save_img": False, "pbar": False, "metrics": val_metrics(scale)},
        "logger": {
            "print_freq": 1,
            "save_checkpoint_freq": 5000,
            "use_tb_logger": True,
            "wandb": {"project": None, "resume_id": None},
        },
        "dist_params": {"backend": "nccl", "port": 29500},
    }


PSNR_TRAIN_FILES = [
    # (file, scale, variant, starts from: None | 'same' (same scale) | 'x2')
    ("train_HAT-L_SRx2_ImageNet_from_scratch", 2, "HAT-L", None),
    ("train_HAT-L_SRx2_finetune_from_ImageNet_pretrain", 2, "HAT-L", "same"),
    ("train_HAT-L_SRx3_ImageNet_from_scratch", 3, "HAT-L", None),
    ("train_HAT-L_SRx3_finetune_from_ImageNet_pretrain", 3, "HAT-L", "same"),
    ("train_HAT-L_SRx4_ImageNet_from_scratch", 4, "HAT-L", None),
    ("train_HAT-L_SRx4_finetune_from_ImageNet_pretrain", 4, "HAT-L", "same"),
    ("train_HAT-S_SRx2_from_scratch", 2, "HAT-S", None),
    ("train_HAT-S_SRx3_from_scratch", 3, "HAT-S", None),
    ("train_HAT-S_SRx4_finetune_from_SRx2", 4, "HAT-S", "x2"),
    ("train_HAT_SRx2_ImageNet_from_scratch", 2, "HAT", None),
    ("train_HAT_SRx2_finetune_from_ImageNet_pretrain", 2, "HAT", "same"),
    ("train_HAT_SRx2_from_scratch", 2, "HAT", None),
    ("train_HAT_SRx3_ImageNet_from_scratch", 3, "HAT", None),
    ("train_HAT_SRx3_finetune_from_ImageNet_pretrain", 3, "HAT", "same"),
    ("train_HAT_SRx3_from_scratch", 3, "HAT", None),
    ("train_HAT_SRx4_ImageNet_from_scratch", 4, "HAT", None),
    ("train_HAT_SRx4_finetune_from_ImageNet_pretrain", 4, "HAT", "same"),
]
STRICT_X2_INTO_X4 = "train_HAT_SRx4_finetune_from_SRx2"
REAL_FILES = ("train_Real_HAT_SRx4_mse_model", "train_Real_HAT_GAN_SRx4_finetune_from_mse_model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Paired data per scale (HR 96x96 crops of photos), HAT's meta-info files, and weights per
    (variant, scale) saved with params + params_ema as BasicSR does."""
    from ehat.archs import build_network
    from ehat.checkpoints import save_network

    root = tmp_path_factory.mktemp("hat_recipes")
    out: dict = {}
    for scale in (2, 3, 4):
        out[scale] = {
            "train": write_pairs(root / f"x{scale}" / "train", CROPS, scale),
            "val": write_pairs(root / f"x{scale}" / "val", VAL_CROPS, scale),
        }
    names = [f"{i:04d}.png" for i in range(len(CROPS))]
    out["meta"] = root / "meta_info_DF2Ksub_GT.txt"
    out["meta"].write_text("".join(f"{n} (96,96,3)\n" for n in names))
    out["meta_imagenet"] = root / "train_map.txt"  # ImageNet's: '<relative path> <class>'
    out["meta_imagenet"].write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    for variant in SIZES:
        for scale in (2, 3, 4):
            torch.manual_seed(scale)
            net = build_network(network(variant, scale))
            path = root / f"{variant}_x{scale}.pth"
            save_network(net, path, ema_model=net)
            out[(variant, scale)] = path
    out["root"] = root
    return out


def run_train(tmp_path: Path, opt: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    code = train_main(["-opt", str(path), "--force_yml", f"path:experiments_root={tmp_path / 'exp'}"])
    return code, capsys.readouterr().err


def train_log(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "exp").glob("train_*.log"))


@pytest.mark.slow
@pytest.mark.parametrize("name,scale,variant,start", PSNR_TRAIN_FILES, ids=[f[0] for f in PSNR_TRAIN_FILES])
def test_official_psnr_training_file_runs(tmp_path, data, capsys, name, scale, variant, start):
    pretrain = None if start is None else data[(variant, 2 if start == "x2" else scale)]
    extra = {"param_key_g": "params_ema"} if start == "same" else {}
    opt = train_file(name, scale, variant, data, None if pretrain is None else str(pretrain), **extra)
    if start == "x2":
        opt["path"]["strict_load_g"] = False  # HAT-S's file, as published
    code, err = run_train(tmp_path, opt, capsys)
    assert code == 0, err
    log = train_log(tmp_path)
    assert "iter:       2" in log
    # HAT's Y-channel 'psnr' is reported under a new name, said once in the log
    assert log.count("val.metrics.psnr (calculate_psnr) is reported as 'psnr_opt'") == 1
    assert "psnr_opt:" in log and "ssim:" in log
    if start == "x2":
        # every key not loaded is named: x4's second upsampler stage stays at its initial value
        assert "NON-STRICTLY" in log
        assert "upsample.2.weight" in log and "upsample.2.bias" in log


def test_strict_x2_into_x4_fails_naming_both_scales(tmp_path, data, capsys):
    opt = train_file(STRICT_X2_INTO_X4, 4, "HAT", data, str(data[("HAT", 2)]), param_key_g="params_ema")
    code, err = run_train(tmp_path, opt, capsys)
    assert code == 1
    assert "the checkpoint is x2, the model is x4" in err
    assert "strict_load_g: false" in err and "convert_checkpoint.py" in err and "--scale 4" in err
    assert not list((tmp_path / "exp" / "models").glob("*.pth"))


def test_non_strict_load_lists_every_key_not_loaded(data):
    """x2 weights into x4 non-strictly: exactly x4's extra upsampler stage is left at init; everything
    else equals the file."""
    from ehat.archs import build_network
    from ehat.checkpoints import load_weights, read_state_dict

    torch.manual_seed(0)
    net = build_network(network("HAT", 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_weights(net, data[("HAT", 2)], "params_ema", strict=False)
    src = read_state_dict(data[("HAT", 2)], "params_ema")
    assert report.left_at_init == ["upsample.2.bias", "upsample.2.weight"]
    assert report.unexpected == [] and report.wrong_shape == []
    after = net.state_dict()
    for k in after:
        expected = before[k] if k in report.left_at_init else src[k]
        assert torch.equal(after[k], expected), k
    assert all(k in report.summary() for k in report.left_at_init)


def test_convert_checkpoint_changes_scale_for_a_strict_load(tmp_path, data):
    import importlib.util

    from ehat.archs import build_network
    from ehat.checkpoints import load_weights, read_state_dict

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint", repo / "scripts/convert_checkpoint.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = read_state_dict(data[("HAT", 2)], "params_ema")
    for mode in ("keep", "drop"):
        out = tmp_path / f"x4_{mode}.pth"
        assert mod.main([str(data[("HAT", 2)]), str(out), "--scale", "4", "--upsampler", mode]) == 0
        net = build_network(network("HAT", 4))
        assert load_weights(net, out).complete  # strict
        sd = net.state_dict()
        assert torch.equal(sd["upsample.0.weight"], src["upsample.0.weight"]) == (mode == "keep")
        assert torch.equal(sd["conv_first.weight"], src["conv_first.weight"])


# ------------------------------------------------------------------------------------ test files
def official_test_file(name: str, scale: int, variant: str, data: dict, weights: Path, *, single=False, tile=None,
              metrics=True) -> dict:  # fmt: skip
    gt, lq = data[scale]["val"]
    if single:
        datasets = {"test_1": {"name": "custom", "type": "SingleImageDataset", "dataroot_lq": str(lq),
                               "io_backend": {"type": "disk"}}}  # fmt: skip
    else:
        datasets = {
            f"test_{i}": {
                "name": n,
                "type": "PairedImageDataset",
                "dataroot_gt": str(gt),
                "dataroot_lq": str(lq),
                "io_backend": {"type": "disk"},
            }  # fmt: skip
            for i, n in ((1, "Set5"), (2, "Set14"))
        }
    opt = {
        "name": name,
        "model_type": "HATModel",
        "scale": scale,
        "num_gpu": 0,  # HAT's files say 1 ('set num_gpu: 0 for cpu mode')
        "manual_seed": 0,
        "datasets": datasets,
        "network_g": network(variant, scale),
        "path": {"pretrain_network_g": str(weights), "strict_load_g": True, "param_key_g": "params_ema"},
    }
    if tile:
        opt["tile"] = {"tile_size": tile, "tile_pad": 32}
    if name != "HAT_GAN_Real_SRx4":
        opt["val"] = {"save_img": True, "suffix": None}
        if metrics:
            opt["val"]["metrics"] = {
                "psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True},
                "ssim": {"type": "calculate_ssim", "crop_border": scale, "test_y_channel": True},
            }
    return opt


TEST_FILES = [
    # (file, scale, variant, SingleImageDataset, tile_size)
    ("HAT-L_SRx2_ImageNet-pretrain", 2, "HAT-L", False, None),
    ("HAT-L_SRx3_ImageNet-pretrain", 3, "HAT-L", False, None),
    ("HAT-L_SRx4_ImageNet-pretrain", 4, "HAT-L", False, None),
    ("HAT-S_SRx2", 2, "HAT-S", False, None),
    ("HAT-S_SRx3", 3, "HAT-S", False, None),
    ("HAT-S_SRx4", 4, "HAT-S", False, None),
    ("HAT_GAN_Real_SRx4", 4, "HAT", True, 512),
    ("HAT_SRx2", 2, "HAT", False, None),
    ("HAT_SRx2_ImageNet-pretrain", 2, "HAT", False, None),
    ("HAT_SRx3", 3, "HAT", False, None),
    ("HAT_SRx3_ImageNet-pretrain", 3, "HAT", False, None),
    ("HAT_SRx4", 4, "HAT", False, None),
    ("HAT_SRx4_ImageNet-LR", 4, "HAT", True, None),
    ("HAT_SRx4_ImageNet-pretrain", 4, "HAT", False, None),
    ("HAT_tile_example", 4, "HAT", False, 256),
]


@pytest.mark.parametrize("name,scale,variant,single,tile", TEST_FILES, ids=[f[0] for f in TEST_FILES])
def test_official_test_file_runs(tmp_path, data, capsys, name, scale, variant, single, tile):
    from ehat.evaluation.benchmark import main as test_main

    opt = official_test_file(name, scale, variant, data, data[(variant, scale)], single=single, tile=tile,
                    metrics=name != "HAT_SRx4_ImageNet-LR")  # fmt: skip
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    assert test_main(["-opt", str(path), "--results_root", str(tmp_path / "results")]) == 0, (
        capsys.readouterr().err
    )
    out = tmp_path / "results" / name
    pngs = list(out.rglob("*.png"))
    saved = "val" in opt and opt["val"]["save_img"]  # HAT_GAN_Real_SRx4.yml has no val section: nothing saved
    assert len(pngs) == ((2 if single else 4) if saved else 0)
    log = (out / f"test_{name}.log").read_text()
    assert "0000" in log and "0001" in log  # every image evaluated
    if not single and "val" in opt and "metrics" in opt["val"]:
        assert "# Validation Set5: psnr:" in (out / f"test_{name}.log").read_text()


def test_test_py_yaml_error_is_one_line_naming_file_and_line(tmp_path, capsys):
    from ehat.evaluation.benchmark import main as test_main

    path = tmp_path / "bad.yml"
    path.write_text("name: t\nscale: 4\nnetwork_g:\n  type: HAT\n  depths: [1, 2\n")
    assert test_main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "line 6" in err and "started at line 5" in err


def test_test_py_checks_paths_before_building_and_leaves_no_log(tmp_path, data, capsys, monkeypatch):
    from ehat.evaluation import benchmark

    def must_not_build(*a, **k):
        raise AssertionError("the network was built before the paths were checked")

    monkeypatch.setattr("ehat.archs.build_network", must_not_build)
    monkeypatch.chdir(tmp_path)
    opt = official_test_file("HAT_SRx4", 4, "HAT", data, data[("HAT", 4)])
    opt["datasets"]["test_2"]["dataroot_lq"] = "datasets/Set14/LRbicx4"
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    assert benchmark.main(["-opt", str(path), "--results_root", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "datasets.test_2.dataroot_lq" in err and f"relative paths start at {tmp_path}" in err
    (tmp_path / "empty").mkdir()
    assert benchmark.main(["-opt", str(path), "--force_yml", f"datasets:test_2:dataroot_lq={tmp_path / 'empty'}",
                           "--results_root", str(tmp_path / "results")]) == 2  # fmt: skip
    assert "holds no images" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_force_yml_overrides_nested_keys_and_names_bad_entries(tmp_path):
    from ehat.options.schema import OptionsError
    from ehat.options.yaml_files import apply_force_yml

    raw = {"train": {"total_iter": 5}, "name": "x"}
    out = apply_force_yml(
        copy.deepcopy(raw), ["train:total_iter=7", "path:resume_state=~", "val:metrics:a=[1, 2]"]
    )
    assert out["train"]["total_iter"] == 7 and out["path"]["resume_state"] is None
    assert out["val"]["metrics"]["a"] == [1, 2]
    for bad in ("train:total_iter", "name:sub=1", "a::b=1"):
        with pytest.raises(OptionsError, match="--force_yml"):
            apply_force_yml(copy.deepcopy(raw), [bad])
