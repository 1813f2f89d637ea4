"""ehat.precision: which CPUs run bf16/fp16 natively, ``auto`` precision, and the one-line warning every
entry point that offers bf16 on CPU gives once where the CPU emulates it (issue 21): ``ehat
upscale``, ``test_demo.py``, ``test.py`` and training (``train.amp``). The CPU is mocked both ways."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import ehat.precision as precision
from ehat.data.image_io import write_image
from ehat.precision import CpuSupport, _support, emulation_message, resolve_precision, warn_if_emulated
from tests.helpers import REPO_ROOT, matlab_bicubic

CPU = torch.device("cpu")
SAPPHIRE_RAPIDS = {"architecture": "x86_64", "cpu_name": "Intel Xeon", "avx2": True, "avx512_bw": True,
                   "avx512_bf16": True, "amx_bf16": True, "amx_tile": True, "avx512_fp16": True}  # fmt: skip
EPYC_ZEN3 = {
    "architecture": "x86_64",
    "cpu_name": "AMD EPYC",
    "avx2": True,
    "avx512_bw": False,
    "avx512_bf16": False,
}
SKYLAKE_SP = {"architecture": "x86_64", "cpu_name": "Intel Xeon", "avx2": True, "avx512_bw": True}
COOPER_LAKE = {"architecture": "x86_64", "cpu_name": "Intel Xeon", "avx512_bw": True, "avx512_bf16": True}
GRAVITON3 = {
    "architecture": "arm64",
    "cpu_name": "Neoverse-V1",
    "bf16": True,
    "sve_bf16": True,
    "fp16_arith": True,
}
ARMV8 = {"architecture": "arm64", "cpu_name": "Cortex-A72", "bf16": False}


@pytest.mark.parametrize(
    ("caps", "aten", "onednn", "bf16", "fp16"),
    [
        (SAPPHIRE_RAPIDS, "AVX512", "", True, True),
        (COOPER_LAKE, "AVX512", "", True, False),
        (SKYLAKE_SP, "AVX512", "", False, False),
        (EPYC_ZEN3, "AVX2", "", False, False),
        (SAPPHIRE_RAPIDS, "AVX2", "", False, False),  # ATEN_CPU_CAPABILITY=avx2
        (SAPPHIRE_RAPIDS, "AVX512", "AVX2", False, False),  # ONEDNN_MAX_CPU_ISA=AVX2
        (SAPPHIRE_RAPIDS, "AVX512", "avx512_core", False, False),  # AVX-512 without BF16
        (SAPPHIRE_RAPIDS, "AVX512", "avx512_core_bf16", True, False),
        (SAPPHIRE_RAPIDS, "AVX512", "AVX512_CORE_AMX", True, False),
        (SAPPHIRE_RAPIDS, "AVX512", "AVX10_1_512_AMX_FP16", True, True),
        (SAPPHIRE_RAPIDS, "AVX512", "ALL", True, True),
        (GRAVITON3, "SVE256", "", True, True),
        (ARMV8, "DEFAULT", "", False, False),
    ],
)
def test_native_bf16_and_fp16_need_the_instructions_and_no_cap_below_them(caps, aten, onednn, bf16, fp16):
    support = _support(caps, aten, onednn)
    assert (support.bf16, support.fp16) == (bf16, fp16)


def _benchmark_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_script", REPO_ROOT / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("mask", "aten"), [("avx2", "AVX2"), ("avx512_core", "AVX512")])
def test_benchmark_masks_take_bf16_off_the_native_path(mask, aten):
    """A real child process with scripts/benchmark.py's ``--cpu-isa`` environment (how
    docs/performance.md's emulated rows were measured) reports ATen's capability and no native bf16."""
    code = "import json; from ehat.precision import cpu_support as c; s = c(); print(json.dumps([s.capability, s.bf16]))"
    env = dict(os.environ, **_benchmark_script().CPU_ISA_MASKS[mask])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [aten, False]


def test_benchmark_table_names_the_cpu_capability():
    machine = {"device": "cpu", "cpu": "x86_64", "cores": 2, "torch": torch.__version__, "matmul_bf16_tflops": 0.1,
               "matmul_fp32_tflops": 0.1, "cpu_capability": "AVX2", "cpu_isa_mask": "avx2", "native_bf16": False,
               "native_fp16": False}  # fmt: skip
    head = _benchmark_script().markdown_table({"machine": machine, "rows": []}).splitlines()[0]
    assert "ATen capability AVX2 (--cpu-isa avx2), native bf16 no, fp16 no" in head


def _fake(monkeypatch: pytest.MonkeyPatch, caps: dict, aten: str = "AVX512") -> CpuSupport:
    support = _support(caps, aten, "")
    monkeypatch.setattr(precision, "cpu_support", lambda: support)
    monkeypatch.setattr(precision, "_warned", set())
    return support


@pytest.fixture()
def emulating(monkeypatch):
    """A CPU without AVX-512 (the AMD EPYC of issue 21)."""
    return _fake(monkeypatch, EPYC_ZEN3, "AVX2")


@pytest.fixture()
def native(monkeypatch):
    return _fake(monkeypatch, SAPPHIRE_RAPIDS)


def test_emulated_bf16_is_said_once_with_the_expected_slowdown(emulating):
    said: list[str] = []
    first = warn_if_emulated("bf16", CPU, "--precision fp32", said.append)
    assert first is not None and said == [first]
    assert "emulates bf16" in first and f"~{precision.SLOWDOWN['bf16', False]} slower" in first
    assert "--precision fp32" in first and "\n" not in first
    assert warn_if_emulated("bf16", CPU, "--precision fp32", said.append) is None
    assert len(said) == 1


def test_avx512_without_bf16_gets_its_own_smaller_figure(monkeypatch):
    _fake(monkeypatch, SKYLAKE_SP)
    message = emulation_message("bf16", CPU, "fp32")
    assert message is not None and f"~{precision.SLOWDOWN['bf16', True]} slower" in message


def test_fp16_gets_its_own_figure_where_only_bf16_is_native(monkeypatch):
    """AVX-512 with BF16 but without FP16 (Cooper Lake; Zen 4): bf16 is silent, fp16 is warned about."""
    _fake(monkeypatch, COOPER_LAKE)
    assert emulation_message("bf16", CPU, "fp32") is None
    message = emulation_message("fp16", CPU, "train.amp: null")
    assert message is not None and "emulates fp16" in message
    assert f"~{precision.SLOWDOWN['fp16', True]} slower" in message


def test_native_bf16_and_fp32_say_nothing(native):
    said: list[str] = []
    assert warn_if_emulated("bf16", CPU, "fp32", said.append) is None
    assert warn_if_emulated("fp32", CPU, "fp32", said.append) is None
    assert said == []


def test_auto_picks_fp32_where_bf16_is_emulated(emulating):
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # an explicit choice is kept (and warned about)


def test_auto_picks_bf16_where_it_is_native(native):
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_asks_for_bf16_without_emulation(monkeypatch, supported, expected):
    calls = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        calls.append(including_emulation)
        return supported

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert calls == [False]


# ------------------------------------------------------------------------------------------ ehat upscale
DEMO = REPO_ROOT / "model_zoo" / "ehat_tiny_demo_x4.pth"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture()
def upscale_log():
    handler = _Lines()
    logger = logging.getLogger("ehat.upscale")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def _upscale(tmp_path: Path, *flags: str) -> tuple[int, Path]:
    from ehat.cli import main

    src = tmp_path / "in"
    if not src.is_dir():
        src.mkdir()
        rng = np.random.default_rng(0)
        for name in ("a", "b"):
            cv2.imwrite(
                str(src / f"{name}.png"),
                cv2.GaussianBlur(rng.integers(0, 256, (16, 18, 3), np.uint8), (3, 3), 0),
            )
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    rc = main(["upscale", str(src), "-o", str(out), "--model", str(DEMO), "--device", "cpu", "--tile", "none",
               *flags])  # fmt: skip
    return rc, out


def _emulation_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "emulates bf16" in line]


def test_upscale_bf16_on_an_emulating_cpu_says_so_once(tmp_path, emulating, upscale_log):
    assert _upscale(tmp_path, "--bf16")[0] == 0  # two images, one message
    assert len(_emulation_lines(upscale_log)) == 1 and "--precision fp32" in _emulation_lines(upscale_log)[0]


def test_upscale_bf16_on_a_native_cpu_says_nothing(tmp_path, native, upscale_log):
    assert _upscale(tmp_path, "--precision", "bf16")[0] == 0
    assert _emulation_lines(upscale_log) == [] and any(", bf16: 2 image(s)" in line for line in upscale_log)


def test_upscale_auto_precision_follows_the_cpu(tmp_path, monkeypatch, upscale_log):
    _fake(monkeypatch, EPYC_ZEN3, "AVX2")
    rc, auto_out = _upscale(tmp_path, "--precision", "auto")
    _, fp32_out = _upscale(tmp_path)
    assert rc == 0 and _emulation_lines(upscale_log) == []
    for name in ("a_x4.png", "b_x4.png"):  # auto ran fp32: the very same pixels as the default
        assert np.array_equal(cv2.imread(str(auto_out / name)), cv2.imread(str(fp32_out / name)))
    _fake(monkeypatch, SAPPHIRE_RAPIDS)
    upscale_log.clear()
    assert _upscale(tmp_path, "--precision", "auto")[0] == 0
    assert any(", bf16: 2 image(s)" in line for line in upscale_log)


def test_upscale_fp16_stays_cuda_only(tmp_path, native, capsys):
    assert _upscale(tmp_path, "--precision", "fp16")[0] == 2
    assert "--fp16 needs CUDA" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ test_demo.py
def _demo_run(tmp_path: Path, photo: np.ndarray, weights: Path, *flags: str) -> str:
    from ehat.evaluation.ntire import main

    data = tmp_path / "data"
    for i, name in enumerate(("0801", "0802")):
        hr = np.ascontiguousarray(photo[40 * i : 40 * i + 48, :48])
        write_image(data / "DIV2K_LSDIR_valid_HR" / f"{name}.png", hr)
        write_image(data / "DIV2K_LSDIR_valid_LR" / f"{name}x4.png", matlab_bicubic(hr, 1 / 4))
    rc = main(["--data_dir", str(data), "--save_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "res"),
               "--model_id", "0", "--model_path", str(weights), "--device", "cpu", "--skip_complexity", *flags])  # fmt: skip
    assert rc == 0
    return (tmp_path / "res" / "NTIRE2024-EfficientSR.log").read_text()


def test_test_demo_bf16_on_an_emulating_cpu_says_so_once(tmp_path, photo, rlfn_weights, emulating):
    log = _demo_run(tmp_path, photo, rlfn_weights, "--bf16")
    assert log.count("emulates bf16") == 1 and "drop --bf16" in log


def test_test_demo_bf16_on_a_native_cpu_says_nothing(tmp_path, photo, rlfn_weights, native):
    assert "emulates" not in _demo_run(tmp_path, photo, rlfn_weights, "--bf16")


# ------------------------------------------------------------------------------------------ test.py
def _test_py(tmp_path: Path, photo: np.ndarray, precision_key: str) -> str:
    from ehat.archs.rlfn_arch import RLFN
    from ehat.evaluation.benchmark import load_test_options, run_options

    write_image(tmp_path / "HR" / "a.png", photo[:48, :52])
    write_image(tmp_path / "LR" / "ax4.png", np.ascontiguousarray(photo[:48:4, :52:4]))
    torch.manual_seed(0)
    torch.save(RLFN(feature_channels=8, mid_channels=8, num_blocks=1).state_dict(), tmp_path / "w.pth")
    opt = {
        "name": "t",
        "scale": 4,
        "num_gpu": 0,
        "precision": precision_key,
        "datasets": {
            "test_1": {
                "name": "Tiny",
                "dataroot_gt": str(tmp_path / "HR"),
                "dataroot_lq": str(tmp_path / "LR"),
            }
        },
        "network_g": {"type": "RLFN", "feature_channels": 8, "mid_channels": 8, "num_blocks": 1},
        "path": {"pretrain_network_g": str(tmp_path / "w.pth")},
    }
    (tmp_path / "opt.yml").write_text(yaml.safe_dump(opt))
    run_options(load_test_options(tmp_path / "opt.yml"), tmp_path / "results")
    return (tmp_path / "results" / "t" / "test_t.log").read_text()


def test_test_py_bf16_on_an_emulating_cpu_says_so_once(tmp_path, photo, emulating):
    log = _test_py(tmp_path, photo, "bf16")
    assert log.count("emulates bf16") == 1 and "precision: fp32" in log


def test_test_py_bf16_on_a_native_cpu_says_nothing(tmp_path, photo, native):
    assert "emulates" not in _test_py(tmp_path, photo, "bf16")


# ------------------------------------------------------------------------------------------ training
def test_training_amp_check_says_once_on_an_emulating_cpu(emulating, caplog):
    from ehat.train.preflight import check_amp

    log = logging.getLogger("ehat.test_cpu_precision")
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert check_amp("bf16", CPU, log) is not None
        assert check_amp("bf16", CPU, log) is None
        assert check_amp(None, CPU, log) is None
    assert [r.getMessage().count("train.amp: null") for r in caplog.records] == [1]


def test_training_amp_check_is_silent_on_a_native_cpu(native, caplog):
    from ehat.train.preflight import check_amp

    with caplog.at_level(logging.WARNING):
        assert check_amp("bf16", CPU, logging.getLogger("ehat.test_cpu_precision")) is None
    assert caplog.records == []


@pytest.mark.parametrize("amp", ["bf16", None])
def test_training_start_says_once_that_the_cpu_emulates_bf16(tmp_path, emulating, amp):
    from ehat.options.train import validate_options
    from ehat.train.trainer import Trainer
    from tests.helpers import make_data, tiny_options

    opt = tiny_options(tmp_path, make_data(tmp_path / "data"), **{"train.amp": amp, "train.total_iter": 2})
    out = Trainer(validate_options(opt)).run()
    (log,) = out["root"].glob("train_tiny_*.log")
    assert log.read_text().count("emulates bf16") == (1 if amp else 0)
