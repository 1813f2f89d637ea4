#!/usr/bin/env python
"""onnxruntime (CPU) vs our PyTorch (CPU) on the same inputs, measured side by side in one run.

    python scripts/benchmark_onnx.py                                  # every zoo network, LR 64 and 128
    python scripts/benchmark_onnx.py --models 102 --sizes 128 --repeat 5
    python scripts/benchmark_onnx.py --models 102 --stock-malloc      # as before the malloc tuning

Each MODEL (zoo id/name, preset or checkpoint) is exported verified, as ``ehat export`` does, into
memory; then PyTorch and onnxruntime alternate on one random (1, 3, H, W) input, one call of each
in turn, and the script prints the median times and their ratio. A zoo network whose weights are
not on this machine (nor in ``../shared/weights``) runs with random weights, marked so: the time
does not depend on the values.

PyTorch runs as ``ehat upscale`` runs it on CPU; the options undo each setting:

- malloc tuned by :mod:`ehat.cpu_allocator` (onnxruntime has its own arena allocator);
  ``--stock-malloc`` leaves glibc's defaults, which make every large temporary a fresh ``mmap``
  that page-faults on first touch.
- ``OMP_WAIT_POLICY=PASSIVE`` (:mod:`ehat.cpu_inference`) unless the environment sets a policy;
  ``--omp-wait active`` keeps libgomp's spinning threads, which lose badly on a loaded machine.
- channels-last weights for networks of convolutions only (RLFN, SPAN), as
  :func:`ehat.cpu_inference.to_cpu_layout` decides; ``--contiguous`` keeps (B, C, H, W).

and for both runtimes:

- ``--pause`` seconds of sleep before each timed call: both runtimes' worker threads spin-wait for
  a while after a call, and on a small machine that spinning steals the cores from whichever
  runtime runs next.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import ehat  # noqa: F401  (light: torch is imported in main, after the OpenMP wait policy is set)
from ehat.errors import EhatError

SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"


def zoo_models() -> list[str]:
    """Every zoo id, as strings (the default --models)."""
    from ehat.zoo import ZOO

    return [str(i) for i in sorted(ZOO)]


def load(arg: str):  # noqa: ANN201  (-> (ResolvedModel, note))
    """``arg`` resolved as ``ehat`` does, except that a zoo network whose weights are absent is built
    from ``../shared/weights`` or with random weights instead of downloaded; note says which."""
    from ehat.export.models import ResolvedModel, _zoo_spec, resolve_model
    from ehat.zoo import REPO_ROOT, build_model

    spec = None if Path(arg).exists() else _zoo_spec(arg)
    if spec is None or (REPO_ROOT / spec.weights).is_file():
        return resolve_model(arg), ""
    shared = SHARED_WEIGHTS / spec.pretrained.file
    weights = shared if shared.is_file() else None
    model = build_model(spec, weights)
    note = "" if weights is not None else " (random weights)"
    return ResolvedModel(model, spec.data_range, spec.scale, spec.name, weights or Path("-")), note


def torch_call(model: Callable, x: Any) -> Callable[[], object]:
    """``model(x)`` under ``torch.inference_mode``, as a callable without arguments."""
    import torch

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def time_alternating(runs: dict[str, Callable[[], object]], repeat: int, pause: float) -> dict[str, float]:
    """Median seconds of each callable over ``repeat`` rounds (one call of each per round, in turn),
    after one warm-up call each; ``pause`` seconds of sleep before every timed call."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeat):
        for name, fn in runs.items():
            time.sleep(pause)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its core count."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="zoo ids/names, presets or checkpoints (default: every zoo network)")  # fmt: skip
    p.add_argument("--sizes", type=int, nargs="+", default=(64, 128), metavar="N",
                   help="square LR input sizes (default 64 128)")  # fmt: skip
    p.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="one H x W input instead"
    )
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5), after one warm-up")
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: torch's default)")
    p.add_argument(
        "--pause", type=float, default=0.2, help="seconds of sleep before each timed call (default 0.2)"
    )
    p.add_argument("--stock-malloc", action="store_true", help="leave glibc's malloc defaults for PyTorch")
    p.add_argument("--omp-wait", choices=("passive", "active"), default="passive",
                   help="libgomp's wait policy when OMP_WAIT_POLICY is not set (default passive, as ehat upscale)")  # fmt: skip
    p.add_argument(
        "--contiguous", action="store_true", help="no channels-last weights for convolution-only networks"
    )
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    if args.omp_wait == "passive":
        from ehat.cpu_inference import passive_omp_wait

        passive_omp_wait()
    import torch

    if not args.stock_malloc:
        from ehat.cpu_allocator import tune_malloc

        tune_malloc()
    try:
        import onnxruntime as ort

        from ehat.cpu_inference import to_cpu_layout
        from ehat.export.onnx import onnx_bytes, run_onnx, verify_onnx
    except ImportError as err:
        print(f"error: {err}: pip install onnxruntime (or the export extra)", file=sys.stderr)
        return 2
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    sizes = [tuple(args.size)] if args.size else [(n, n) for n in args.sizes]
    malloc = "stock glibc malloc" if args.stock_malloc else "ehat.cpu_allocator malloc"
    layout = "contiguous" if args.contiguous else "channels-last for convolution-only networks"
    wait = os.environ.get("OMP_WAIT_POLICY", "libgomp's default")
    lines = [
        f"{cpu_name()}; torch {torch.__version__}, onnxruntime {ort.__version__}; {args.threads} threads; "
        f"{malloc}; OMP_WAIT_POLICY {wait}; {layout}; median of {args.repeat}, alternated, {args.pause} s pause",
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        "| network | LR input | PyTorch (s) | onnxruntime (s) | PyTorch / onnxruntime |",
        "| --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    for arg in args.models or zoo_models():
        try:
            resolved, note = load(arg)
        except (EhatError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        data = onnx_bytes(resolved.model.eval())
        verify_onnx(data, resolved.model, resolved.data_range)
        model = resolved.model if args.contiguous else to_cpu_layout(resolved.model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        for h, w in sizes:
            x = torch.rand(1, 3, h, w) * resolved.data_range
            med = time_alternating(
                {"torch": torch_call(model, x), "ort": partial(run_onnx, session, x)}, args.repeat, args.pause
            )
            row = (f"| {resolved.name}{note} | {h}x{w} | {med['torch']:.3f} | {med['ort']:.3f} | "
                   f"{med['torch'] / med['ort']:.2f} |")  # fmt: skip
            lines.append(row)
            print(row, flush=True)
    lines.append(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(lines[-1])
    if args.markdown is not None:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
