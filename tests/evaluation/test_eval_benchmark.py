"""test.py: BasicSR-style test options, run through the same evaluation code as test_demo.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from ehat.archs import build_network
from ehat.archs.rlfn_arch import RLFN
from ehat.data.image_io import write_image
from ehat.evaluation.benchmark import OptionsError, load_test_options, main, run_options
from ehat.imaging.metrics import image_metrics
from tests.helpers import REPO_ROOT

OPTIONS = sorted((REPO_ROOT / "options" / "test").glob("*.yml"))


@pytest.mark.parametrize("path", OPTIONS, ids=[p.name for p in OPTIONS])
def test_shipped_test_options_are_valid(path):
    opt = load_test_options(path, check_paths=False)  # the benchmark sets are not in the repository
    if opt.network_g["type"] in ("RLFN", "ehat_tiny"):  # the big ones are built in test_archs
        assert build_network(dict(opt.network_g)).upscale == opt.scale


def _options(tmp_path, photo, **extra):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    write_image(hr_dir / "a.png", photo[:48, :52])
    write_image(lr_dir / "ax4.png", np.ascontiguousarray(photo[:48:4, :52:4]))
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(RLFN(feature_channels=8, mid_channels=8, num_blocks=1).state_dict(), weights)
    opt = {
        "name": "t",
        "scale": 4,
        "num_gpu": 0,
        "datasets": {"test_1": {"name": "Tiny", "dataroot_gt": str(hr_dir), "dataroot_lq": str(lr_dir)}},
        "network_g": {"type": "RLFN", "feature_channels": 8, "mid_channels": 8, "num_blocks": 1},
        "path": {"pretrain_network_g": str(weights)},
        "val": {
            "save_img": True,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True}},
        },  # fmt: skip
        **extra,
    }
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    return path


def test_test_py_reports_the_same_psnr_y_as_the_metrics_module(tmp_path, photo):
    from ehat.data.image_io import read_image_uint8

    opt = load_test_options(_options(tmp_path, photo))
    summary = run_options(opt, tmp_path / "results")
    sr = read_image_uint8(tmp_path / "results" / "t" / "Tiny" / "a.png")
    assert summary["Tiny"]["psnr"] == pytest.approx(image_metrics(sr, photo[:48, :52])["psnr_y"])
    assert (tmp_path / "results" / "t" / "Tiny.csv").is_file()
    assert (tmp_path / "results" / "t" / "test_t.log").is_file()


def test_unknown_option_is_named_with_a_suggestion(tmp_path, photo):
    path = _options(tmp_path, photo, tlie={"tile_size": 8})
    with pytest.raises(OptionsError, match=r"option 'tlie': unknown key \(did you mean 'tile'\?\)"):
        load_test_options(path)
    assert main(["-opt", str(path)]) == 2


def test_test_options_share_the_training_options_error_and_machinery():
    from ehat.errors import EhatError
    from ehat.options import schema as options

    assert OptionsError is options.OptionsError and issubclass(OptionsError, EhatError)


def test_test_options_are_typed(tmp_path, photo):
    opt = load_test_options(_options(tmp_path, photo))
    assert opt.scale == 4 and opt.datasets["test_1"].name == "Tiny"
    assert opt.val.metrics["psnr"].test_y_channel is True and opt.path.strict_load_g is True


@pytest.mark.parametrize(
    ("dotted", "value", "words"),
    [
        ("datasets.test_1.io_backend.type", "lmdb", "not supported by EHAT"),
        ("val.pbar", True, "not supported by EHAT"),
        ("val.metrics.psnr.crop_border", 2, "must equal scale"),
    ],
)
def test_accepted_keys_are_used_or_refused_naming_the_key(tmp_path, photo, dotted, value, words):
    path = _options(tmp_path, photo)
    opt = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = opt
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError) as info:
        load_test_options(path)
    assert info.value.key == dotted and words in str(info.value)
    assert main(["-opt", str(path)]) == 2


def test_non_strict_loading_is_accepted_as_hat_test_files_use_it(tmp_path, photo):
    """test.py honours ``path.strict_load_g: false`` (loads what fits and logs the rest, as train.py)."""
    path = _options(tmp_path, photo)
    opt = yaml.safe_load(path.read_text())
    opt.setdefault("path", {})["strict_load_g"] = False
    path.write_text(yaml.safe_dump(opt))
    assert load_test_options(path).path.strict_load_g is False


def test_suffix_names_the_saved_images(tmp_path, photo):
    path = _options(tmp_path, photo)
    opt = yaml.safe_load(path.read_text())
    opt["val"]["suffix"] = "ehat"
    path.write_text(yaml.safe_dump(opt))
    run_options(load_test_options(path), tmp_path / "results")
    assert sorted(p.name for p in (tmp_path / "results/t/Tiny").iterdir()) == ["a_ehat.png"]
