#!/usr/bin/env python
"""EHAT-L (random weights) on a 510x339 LR input on CPU under a memory budget.

Fits the memory model, reports the chosen tile and the predicted peak, then runs the tiled
forward and reports each tile's time and the measured peak RSS growth.

  python scripts/measure_big_image.py --budget 4
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import ehat  # noqa: F401
from ehat.archs import create_model
from ehat.evaluation import memory_model as mm
from ehat.evaluation.memory import available_bytes, measure_peak_growth, read_status_kib
from ehat.imaging.tiling import forward_tiled, tile_starts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=4.0, help="GiB inference may add (default 4)")
    p.add_argument("--size", type=int, nargs=2, default=(339, 510), metavar=("H", "W"), help="LR size")
    p.add_argument("--overlap", type=int, default=32)
    args = p.parse_args()
    h, w = args.size
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}", flush=True)
    print(f"MemAvailable {available_bytes(torch.device('cpu')) / 2**30:.2f} GiB", flush=True)
    model = create_model("ehat_l").eval().requires_grad_(False)
    t = time.time()
    fit = mm.fit_memory_model(model, torch.device("cpu"), 16)
    print(f"fit {fit} took {time.time() - t:.1f} s", flush=True)
    whole = mm.predict_peak(fit, h, w, None, 16, 4)
    print(
        f"untiled: predicted peak growth {whole / 2**30:.2f} GiB ({mm.with_margin(whole) / 2**30:.2f} with margin)"
    )
    choice = mm.choose_tile_from_fit(fit, h, w, args.budget * 2**30, args.overlap, 16, 4)
    print("choice:", choice.describe(), flush=True)
    tile = choice.tile or max(h, w)
    rows, cols = tile_starts(h, min(tile, h), args.overlap), tile_starts(w, min(tile, w), args.overlap)
    print(f"{len(rows) * len(cols)} tiles: rows {rows}, cols {cols}", flush=True)
    x = torch.rand(1, 3, h, w)
    start, count = time.time(), [0]

    def logged(patch: torch.Tensor) -> torch.Tensor:
        t = time.time()
        y = model(patch)
        count[0] += 1
        hwm = (read_status_kib("VmHWM") or 0) / 1024
        print(
            f"tile {count[0]} {tuple(patch.shape[-2:])}: {time.time() - t:.1f} s, VmHWM {hwm:.0f} MiB",
            flush=True,
        )
        return y

    with torch.inference_mode():
        grown = measure_peak_growth(
            lambda: forward_tiled(logged, x, 4, tile, args.overlap), torch.device("cpu")
        )
    print(
        f"DONE: tile {tile}, measured peak RSS growth {grown / 2**30:.2f} GiB (predicted "
        f"{choice.predicted_bytes / 2**30:.2f}, budget {args.budget:.1f}), time {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
