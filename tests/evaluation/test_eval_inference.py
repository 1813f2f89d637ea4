"""Inference of one image: the uint8 <-> tensor conversions, the tile policy, and the out-of-memory
retry whose log names the tile that actually failed (simulated on CPU)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ehat.evaluation.inference import infer
from ehat.evaluation.protocol import EvalOptions
from ehat.imaging.convert import to_tensor, to_uint8
from ehat.imaging.tiling import TilePolicy

CPU = torch.device("cpu")


def _oom_above(side: int, seen: list[int]):
    """A x4 model that runs out of memory on inputs wider than ``side``; records the widths it got."""

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[-1])
        if x.shape[-1] > side:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return F.interpolate(x, scale_factor=4, mode="nearest")

    return model


def _retries(text: str) -> list[tuple[str, str]]:
    return re.findall(
        r"out of memory on CPU with (whole image|tiles of \d+); retrying with (tiles of \d+)", text
    )


def test_oom_retry_log_names_each_tile_that_failed(caplog):
    seen: list[int] = []
    opts = EvalOptions(device=CPU, data_range=1.0, tiles=TilePolicy.whole(overlap=8))
    with caplog.at_level(logging.WARNING, logger="oom"):
        (y, _), tile = infer(
            _oom_above(100, seen), torch.rand(1, 3, 300, 280), opts, logging.getLogger("oom"), "big"
        )
    assert tile == 64 and y.shape == (1, 3, 1200, 1120)
    # tiles as large as the image (512) are not tried: they would be the whole image again
    assert _retries(caplog.text) == [("whole image", "tiles of 256"), ("tiles of 256", "tiles of 128"),
                                     ("tiles of 128", "tiles of 64")]  # fmt: skip
    assert "full size" not in caplog.text


def test_oom_retry_under_tile_auto_names_the_chosen_tile(caplog):
    seen: list[int] = []
    chooser_calls = []

    def chooser(h: int, w: int) -> tuple[int | None, str]:
        chooser_calls.append((h, w))
        return 96, "tile 96 (predicted peak ...)"

    opts = EvalOptions(device=CPU, data_range=1.0, tiles=TilePolicy.auto(overlap=4, chooser=chooser))
    with caplog.at_level(logging.INFO, logger="oom"):
        (y, _), tile = infer(
            _oom_above(70, seen), torch.rand(1, 3, 200, 150), opts, logging.getLogger("oom"), "a"
        )
    assert chooser_calls == [(200, 150)] and tile == 64 and y.shape == (1, 3, 800, 600)
    assert _retries(caplog.text) == [("tiles of 96", "tiles of 64")]
    assert "a: tile 96 (predicted peak" in caplog.text
    assert 96 in seen and max(seen[seen.index(64) :]) == 64  # after the retry only 64-wide tiles ran


def test_oom_with_a_tile_no_smaller_candidate_is_raised():
    opts = EvalOptions(device=CPU, data_range=1.0, tile=64, tile_overlap=8)
    with pytest.raises(torch.OutOfMemoryError):
        infer(_oom_above(10, []), torch.rand(1, 3, 80, 80), opts, logging.getLogger("oom"), "x")


def test_uint8_tensor_round_trip_matches_numpy(photo):
    img = photo[:20, :30]
    for data_range in (1.0, 255.0):
        x = to_tensor(img, data_range, CPU)
        assert x.shape == (1, 3, 20, 30) and x.dtype == torch.float32
        np.testing.assert_allclose(
            x[0].permute(1, 2, 0).numpy(), img.astype(np.float32) * data_range / 255, rtol=1e-6
        )
        assert np.array_equal(to_uint8(x, data_range), img)
    y = torch.tensor([-0.2, 0.5, 0.50196, 1.7]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    expected = np.round(np.clip([-0.2, 0.5, 0.50196, 1.7], 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(to_uint8(y, 1.0)[0, :, 0], expected)


def test_to_uint8_leaves_the_model_output_untouched():
    y = torch.tensor([[[[2.0, -1.0]]]]).expand(1, 3, 1, 2).contiguous()
    before = y.clone()
    to_uint8(y, 1.0)
    assert torch.equal(y, before)


@pytest.mark.parametrize(
    ("setting", "mode", "label", "size"),
    [(None, "whole", "none", None), ("none", "whole", "none", None), (64, "fixed", 64, 64), ("auto", "auto", "auto", None)],
)  # fmt: skip
def test_tile_policy_from_the_command_line_setting(setting, mode, label, size):
    p = TilePolicy.from_setting(setting, overlap=12)
    assert (p.mode, p.label, p.size, p.overlap) == (mode, label, size, 12)
    assert p.choose(500, 400) == (size, None)


def test_tile_policy_refuses_nonsense():
    for bad in (dict(mode="fixed"), dict(mode="whole", size=8), dict(mode="fixed", size=0), dict(overlap=-1),
                dict(mode="tiles")):  # fmt: skip
        with pytest.raises(ValueError):
            TilePolicy(**bad)


def test_eval_options_hold_one_tile_policy():
    opts = EvalOptions(device=CPU, data_range=1.0, tile=48, tile_overlap=6)  # test.py's shorthand
    assert opts.tiles == TilePolicy.fixed(48, 6)
    assert EvalOptions(device=CPU, data_range=1.0).tiles == TilePolicy.whole()
    with pytest.raises(ValueError, match="repeat >= 1"):
        EvalOptions(device=CPU, data_range=1.0, repeat=0)
    with pytest.raises(ValueError, match="precision"):
        EvalOptions(device=CPU, data_range=1.0, precision="fp8")
