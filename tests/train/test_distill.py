"""Distillation (model_type DistillModel): a student trained from a frozen teacher's outputs and
spatial affinities; the teacher stays out of training states, frozen, and resume is bit-exact."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ehat.checkpoints import save_network
from ehat.networks import build_from_options
from ehat.options.schema import OptionsError
from ehat.options.train import validate_options
from ehat.train import state as st
from ehat.train.distill import DistillTrainer, Teacher, affinity_loss, spatial_affinity
from ehat.train.real_trainer import trainer_class
from tests.helpers import make_data, named_photo, run_two_ranks, tiny_options

TINY_RLFN = {"type": "RLFN", "feature_channels": 8, "mid_channels": 8, "num_blocks": 1, "esa_channels": 4}
"""A teacher small enough for CPU tests; RLFN reads [0, 255], so the range conversion is exercised."""


def teacher_file(tmp_path, seed: int = 3) -> str:
    torch.manual_seed(seed)
    net = build_from_options(TINY_RLFN)
    path = tmp_path / "teacher.pth"
    save_network(net, path)
    return str(path)


def distill_options(tmp_path, data, **changes: object) -> dict:
    """tiny_options with a tiny RLFN student and a tiny RLFN teacher (another seed): output
    distillation + affinity on one layer pair."""
    base = {
        "model_type": "DistillModel",
        "network_g": TINY_RLFN,
        "network_t": TINY_RLFN,
        "path.pretrain_network_t": teacher_file(tmp_path),
        "datasets.train.gt_size": 64,  # LR 16x16: RLFN pads inputs under 15 pixels, its features would not match
        "distill": {
            "output_opt": {"type": "L1Loss", "loss_weight": 1.0},
            "affinity_weight": 0.5,
            "student_layers": ["block_1"],
            "teacher_layers": ["block_1"],
        },
    }
    return tiny_options(tmp_path, data, **{**base, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("distill_data"))


# ------------------------------------------------------------------------------ the loss
def test_spatial_affinity_is_the_cosine_of_every_pair_of_positions():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 5, 3, 4, generator=g)
    a = spatial_affinity(feat)
    vectors = feat.flatten(2).transpose(1, 2)  # (B, 12, 5)
    expected = F.cosine_similarity(vectors[:, :, None, :], vectors[:, None, :, :], dim=-1)
    torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6)
    # tokens (B, L, C) are the same positions
    torch.testing.assert_close(spatial_affinity(vectors), expected, rtol=1e-5, atol=1e-6)


def test_affinity_loss_compares_positions_not_channels():
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(1, 16, 4, 4, generator=g)
    rotation = torch.linalg.qr(torch.randn(16, 16, generator=g)).Q
    student = torch.einsum("dc,bchw->bdhw", rotation, teacher)
    assert float(affinity_loss(student, teacher)) < 1e-5  # the channels rotated: the same affinities
    other = torch.randn(1, 8, 4, 4, generator=g)
    assert float(affinity_loss(other, teacher)) > 0.05


def test_an_rlfn_teacher_reads_and_writes_its_own_range(tmp_path):
    torch.manual_seed(0)
    net = build_from_options(TINY_RLFN)
    lq = torch.rand(1, 3, 24, 24)
    sr, feats = Teacher(net, ["block_1"])(lq)
    with torch.no_grad():
        expected = net(lq * 255.0) / 255.0
    torch.testing.assert_close(sr, expected)
    assert feats[0].shape[-2:] == (24, 24)  # LR-sized features
    sr_bf16, _ = Teacher(net, bf16=True)(lq)
    assert sr_bf16.dtype == torch.float32
    torch.testing.assert_close(sr_bf16, expected, rtol=0, atol=0.05)  # bf16 keeps ~3 significant digits


# ------------------------------------------------------------------------------ training
def test_distillation_trains_the_student_towards_the_teacher(tmp_path, data):
    opt = validate_options(
        distill_options(
            tmp_path,
            data,
            **{
                "train.total_iter": 30,
                "train.pixel_opt": None,
                "train.scheduler": None,
                "train.grad_clip": None,
                "train.optim_g.lr": 5e-3,
                "val": None,
            },
        )
    )
    trainer = trainer_class(opt)(opt)
    assert isinstance(trainer, DistillTrainer)
    out = trainer.run()
    losses = [h["l_distill"] for h in out["history"]]
    assert "l_pix" not in out["history"][0]  # distillation alone
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert all(h["t_teacher"] > 0 for h in out["history"])


def test_the_teacher_is_frozen_and_absent_from_training_states(tmp_path, data):
    opt = validate_options(distill_options(tmp_path, data, **{"logger.save_checkpoint_freq": 3}))
    trainer = DistillTrainer(opt)
    teacher_before = torch.load(opt.path.pretrain_network_t, weights_only=True)["params"]
    trainer.run()
    net_t = trainer.teacher.net
    assert not net_t.training
    assert all(not p.requires_grad and p.grad is None for p in net_t.parameters())
    for k, v in net_t.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    state = st.load_state(trainer.states_dir / "6.state")
    student_keys = set(trainer.net.state_dict())
    assert set(state["net"]) == student_keys
    saved = {
        k
        for k, v in state.items()
        if isinstance(v, dict) and any(isinstance(t, torch.Tensor) for t in v.values())
    }
    assert saved == {"net", "ema"}, saved  # no teacher weights anywhere in the state
    model = torch.load(trainer.models_dir / "net_g_6.pth", weights_only=True)
    assert set(model["params"]) == student_keys


def test_resume_reproduces_an_uninterrupted_distillation(tmp_path, data):
    changes = {"logger.save_checkpoint_freq": 3, "train.total_iter": 6}
    full = DistillTrainer(validate_options(distill_options(tmp_path / "full", data, **changes)))
    full_out = full.run()
    first = distill_options(tmp_path / "part", data, **{**changes, "train.total_iter": 3})
    DistillTrainer(validate_options(first)).run()
    resumed_opt = distill_options(
        tmp_path / "part",
        data,
        **{**changes, "path.resume_state": str(tmp_path / "part/exp/training_states/3.state")},
    )
    resumed = DistillTrainer(validate_options(resumed_opt))
    out = resumed.run()
    keys = ("l_pix", "l_distill", "l_affinity")
    assert [[h[k] for k in keys] for h in out["history"]] == [
        [h[k] for k in keys] for h in full_out["history"][3:]
    ]
    for k, v in full.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[k], v), k
    for k, v in full.ema.state_dict().items():
        assert torch.equal(resumed.ema.state_dict()[k], v), k


# ------------------------------------------------------------------------------ option mistakes
def test_a_wrong_layer_name_lists_the_valid_ones(tmp_path, data):
    bad = distill_options(tmp_path, data)
    bad["distill"]["teacher_layers"] = ["block_l"]
    with pytest.raises(
        OptionsError, match=r"distill\.teacher_layers\[0\].*'block_l'.*did you mean 'block_1'.*conv_1"
    ):
        DistillTrainer(validate_options(bad)).run()
    bad = distill_options(tmp_path, data)
    bad["distill"]["student_layers"] = ["trunk"]
    with pytest.raises(
        OptionsError, match=r"distill\.student_layers\[0\].*valid names: conv_1, block_1, block_1\.c1_r"
    ):
        DistillTrainer(validate_options(bad)).run()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path.pretrain_network_t": None}, r"path\.pretrain_network_t.*required by model_type DistillModel"),
        ({"distill": None}, r"'distill'.*required by model_type DistillModel"),
        ({"model_type": "EHATModel"}, r"'network_t'.*only for model_type DistillModel"),
        ({"distill.teacher_layers": []}, r"distill\.teacher_layers.*0 names for 1 student_layers"),
        (
            {
                "distill.output_opt": None,
                "distill.affinity_weight": 0.0,
                "distill.student_layers": [],
                "distill.teacher_layers": [],
            },
            r"distill\.output_opt.*nothing is distilled",
        ),  # fmt: skip
    ],
)
def test_distillation_option_mistakes_name_the_key(tmp_path, data, change, message):
    opt = distill_options(tmp_path, data)
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = opt
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    with pytest.raises(OptionsError, match=message):
        validate_options(opt)


# ------------------------------------------------------------------------------ a real teacher
def test_a_real_rlfn_teacher_needs_no_network_t_and_beats_bicubic(shared_dir):
    """The released RLFN weights, described by the file alone, run on [0, 1] inputs through Teacher."""
    weights = shared_dir / "weights" / "rlfn_ntire_x4.pth"
    net = build_from_options(None, weights, "auto")
    hr = torch.from_numpy(named_photo("astronaut")[100:196, 100:196].copy()).permute(2, 0, 1)[None] / 255.0
    lq = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    sr, _ = Teacher(net)(lq)
    bicubic = F.interpolate(lq, scale_factor=4, mode="bicubic").clamp(0, 1)

    def psnr(x: torch.Tensor) -> float:
        return float(-10 * torch.log10(((x.clamp(0, 1) - hr) ** 2).mean()))

    assert psnr(sr) > psnr(bicubic) + 1.0


# ------------------------------------------------------------------------------ DDP
RANK_SCRIPT = textwrap.dedent(
    """
    import sys

    import torch

    import ehat  # noqa: F401
    from ehat.train import distributed as du
    from ehat.train.distill import DistillTrainer
    from ehat.options.train import load_options

    trainer = DistillTrainer(load_options(sys.argv[1]), launcher="pytorch")
    out = trainer.run()
    torch.save(
        {"net": trainer.net.state_dict(), "losses": [h["l_distill"] for h in out["history"]]},
        f"{sys.argv[2]}/rank{du.rank()}.pt",
    )
    du.cleanup()
    """
)


@pytest.mark.slow
def test_two_gloo_ranks_distill_like_one_process_with_twice_the_batch(tmp_path, data):
    changes = {"train.total_iter": 4, "val": None, "logger.save_checkpoint_freq": 4}
    r0, r1 = run_two_ranks(tmp_path, RANK_SCRIPT, distill_options(tmp_path / "ddp", data, **changes))
    for k in r0["net"]:
        assert torch.equal(r0["net"][k], r1["net"][k]), k
    single = DistillTrainer(
        validate_options(
            distill_options(tmp_path / "single", data, **changes, **{"datasets.train.batch_size_per_gpu": 4})
        )
    )
    out = single.run()
    ddp_losses = [0.5 * (a + b) for a, b in zip(r0["losses"], r1["losses"])]
    np.testing.assert_allclose(ddp_losses, [h["l_distill"] for h in out["history"]], rtol=1e-5)
    # Adam divides by sqrt(v): a near-zero gradient summed in another order moves a weight by ~lr * 1e-2
    for k, v in single.net.state_dict().items():
        torch.testing.assert_close(r0["net"][k], v, rtol=1e-3, atol=5e-5)
