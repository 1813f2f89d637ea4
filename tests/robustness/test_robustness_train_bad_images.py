"""train.py on a messy training folder: the pre-flight image check fails before the first step naming
every bad file (exit 1, no traceback), or warns and trains on with ``bad_image: skip``."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from ehat.data.image_io import write_image
from ehat.train.cli import main
from tests.helpers import make_data, tiny_options


@pytest.fixture()
def data(tmp_path):
    return make_data(tmp_path / "data")


def _train(tmp_path, data, capsys, **changes):
    opt = tiny_options(tmp_path, data, **{"train.total_iter": 2, "val": None, **changes})
    opt["datasets"].pop("val")
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    code = main(["-opt", str(path)])
    log = "".join(p.read_text() for p in (tmp_path / "exp").rglob("train_*.log"))
    return code, capsys.readouterr().err, log


def _states(tmp_path):
    return sorted((tmp_path / "exp").rglob("*.state"))


def _break(hr_dir, lr_dir):
    """Five kinds of bad pair among four; returns the file each problem must name."""
    (hr_dir / "0000.png").write_bytes(b"")  # zero bytes
    (lr_dir / "0001.png").write_text("not a png")  # not an image
    hr = np.asarray(Image.open(hr_dir / "0002.png"))
    write_image(hr_dir / "0002.png", np.ascontiguousarray(hr[:60]))  # HR 64x60 vs LR 16x16
    return {
        "zero bytes": hr_dir / "0000.png",
        "cannot read the image header": lr_dir / "0001.png",
        "size mismatch": lr_dir / "0002.png",
    }


def test_bad_training_images_fail_before_the_first_step_naming_each_file(tmp_path, data, capsys):
    expected = _break(*data["train"])
    code, err, log = _train(tmp_path, data, capsys)
    assert code == 1 and "Traceback" not in err
    assert "3 of 4 training pair(s) are unusable (header check)" in err
    for words, path in expected.items():
        assert any(words in line and str(path) in line for line in err.splitlines()), (words, err)
    assert "bad_image: skip" in err and "verify_dataset.py" in err
    assert "Start training" not in log and _states(tmp_path) == []


def test_image_smaller_than_the_patch_fails_before_the_first_step(tmp_path, data, capsys):
    hr_dir, lr_dir = data["train"]
    write_image(hr_dir / "0003.png", np.zeros((16, 64, 3), np.uint8))
    write_image(lr_dir / "0003.png", np.zeros((4, 16, 3), np.uint8))
    code, err, log = _train(tmp_path, data, capsys)
    assert code == 1 and f"image {lr_dir / '0003.png'} is too small for gt_size 32" in err
    assert "Start training" not in log


def test_truncated_pixel_data_is_caught_by_the_decode_check(tmp_path, data, capsys):
    hr_dir, _ = data["train"]
    full = (hr_dir / "0001.png").read_bytes()
    (hr_dir / "0001.png").write_bytes(full[: len(full) * 2 // 3])  # header intact, pixels cut
    code, err, _ = _train(tmp_path, data, capsys, **{"datasets.train.check_images": "decode"})
    assert code == 1 and "(decode check)" in err and str(hr_dir / "0001.png") in err and "truncated" in err


def test_decompression_bomb_fails_before_the_first_step_without_decoding(tmp_path, data, capsys):
    """An HR PNG whose header claims 60000x50000 pixels is named by the header check; nothing decodes it."""
    import struct
    import zlib

    hr_dir, _ = data["train"]
    png = bytearray((hr_dir / "0001.png").read_bytes())
    png[16:24] = struct.pack(">II", 60000, 50000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    (hr_dir / "0001.png").write_bytes(bytes(png))
    code, err, log = _train(tmp_path, data, capsys)
    assert code == 1 and "(header check)" in err
    assert f"image {hr_dir / '0001.png'} declares 60000x50000 = 3,000,000,000 pixels" in err
    assert "EHAT_MAX_IMAGE_PIXELS" in err and "Start training" not in log


def test_skip_policy_warns_before_the_first_step_and_trains_on_the_good_pairs(tmp_path, data, capsys):
    expected = _break(*data["train"])
    changes = {"datasets.train.type": "MultiRootPairedDataset", "datasets.train.bad_image": "skip"}
    with pytest.warns(UserWarning, match="bad_image: skip"):
        code, err, log = _train(tmp_path, data, capsys, **changes)
    assert code == 0, err
    warning = log[log.index("training pair(s) are unusable") : log.index("Start training")]
    assert all(str(p) in warning for p in expected.values())
    assert "these images will be skipped when drawn" in warning
    assert len(_states(tmp_path)) == 1


def test_clean_data_passes_the_check_and_says_so(tmp_path, data, capsys):
    code, _, log = _train(tmp_path, data, capsys)
    assert code == 0 and "Checked the headers of 4 training pair(s): all usable" in log
