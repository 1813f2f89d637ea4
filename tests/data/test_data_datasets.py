"""MultiRootPairedDataset and PairedValidationDataset: alignment, augmentation, backends, bad data."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.data import build_dataset
from basicsr.utils.matlab_functions import imresize
from torch.utils.data import DataLoader

from ehat.data import MultiRootPairedDataset, PairedValidationDataset
from ehat.data.image_io import ImageReadError, write_image
from ehat.data.pairing import DatasetError
from ehat.data.prepare import make_lmdb
from ehat.data.transforms import PairSizeError

SCALE = 4


def _make_box_pair(root, photo, names, lr_size=(20, 24), hr_name="{}.png", lr_name="{}x4.png", origin=(0, 0)):
    """HR whose 4x4 blocks are constant, so its LR (the block values) is an exact box-downsample of it."""
    hr_dir, lr_dir = root / "HR", root / "LR"
    h, w = lr_size
    for i, name in enumerate(names):
        y, x = origin[0] + 37 * i, origin[1] + 53 * i
        lr = np.ascontiguousarray(photo[y : y + h, x : x + w])
        write_image(lr_dir / lr_name.format(name), lr)
        write_image(hr_dir / hr_name.format(name), np.repeat(np.repeat(lr, SCALE, 0), SCALE, 1))
    return hr_dir, lr_dir


def _opt(gt, lq, **kw):
    opt = dict(
        dataroot_gt=gt,
        dataroot_lq=lq,
        io_backend={"type": "disk"},
        gt_size=32,
        use_hflip=True,
        use_rot=True,
        scale=SCALE,
        phase="train",
    )
    opt.update(kw)
    return opt


def _box_down(gt: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(gt[None].double(), SCALE)[0]


def test_registered_and_built_by_basicsr(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    ds = build_dataset(dict(_opt(str(hr), str(lr)), name="t", type="MultiRootPairedDataset"))
    assert isinstance(ds, MultiRootPairedDataset)
    val = build_dataset(
        dict(
            name="v",
            type="PairedValidationDataset",
            dataroot_gt=str(hr),
            dataroot_lq=str(lr),
            io_backend={"type": "disk"},
            scale=SCALE,
            phase="val",
        )
    )
    assert isinstance(val, PairedValidationDataset)


@pytest.mark.parametrize("augment", [False, True])
def test_lr_crop_lines_up_with_hr_crop_pixel_by_pixel(tmp_path, photo, augment):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001", "0002"])
    ds = MultiRootPairedDataset(_opt(str(hr), str(lr), use_hflip=augment, use_rot=augment))
    random.seed(0)
    for i in range(24):
        s = ds[i % len(ds)]
        assert s["gt"].shape == (3, 32, 32) and s["lq"].shape == (3, 8, 8)
        assert s["gt"].dtype == torch.float32 and 0 <= s["gt"].min() and s["gt"].max() <= 1
        torch.testing.assert_close(_box_down(s["gt"]), s["lq"].double(), rtol=0, atol=1e-6)
        assert s["gt_path"].endswith(".png") and s["lq_path"].endswith("x4.png")


def test_augmentations_cover_the_dihedral_group_and_keep_pairs_aligned(tmp_path, photo):
    # one 32x32 HR: the patch is the whole image, so each sample is one of its 8 flips/rotations
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"], lr_size=(8, 8), origin=(200, 240))
    full = torch.from_numpy(np.repeat(np.repeat(photo[200:208, 240:248], 4, 0), 4, 1)).permute(2, 0, 1)
    dihedral = [torch.rot90(f, k, (1, 2)) for f in (full, full.flip(2)) for k in range(4)]
    ds = MultiRootPairedDataset(_opt(str(hr), str(lr)))
    random.seed(1)
    seen = set()
    for _ in range(64):
        s = ds[0]
        gt_uint8 = torch.round(s["gt"] * 255).to(torch.uint8)
        matches = [k for k, d in enumerate(dihedral) if torch.equal(d, gt_uint8)]
        assert len(matches) == 1
        seen.add(matches[0])
        torch.testing.assert_close(_box_down(s["gt"]), s["lq"].double(), rtol=0, atol=1e-6)
    assert len(seen) == 8


def test_rgb_order_matches_the_file(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"], lr_size=(8, 8))
    s = MultiRootPairedDataset(_opt(str(hr), str(lr), use_hflip=False, use_rot=False))[0]
    expected = torch.from_numpy(photo[:8, :8]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(s["lq"], expected, rtol=0, atol=1e-7)


def test_several_roots_with_enlarge_ratios_and_subset(tmp_path, photo):
    hr1, lr1 = _make_box_pair(tmp_path / "div2k", photo, ["0001", "0002"])
    hr2, lr2 = _make_box_pair(
        tmp_path / "lsdir", photo, ["0000001_s001", "0000001_s002", "0000002_s001"], lr_name="{}.png"
    )
    ds = MultiRootPairedDataset(
        _opt([str(hr1), str(hr2)], [str(lr1), str(lr2)], enlarge_ratio=[3, 1], max_images=[None, 1])
    )
    assert ds.root_sizes() == [2, 2]  # max_images counts source images: 0000001 has two sub-images
    assert len(ds) == 2 * 3 + 2
    roots = [s["gt_path"].split("/")[-3] for s in (ds[i] for i in range(len(ds)))]
    assert roots.count("div2k") == 6 and roots.count("lsdir") == 2


def test_list_options_must_match_the_number_of_roots(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    with pytest.raises(DatasetError, match="enlarge_ratio"):
        MultiRootPairedDataset(_opt([str(hr)], [str(lr)], enlarge_ratio=[1, 2]))


def test_lmdb_reads_equal_folder_reads(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001", "0002"])
    make_lmdb(str(hr), str(tmp_path / "hr.lmdb"), workers=0)
    make_lmdb(str(lr), str(tmp_path / "lr.lmdb"), workers=0)
    disk = MultiRootPairedDataset(_opt(str(hr), str(lr)))
    lmdb = MultiRootPairedDataset(
        _opt(str(tmp_path / "hr.lmdb"), str(tmp_path / "lr.lmdb"), io_backend={"type": "lmdb"})
    )
    assert len(disk) == len(lmdb) == 2
    for i in range(2):
        random.seed(i)
        a = disk[i]
        random.seed(i)
        b = lmdb[i]
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
        assert b["gt_path"] == f"{tmp_path / 'hr.lmdb'}:000{i + 1}"


def test_lr_on_the_fly_equals_crop_of_whole_image_bicubic(tmp_path, photo):
    write_image(tmp_path / "HR" / "0001.png", np.ascontiguousarray(photo[:130, :150]))  # modcrop -> 128x148
    ds = MultiRootPairedDataset(_opt(str(tmp_path / "HR"), None, gt_size=48, use_hflip=False, use_rot=False))
    hr = torch.from_numpy(photo[:128, :148]).permute(2, 0, 1)
    lr_full = imresize(photo[:128, :148].astype(np.float32) / 255, 1 / SCALE)  # MATLAB bicubic, whole image
    lr_full = torch.from_numpy(np.round(np.clip(lr_full, 0, 1) * 255)).permute(2, 0, 1)
    random.seed(3)
    for _ in range(12):
        s = ds[0]
        gt, lq = torch.round(s["gt"] * 255).to(torch.uint8), torch.round(s["lq"] * 255)
        pos = [
            (y, x)
            for y in range(0, 81, 4)
            for x in range(0, 101, 4)
            if torch.equal(hr[:, y : y + 48, x : x + 48], gt)
        ]
        assert len(pos) == 1
        y, x = pos[0][0] // 4, pos[0][1] // 4
        ref = lr_full[:, y : y + 12, x : x + 12].float()
        assert (lq - ref).abs().max() <= 1
        assert (lq == ref).float().mean() > 0.99


def test_validation_dataset_returns_whole_modcropped_images_with_names(tmp_path, photo):
    hr_dir, lr_dir = tmp_path / "DIV2K_LSDIR_valid_HR", tmp_path / "DIV2K_LSDIR_valid_LR"
    write_image(hr_dir / "0801.png", np.ascontiguousarray(photo[:83, :70]))  # 83x70 -> modcrop 80x68
    write_image(lr_dir / "0801x4.png", np.ascontiguousarray(photo[:20, :17]))
    ds = PairedValidationDataset(
        dict(
            dataroot_gt=str(hr_dir),
            dataroot_lq=str(lr_dir),
            io_backend={"type": "disk"},
            scale=SCALE,
            phase="val",
        )
    )
    s = ds[0]
    assert s["name"] == "0801" and s["gt"].shape == (3, 80, 68) and s["lq"].shape == (3, 20, 17)
    expected = torch.from_numpy(photo[:80, :68]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(s["gt"], expected, rtol=0, atol=1e-7)
    lr_only = PairedValidationDataset(
        dict(dataroot_gt=None, dataroot_lq=str(lr_dir), scale=SCALE, phase="val")
    )
    s = lr_only[0]
    assert s["name"] == "0801" and "gt" not in s and s["lq_path"].endswith("0801x4.png")
    batch = next(iter(DataLoader(lr_only, batch_size=1)))
    assert batch["name"] == ["0801"]


# ------------------------------------------------------------------------------------------- bad data
def test_construction_fails_on_missing_pair_naming_it(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001", "0002"])
    (lr / "0002x4.png").unlink()
    with pytest.raises(DatasetError, match="0002.png"):
        MultiRootPairedDataset(_opt(str(hr), str(lr)))
    with pytest.warns(UserWarning, match="0002.png"):
        assert len(MultiRootPairedDataset(_opt(str(hr), str(lr), bad_image="skip"))) == 1


def test_construction_fails_on_missing_or_empty_folder(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    with pytest.raises(DatasetError, match=f"does not exist: {tmp_path / 'typo'}"):
        MultiRootPairedDataset(_opt(str(tmp_path / "typo"), str(lr)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=f"no images.*{tmp_path / 'empty'}"):
        MultiRootPairedDataset(_opt(str(hr), str(tmp_path / "empty")))


def test_bad_option_values_are_named(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    with pytest.raises(DatasetError, match="bad_image"):
        MultiRootPairedDataset(_opt(str(hr), str(lr), bad_image="ignore"))
    with pytest.raises(DatasetError, match="gt_size"):
        MultiRootPairedDataset(_opt(str(hr), str(lr), gt_size=30))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_unreadable_image_error_names_the_file_even_from_a_worker(tmp_path, photo, num_workers):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    (hr / "0001.png").write_bytes(b"")
    loader = DataLoader(MultiRootPairedDataset(_opt(str(hr), str(lr))), batch_size=1, num_workers=num_workers)
    with pytest.raises(ImageReadError, match=f"{hr / '0001.png'}.*zero bytes|zero bytes.*{hr / '0001.png'}"):
        next(iter(loader))


def test_skip_policy_warns_and_serves_a_good_pair(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001", "0002"])
    data = (lr / "0002x4.png").read_bytes()
    (lr / "0002x4.png").write_bytes(data[: len(data) // 2])
    ds = MultiRootPairedDataset(_opt(str(hr), str(lr), bad_image="skip"))
    random.seed(0)
    with pytest.warns(UserWarning, match="0002x4.png"):
        s = ds[1]
    assert s["lq_path"].endswith("0001x4.png")


def test_size_mismatch_names_both_files(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    write_image(lr / "0001x4.png", np.ascontiguousarray(photo[:19, :24]))
    ds = MultiRootPairedDataset(_opt(str(hr), str(lr)))
    with pytest.raises(PairSizeError) as info:
        ds[0]
    assert str(hr / "0001.png") in str(info.value) and str(lr / "0001x4.png") in str(info.value)


def test_image_smaller_than_patch_is_named(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"], lr_size=(6, 20))
    with pytest.raises(PairSizeError, match="0001x4.png.*too small for gt_size 32"):
        MultiRootPairedDataset(_opt(str(hr), str(lr)))[0]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_load_as_rgb(tmp_path, photo, mode):
    from PIL import Image

    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    img = Image.open(hr / "0001.png").convert(mode)
    img.save(hr / "0001.png")
    s = MultiRootPairedDataset(_opt(str(hr), str(lr)))[0]
    assert s["gt"].shape == (3, 32, 32)


def test_null_options_mean_defaults(tmp_path, photo):
    hr, lr = _make_box_pair(tmp_path, photo, ["0001"])
    ds = MultiRootPairedDataset(
        _opt(
            str(hr),
            str(lr),
            bad_image=None,
            enlarge_ratio=None,
            max_images=None,
            meta_info_file=None,
            filename_tmpl=None,
            io_backend=None,
        )
    )
    assert len(ds) == 1 and ds.bad_image == "error"


def test_lr_on_the_fly_works_with_flips_and_rotations(tmp_path, photo):
    """OpenCV's flips reject strided crops: the on-the-fly LR path must hand out contiguous arrays."""
    write_image(tmp_path / "HR" / "0001.png", np.ascontiguousarray(photo[:130, :150]))
    ds = MultiRootPairedDataset(_opt(str(tmp_path / "HR"), None, gt_size=48, use_hflip=True, use_rot=True))
    random.seed(0)
    for _ in range(16):
        s = ds[0]
        assert s["gt"].shape == (3, 48, 48) and s["lq"].shape == (3, 12, 12)
