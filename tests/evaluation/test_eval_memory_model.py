"""Memory model: measuring one call's peak, fitting it, predicting unseen sizes, choosing tiles."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from torch import nn

from ehat.archs import create_model
from ehat.evaluation import memory_model as mm
from ehat.evaluation.memory import MemoryMeasureError, available_bytes, measure_peak_growth
from ehat.imaging.tiling import forward_tiled
from tests.helpers import matlab_bicubic

CPU = torch.device("cpu")
MIB = 1024**2


def _can_measure_cpu() -> bool:
    try:
        measure_peak_growth(lambda: None, CPU)
        return True
    except MemoryMeasureError:
        return False


needs_rss = pytest.mark.skipif(
    not _can_measure_cpu(), reason="needs Linux /proc/self/clear_refs (VmHWM reset)"
)


@needs_rss
def test_measured_peak_growth_sees_a_known_allocation():
    def allocate():
        a = torch.ones(64 * MIB)  # 256 MiB, touched
        b = a + 1  # another 256 MiB while a is alive
        del a, b

    grown = measure_peak_growth(allocate, CPU)
    # RSS growth counts pages newly made resident: a few pages of the 512 MiB can come from heap
    # memory the process already had resident (seen: 64 KiB short), so allow 1 MiB below.
    assert 511 * MIB <= grown < 512 * MIB + 48 * MIB


@needs_rss
def test_measured_peak_growth_is_not_hidden_by_memory_freed_earlier():
    torch.ones(64 * MIB).add_(1)  # freed at once: malloc may keep these pages resident
    grown = measure_peak_growth(lambda: torch.ones(64 * MIB).add_(1), CPU)
    assert grown >= 240 * MIB


def test_fit_line_recovers_a_line_exactly():
    points = [(p, int(5e6 + 1234.5 * p)) for p in (1024, 2304, 4096)]
    a, b, c = mm.fit_line(points)
    assert (a, b, c) == (pytest.approx(5e6, abs=2), pytest.approx(1234.5, rel=1e-6), 0.0)


def test_fit_line_turns_quadratic_for_a_whole_map_attention():
    # four heads of N x N fp32 scores: 16 * p**2 bytes on top of a linear part
    points = [(p, int(1e6 + 1000 * p + 16 * p * p)) for p in (1024, 2304, 4096)]
    a, b, c = mm.fit_line(points)
    assert c == pytest.approx(16, rel=1e-3) and b == pytest.approx(1000, rel=0.05)


@needs_rss
def test_fit_probes_further_when_chunked_attention_is_quadratic_only_at_small_sizes():
    """(min(N, 4096) x N) fp32 scores: quadratic below 4096 pixels, linear (16 KiB/px) beyond."""

    def chunked_scores(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2] * x.shape[-1]
        return torch.empty(min(n, 4096), n).fill_(1.0).sum()

    fit = mm.fit_memory_model(chunked_scores, CPU, 16, sizes=(32, 48, 64))
    assert len(fit.probes) > 3 and fit.per_pixel_sq == 0
    truth = 4 * 4096 * 40_000
    assert abs(fit.predict(40_000) / truth - 1) < 0.1


@needs_rss
def test_position_attention_memory_is_linear_in_the_pixels():
    from ehat.archs.dual_attention import PositionAttention

    pam = PositionAttention(32)
    small, large = torch.rand(1, 32, 64, 64), torch.rand(1, 32, 128, 128)  # 4x the pixels
    with torch.inference_mode():
        pam.attend(small)
        grown = [measure_peak_growth(lambda x=x: pam.attend(x), CPU) for x in (small, large)]
    # an N x N score matrix would need 4 * 16384**2 B = 1 GiB at 128x128 (16x the 64x64 one)
    assert grown[1] < 64 * MIB and grown[1] < 8 * max(grown[0], 1 * MIB)


def test_fit_line_keeps_noisy_linear_data_linear():
    points = [(1024, 15_228_928), (2304, 29_896_704), (4096, 61_583_360)]  # ehat_tiny, measured here
    assert mm.fit_line(points)[2] == 0.0


def test_padded_pixels_round_each_side_up_to_the_window():
    assert mm.padded_pixels(339, 510, 16) == 352 * 512
    assert mm.padded_pixels(64, 64, 16) == 64 * 64


def _fit(base_mib: float, per_pixel: float) -> mm.MemoryFit:
    return mm.MemoryFit(base_mib * MIB, per_pixel, 0.0, "synthetic", ())


def test_choose_tile_returns_none_when_the_image_fits():
    fit = _fit(100, 20_000)
    need = mm.with_margin(fit.predict(mm.padded_pixels(339, 510, 16)))
    assert mm.choose_tile_from_fit(fit, 339, 510, need + 1, 32, 16, 4).tile is None


def test_choose_tile_is_the_largest_window_multiple_within_the_budget():
    fit, h, w, overlap, mult, scale = _fit(300, 60_000), 339, 510, 32, 16, 4
    budget = 4 * 1024**3
    choice = mm.choose_tile_from_fit(fit, h, w, budget, overlap, mult, scale)
    # closed form: margin * (base + per_pixel * t^2 + whole-image buffers) + slack <= budget
    buffers = 4 * (3 * h * w + 2 * 3 * h * w * scale**2 + h * w * scale**2)
    room = (budget - mm.SAFETY_BYTES) / mm.SAFETY_FACTOR - fit.base - buffers
    t_max = int(math.isqrt(int(room / fit.per_pixel)) // mult * mult)
    assert choice.tile == t_max and choice.tile % mult == 0 and choice.tile >= 2 * overlap
    assert mm.with_margin(choice.predicted_bytes) <= budget
    assert f"tile {t_max} (predicted peak" in choice.describe() and "budget 4.00 GiB" in choice.describe()


def test_choose_tile_never_goes_below_twice_the_overlap():
    fit = _fit(300, 60_000)
    with pytest.raises(mm.MemoryBudgetError, match=r"budget of 0\.50 GiB.*smallest tile \(64 px"):
        mm.choose_tile_from_fit(fit, 339, 510, 0.5 * 1024**3, 32, 16, 4)


def test_parse_budget_accepts_auto_and_gib_and_names_the_flag_otherwise():
    assert mm.parse_budget("auto") is None and mm.parse_budget("4") == 4.0 and mm.parse_budget("0.5") == 0.5
    for bad in ("0", "-1", "four", "nan"):
        with pytest.raises(ValueError, match="--mem_budget"):
            mm.parse_budget(bad)


def test_auto_budget_is_a_fraction_of_memavailable():
    if not os.path.isfile("/proc/meminfo"):
        pytest.skip("needs /proc/meminfo")
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    budget, how = mm.resolve_budget(None, CPU)
    assert budget == pytest.approx(mm.AUTO_BUDGET_FRACTION * avail, rel=0.05)
    assert "MemAvailable" in how
    assert available_bytes(CPU) == pytest.approx(avail, rel=0.05)
    assert mm.resolve_budget(2.0, CPU)[0] == 2 * 1024**3


class _Upsampler(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 48, 3, padding=1)
        self.window_size = width
        self.upscale = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.body(x), 4)


@needs_rss
def test_fits_are_cached_per_model_config(tmp_path):
    cache = tmp_path / "memory_model_cache.json"
    model = _Upsampler()
    fit, cached = mm.cached_memory_fit(model, model, CPU, cache, sizes=(32, 48, 64))
    assert not cached and len(fit.probes) == 3
    again, cached = mm.cached_memory_fit(model, model, CPU, cache, sizes=(32, 48, 64))
    assert cached and again == fit
    assert len(json.loads(cache.read_text())) == 1
    _, cached = mm.cached_memory_fit(model, model, CPU, cache, precision="bf16", sizes=(32, 48, 64))
    assert not cached and len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")
    assert mm.cached_memory_fit(model, model, CPU, cache, sizes=(32, 48, 64))[1] is False


def test_model_key_follows_the_architecture_config():
    a, b = create_model("ehat_tiny"), create_model("ehat_tiny", embed_dim=36, num_heads=[6, 6])
    assert mm.model_key(a, CPU, "fp32", None) != mm.model_key(b, CPU, "fp32", None)
    assert mm.model_key(a, CPU, "fp32", None) == mm.model_key(create_model("ehat_tiny"), CPU, "fp32", None)
    assert mm.model_key(a, CPU, "fp32", None) != mm.model_key(a, CPU, "bf16", None)


@pytest.fixture(scope="module")
def tiny_and_fit():
    """ehat_tiny (with dual attention: PAM over the whole map) and its fit on 32/48/64 px probes."""
    if not _can_measure_cpu():
        pytest.skip("needs Linux /proc/self/clear_refs (VmHWM reset)")
    torch.manual_seed(0)
    model = create_model("ehat_tiny").eval()
    return model, mm.fit_memory_model(model, CPU, model.window_size, sizes=(32, 48, 64))


PREDICTION_TOLERANCE = 0.3  # measured peak / prediction within 1 +- 0.3 on sizes 1.5-2x beyond the probes


PREDICTION_SCRIPT = """
import json, torch
import ehat
from ehat.archs import create_model
from ehat.evaluation import memory_model as mm
from ehat.evaluation.memory import measure_peak_growth
cpu = torch.device("cpu")
torch.manual_seed(0)
model = create_model("ehat_tiny").eval()
fit = mm.fit_memory_model(model, cpu, model.window_size, sizes=(32, 48, 64))
x = torch.rand(1, 3, 88, 104)  # 11 x 13 windows: 2.2x the largest probe's pixels
with torch.inference_mode():
    first = measure_peak_growth(lambda: model(x), cpu)
    steady = measure_peak_growth(lambda: model(x), cpu)
print(json.dumps({"sq": fit.per_pixel_sq, "first": first, "steady": steady,
                  "predicted": fit.predict(mm.padded_pixels(88, 104, 8))}))
"""


@pytest.mark.slow
def test_prediction_is_close_to_the_measured_peak_on_an_unfitted_size(tiny_and_fit):
    """Fit and measurement in a fresh process: RSS growth depends on what malloc already holds,
    and after the rest of the suite it does not reflect this model alone (seen in CI: +42%)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", PREDICTION_SCRIPT], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["sq"] == 0  # PAM runs SDPA's fused kernel: memory linear in the pixels
    # The first call at a new size also pays one-time kernel set-up; the margin must cover it, and
    # the steady state must match the model.
    assert abs(r["steady"] / r["predicted"] - 1) < PREDICTION_TOLERANCE, r
    assert r["first"] < mm.with_margin(r["predicted"]), r


@pytest.mark.slow
def test_chosen_tile_keeps_the_measured_peak_under_the_budget(tiny_and_fit):
    model, fit = tiny_and_fit
    h, w = 96, 136
    whole = mm.predict_peak(fit, h, w, None, 8, 4)
    budget = mm.with_margin(mm.predict_peak(fit, h, w, 48, 8, 4))  # room for 48 px tiles, not the whole
    assert mm.with_margin(whole) > budget
    assert mm.choose_tile(model, h, w, budget, overlap=8, fit=fit) == 48
    x = torch.rand(1, 3, h, w)
    with torch.inference_mode():
        measured = measure_peak_growth(lambda: forward_tiled(model, x, 4, 48, 8), CPU)
    assert measured <= budget
    assert mm.choose_tile(model, 40, 40, budget, overlap=8, fit=fit) is None


def _demo_set(root, photo, hr_size=(256, 288)):
    import numpy as np

    from ehat.data.image_io import write_image

    h, w = hr_size
    hr = np.ascontiguousarray(photo[:h, :w])
    write_image(root / "DIV2K_LSDIR_valid_HR" / "0801.png", hr)
    write_image(root / "DIV2K_LSDIR_valid_LR" / "0801x4.png", matlab_bicubic(hr, 1 / 4))


def _demo(tmp_path, *extra):
    from ehat.archs.rlfn_arch import RLFN
    from ehat.evaluation.ntire import main

    torch.manual_seed(0)
    weights = tmp_path / "rlfn.pth"
    torch.save(RLFN(feature_channels=46, mid_channels=48, num_blocks=4).state_dict(), weights)
    args = ["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "out"), "--results_dir",
            str(tmp_path / "res"), "--model_id", "0", "--model_path", str(weights), "--device", "cpu",
            "--skip_complexity", *extra]  # fmt: skip
    status = main(args)
    log = (tmp_path / "res" / "NTIRE2024-EfficientSR.log").read_text()
    return status, log, json.loads((tmp_path / "res" / "results.json").read_text())["00_RLFN_baseline"]


@pytest.mark.slow
def test_demo_tile_auto_uses_the_memory_model_and_the_budget(tmp_path, photo):
    from ehat.zoo import ZOO, build_model

    _demo_set(tmp_path / "data", photo)  # LR 72 x 64
    # A cached fit of 600 KiB per LR pixel: under 1 GiB, 32 px tiles fit (600 MiB), 40 px do not.
    key = mm.model_key(build_model(ZOO[0], None), CPU, "fp32", None)
    fit = {"base": 0.0, "per_pixel": 600 * 1024.0, "per_pixel_sq": 0.0, "kind": "synthetic", "probes": []}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "memory_model_cache.json").write_text(json.dumps({key: fit}))
    status, log, r = _demo(tmp_path, "--tile", "auto", "--mem_budget", "1", "--tile_overlap", "8")
    assert status == 0 and r["tile"] == "auto" and len(r["valid_psnr"]) == 1
    assert "memory model (synthetic, cached)" in log and "budget 1 GiB (--mem_budget)" in log
    assert "0801: tile 32 (predicted peak" in log and "<= budget 1.00 GiB" in log
    rows = (tmp_path / "out" / "00_RLFN_baseline" / "valid.csv").read_text().splitlines()
    assert rows[1].split(",")[7] == "32"


@needs_rss
def test_demo_default_is_the_challenge_protocol_without_probes(tmp_path, photo):
    _demo_set(tmp_path / "data", photo, (128, 144))
    status, log, r = _demo(tmp_path)
    assert status == 0 and r["tile"] == "none" and len(r["valid_psnr"]) == 1
    assert "memory model" not in log and not (tmp_path / "out" / "memory_model_cache.json").exists()


def test_demo_tile_auto_probes_and_keeps_whole_images_that_fit(tmp_path, photo):
    _demo_set(tmp_path / "data", photo, (128, 144))
    status, log, r = _demo(tmp_path, "--tile", "auto", "--mem_budget", "2")
    assert status == 0 and r["tile"] == "auto" and len(r["valid_psnr"]) == 1
    assert "memory model (CPU peak RSS growth, probed 3 sizes" in log
    assert "0801: whole image (predicted peak" in log
    assert json.loads((tmp_path / "out" / "memory_model_cache.json").read_text())


def test_demo_rejects_a_bad_budget_or_tile(capsys):
    from ehat.evaluation.ntire import build_parser

    for bad in (["--mem_budget", "lots"], ["--tile", "-3"], ["--tile", "big"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
    assert "--tile must be a positive number" in capsys.readouterr().err
    assert build_parser().parse_args(["--tile", "none"]).tile == "none"
    assert build_parser().parse_args(["--tile", "64"]).tile == 64
