"""``ehat upscale`` and the ``ehat`` command: outputs equal the network's, bad files are skipped and
named, inputs are never overwritten, user mistakes are one line with exit status 2."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ehat.cli import main
from ehat.imaging.tiling import forward_tiled

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "model_zoo" / "ehat_tiny_demo_x4.pth"


@pytest.fixture(scope="module")
def demo_model():
    from ehat.checkpoints import load_model

    return load_model(DEMO)


def _photo(path: Path, h: int = 20, w: int = 23) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 0)
    cv2.imwrite(str(path), img[..., ::-1])  # stored BGR: img is RGB
    return img


def _reference(model, img: np.ndarray, tile: int | None = None) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return forward_tiled(model, x, 4, tile, 32 if tile is None else 4)


def test_folder_is_upscaled_and_unreadable_files_are_named_and_skipped(tmp_path, demo_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    img = _photo(src / "a.png")
    (src / "broken.png").write_bytes(b"not a png")
    rc = main(
        ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(DEMO), "--tile", "none", "--quiet"]
    )
    assert rc == 1  # one image skipped
    assert "broken.png" in capsys.readouterr().err
    out = cv2.imread(str(tmp_path / "out" / "a_x4.png"))[..., ::-1]
    ref = _reference(demo_model, img)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(out, ref)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x4.png"]


def test_sixteen_bit_png_and_fixed_tiles(tmp_path, demo_model):
    img = _photo(tmp_path / "b.png", 24, 30)
    rc = main(["upscale", str(tmp_path / "b.png"), "-o", str(tmp_path / "o"), "--model", str(DEMO),
               "--tile", "16", "--tile_overlap", "4", "--bit_depth", "16", "--quiet"])  # fmt: skip
    assert rc == 0
    out = cv2.imread(str(tmp_path / "o" / "b_x4.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (96, 120, 3)
    ref = _reference(demo_model, img, tile=16)[0].clamp(0, 1).mul(65535).round().permute(1, 2, 0).numpy()
    assert np.abs(out[..., ::-1].astype(np.float64) - ref).max() <= 1


def test_an_input_is_never_overwritten(tmp_path):
    img_path = tmp_path / "c.png"
    _photo(img_path)
    before = img_path.read_bytes()
    rc = main(["upscale", str(img_path), "-o", str(tmp_path), "--suffix", "", "--model", str(DEMO), "--quiet",
               "--tile", "none"])  # fmt: skip
    assert rc == 1
    assert img_path.read_bytes() == before


@pytest.mark.parametrize(
    "argv, words",
    [
        (["upscale", "/nonexistent/x.png", "-o", "out"], "no such file"),
        (["export", "no_such_model", "x.onnx"], "neither a checkpoint file nor a model zoo entry"),
        (["submission", "no_such.pth", "--team_id", "35", "--out", "pkg"], "neither a checkpoint"),
        (["upscale", "IMG", "-o", "out", "--bit_depth", "16", "--format", "jpg"], "--bit_depth 16"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys, argv, words):
    if "IMG" in argv:
        _photo(tmp_path / "d.png")
        argv = [str(tmp_path / "d.png") if a == "IMG" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_forwarding_commands_reach_their_tools(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0 and "test_demo.py" in capsys.readouterr().out
    assert main(["convert", str(DEMO), str(tmp_path / "demo.safetensors")]) == 0
    assert (tmp_path / "demo.safetensors").stat().st_size > 0
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0 and "-opt" in capsys.readouterr().out


def test_console_entry_point_is_declared():
    setup = (REPO / "setup.py").read_text()
    assert re.search(r"""["']ehat\s*=\s*ehat\.cli:main["']""", setup)
    assert re.search(r'"export":\s*\[\s*"onnx', setup)
