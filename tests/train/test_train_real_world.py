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

from tests.helpers import assert_same_tensors, make_real_data, real_options


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return make_real_data(tmp_path_factory.mktemp("real"))


@pytest.mark.slow
@pytest.mark.parametrize("gan", [False, True], ids=["mse", "gan"])
def test_official_real_hat_file_runs(workdir, tmp_path, monkeypatch, capsys, gan):
    from ehat.train.cli import main

    monkeypatch.chdir(workdir)
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(real_options(workdir, gan)))
    assert main(["-opt", str(path), "--force_yml", f"path:experiments_root={tmp_path / 'exp'}"]) == 0, (
        capsys.readouterr().err
    )
    log = "".join(p.read_text() for p in (tmp_path / "exp").glob("train_*.log"))
    assert "iter:       2" in log
    names = ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake") if gan else ("l_pix",)
    assert all(f"{n}:" in log for n in names)
    assert ("train.optim_d is not used" in log) is not gan  # HAT's MSE file carries it; said, not refused


@pytest.mark.slow
def test_gan_losses_finite_and_resume_bit_exact(workdir, tmp_path, monkeypatch):
    """4 iterations straight vs 2 + resume + 2 (queue full from iteration 3 on): same losses, same
    generator, discriminator and EMA weights."""
    from ehat.options.train import validate_options
    from ehat.train.real_trainer import RealTrainer

    monkeypatch.chdir(workdir)
    opt = real_options(workdir, gan=True, total_iter=4)
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
    from ehat.options.train import validate_options
    from ehat.train.realesr import Degradation, PairQueue

    monkeypatch.chdir(workdir)  # the VGG file
    raw = real_options(workdir, gan)
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
    from ehat.options import online
    from ehat.options.schema import OptionsError
    from ehat.options.train import validate_options

    monkeypatch.chdir(tmp_path)  # no experiments/pretrained_models here
    monkeypatch.setattr(online, "reachable", lambda url, timeout=3.0: False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(OptionsError) as err:
        validate_options(real_options(workdir, gan=True))
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path / "experiments/pretrained_models/vgg19-dcbb9e9d.pth") in msg
    assert "train.perceptual_opt" in err.value.key


def test_gan_keys_need_a_gan_model_type(workdir, monkeypatch):
    from ehat.options.schema import OptionsError
    from ehat.options.train import validate_options

    monkeypatch.chdir(workdir)
    opt = real_options(workdir, gan=True)
    opt["model_type"] = "RealHATMSEModel"
    with pytest.raises(OptionsError, match="only for the real-world|only for the GAN"):
        validate_options(opt)
    opt = real_options(workdir, gan=False)
    del opt["queue_size"]
    with pytest.raises(OptionsError, match="queue_size"):
        validate_options(opt)


@pytest.mark.slow
def test_auto_resume_of_a_state_without_discriminator_is_a_state_error(workdir, tmp_path, monkeypatch):
    """An MSE run's state picked up by a GAN run's --auto_resume (same experiment folder): a
    StateError naming the missing discriminator, not a KeyError; the MSE state is left as it was."""
    from ehat.options.train import validate_options
    from ehat.train.real_trainer import RealTrainer
    from ehat.train.state import StateError

    monkeypatch.chdir(workdir)
    mse = real_options(workdir, gan=False, total_iter=2)
    mse["logger"]["save_checkpoint_freq"] = 2
    mse["logger"]["use_tb_logger"] = False
    mse["path"]["experiments_root"] = str(tmp_path / "exp")
    RealTrainer(validate_options(mse)).run()
    state = tmp_path / "exp/training_states/2.state"
    before = state.read_bytes()
    gan = real_options(workdir, gan=True, total_iter=4)
    gan["name"] = mse["name"]
    gan["logger"]["use_tb_logger"] = False
    gan["path"]["experiments_root"] = str(tmp_path / "exp")
    with pytest.raises(StateError, match="no discriminator"):
        RealTrainer(validate_options(gan), auto_resume=True).run()
    assert state.read_bytes() == before
