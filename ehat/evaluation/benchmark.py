"""``test.py -opt options/test/xxx.yml``: BasicSR-style evaluation on benchmark sets (Set5, Set14, ...).

Reads BasicSR's test options (``name``, ``scale``, ``num_gpu``, ``datasets.test_*`` with
``dataroot_gt``/``dataroot_lq``, ``network_g``, ``path.pretrain_network_g``, ``val.metrics``) and
runs them through the same code as ``test_demo.py`` (:mod:`ehat.evaluation.protocol`). Unknown
keys are errors that name the key. Results go to ``results/<name>/``: SR images per set, a CSV per
set and a log.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ehat.evaluation.protocol import EvalError, EvalOptions, evaluate_set, file_logger, list_set, set_summary

_TOP_KEYS = {"name", "model_type", "scale", "num_gpu", "device", "manual_seed", "datasets", "network_g", "path",
             "val", "tile", "data_range", "precision"}  # fmt: skip
_DATASET_KEYS = {
    "name",
    "type",
    "dataroot_gt",
    "dataroot_lq",
    "io_backend",
    "filename_tmpl",
    "phase",
    "scale",
}
_PATH_KEYS = {"pretrain_network_g", "param_key_g", "strict_load_g", "results_root"}
_VAL_KEYS = {"save_img", "suffix", "self_ensemble", "metrics", "pbar"}
_TILE_KEYS = {"tile_size", "tile_pad"}
_METRIC_KEYS = {"type", "crop_border", "test_y_channel", "better"}


class OptionsError(ValueError):
    """A test options file is wrong; the message names the key."""


def _check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in section:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            raise OptionsError(f"{where}{key}: unknown option.{extra} Allowed: {', '.join(sorted(allowed))}")


def load_test_options(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a BasicSR test options file (``yaml.safe_load``)."""
    with open(path, encoding="utf-8") as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict):
        raise OptionsError(f"{path}: expected a mapping of options at the top level")
    _check_keys(opt, _TOP_KEYS, "")
    for key in ("name", "datasets", "network_g"):
        if key not in opt:
            raise OptionsError(f"{path}: '{key}' is missing")
    for ds_key, ds in opt["datasets"].items():
        _check_keys(ds, _DATASET_KEYS, f"datasets.{ds_key}.")
        if "dataroot_lq" not in ds:
            raise OptionsError(f"datasets.{ds_key}.dataroot_lq is missing")
    _check_keys(opt.get("path") or {}, _PATH_KEYS, "path.")
    _check_keys(opt.get("val") or {}, _VAL_KEYS, "val.")
    _check_keys(opt.get("tile") or {}, _TILE_KEYS, "tile.")
    for m_key, m in ((opt.get("val") or {}).get("metrics") or {}).items():
        _check_keys(m, _METRIC_KEYS, f"val.metrics.{m_key}.")
        if m.get("type") not in ("calculate_psnr", "calculate_ssim"):
            raise OptionsError(
                f"val.metrics.{m_key}.type: only calculate_psnr / calculate_ssim are supported"
            )
    return opt


def _metric_field(m: Mapping[str, Any]) -> str:
    base = "psnr" if m["type"] == "calculate_psnr" else "ssim"
    return f"{base}_y" if m.get("test_y_channel", False) else base


def _device(opt: Mapping[str, Any]) -> torch.device:
    choice = str(opt.get("device", "auto"))
    if opt.get("num_gpu", "auto") == 0:
        choice = "cpu"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError("the options ask for CUDA but it is not available: set num_gpu: 0 or device: cpu")
    return torch.device(choice)


def run_options(
    opt: Mapping[str, Any], results_root: str | os.PathLike = "results"
) -> dict[str, dict[str, float]]:
    """Evaluate every dataset of ``opt``; return {dataset name: {metric name: mean}}."""
    from ehat.archs import build_network
    from ehat.checkpoints import load_weights

    name = opt["name"]
    scale = int(opt.get("scale", 4))
    out_root = Path(results_root) / name
    val = opt.get("val") or {}
    metrics = val.get("metrics") or {
        "psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True},
        "ssim": {"type": "calculate_ssim", "crop_border": scale, "test_y_channel": True},
    }
    borders = {int(m.get("crop_border", scale)) for m in metrics.values()}
    if borders != {scale}:
        raise OptionsError(f"val.metrics: crop_border must equal scale ({scale}); got {sorted(borders)}")
    fields = {key: _metric_field(m) for key, m in metrics.items()}
    summary: dict[str, dict[str, float]] = {}
    with file_logger(f"ehat.test.{name}", out_root / f"test_{name}.log") as log:
        device = _device(opt)
        model = build_network(dict(opt["network_g"]))
        weights = (opt.get("path") or {}).get("pretrain_network_g")
        if weights:
            load_weights(model, weights, (opt.get("path") or {}).get("param_key_g", "auto"))
        else:
            log.warning("path.pretrain_network_g is not set: evaluating a randomly initialised network")
        model.eval().to(device)
        data_range = float(opt.get("data_range", 255.0 if type(model).__name__ == "RLFN" else 1.0))
        tile = opt.get("tile") or {}
        opts = EvalOptions(
            device=device,
            data_range=data_range,
            scale=scale,
            tile=tile.get("tile_size"),
            tile_overlap=int(tile.get("tile_pad", 32)),
            self_ensemble=bool(val.get("self_ensemble", False)),
            precision=str(opt.get("precision", "fp32")),
            save_images=bool(val.get("save_img", False)),
            ssim="ssim" in fields.values(),
        )
        log.info(
            "%s: %s on %s, weights %s, data range [0, %g]",
            name,
            opt["network_g"],
            device,
            weights,
            data_range,
        )
        for ds in opt["datasets"].values():
            ds_name = ds.get("name", Path(ds["dataroot_lq"]).name)
            items, notes = list_set(ds.get("dataroot_gt"), ds["dataroot_lq"], scale)
            for note in notes:
                log.warning("%s: %s", ds_name, note)
            res = evaluate_set(model, items, opts, out_root / ds_name, ds_name, log)
            s = set_summary(res)
            means = {key: s.get(f"{ds_name}_ave_{f}") for key, f in fields.items()}
            summary[ds_name] = means
            log.info("# Validation %s: %s", ds_name,
                     "; ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in means.items()))  # fmt: skip
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``test.py``."""
    p = argparse.ArgumentParser("test.py", description="Evaluate a BasicSR-style test options file.")
    p.add_argument("-opt", "--opt", required=True, help="path to options/test/*.yml")
    p.add_argument(
        "--results_root",
        default=None,
        help="where results/<name>/ goes (default: path.results_root or results)",
    )
    args = p.parse_args(argv)
    try:
        opt = load_test_options(args.opt)
        root = args.results_root or (opt.get("path") or {}).get("results_root") or "results"
        run_options(opt, root)
    except (OptionsError, EvalError, OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
