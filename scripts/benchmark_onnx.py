#!/usr/bin/env python
"""onnxruntime (CPU) vs our PyTorch (CPU) on the same input, measured side by side in one run.

    python scripts/benchmark_onnx.py --model 102 --size 64 96 --repeat 5

Exports MODEL (verified, as ``ehat export`` does) into memory, then alternates PyTorch and
onnxruntime runs on one random (1, 3, H, W) input and prints the median times and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import ehat  # noqa: F401  (registers the networks)
from ehat.errors import EhatError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="102", help="zoo id/name or checkpoint (default 102, the demo)")
    p.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"), help="LR input size")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5), after one warm-up")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both")
    args = p.parse_args(argv)
    try:
        import onnxruntime as ort

        from ehat.export.models import resolve_model
        from ehat.export.onnx import onnx_bytes, run_onnx, verify_onnx

        resolved = resolve_model(args.model)
    except (EhatError, OSError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = resolved.model.eval()
    torch.set_num_threads(args.threads)
    data = onnx_bytes(model)
    verify_onnx(data, model, resolved.data_range)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, *args.size) * resolved.data_range

    def torch_run() -> None:
        with torch.inference_mode():
            model(x)

    runs = {"pytorch": torch_run, "onnxruntime": lambda: run_onnx(session, x)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.repeat):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    h, w = args.size
    print("| model | input | threads | PyTorch CPU (ms) | onnxruntime CPU (ms) | onnxruntime / PyTorch |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {resolved.name} | 1x3x{h}x{w} | {args.threads} | {med['pytorch'] * 1e3:.1f} | "
          f"{med['onnxruntime'] * 1e3:.1f} | {med['onnxruntime'] / med['pytorch']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
