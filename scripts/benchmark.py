#!/usr/bin/env python
"""Side-by-side speed/memory benchmark: our HAT against the reference implementation (spandrel's HAT).

Every measurement runs in a fresh worker process (so peak memory is per configuration) with the
same weights and inputs; ours and the reference alternate so machine noise hits both. The
reference runs twice: with glibc's stock malloc and with the allocator tuned as ours is
(ehat.cpu_allocator), since that alone changes the reference's CPU time a lot.

  python scripts/benchmark.py                      # HAT-S and HAT-L, LR 64 and 128, inference + training
  python scripts/benchmark.py --models hat_s --sizes 64 --runs 2 --no-train   # a quick look
  python scripts/benchmark.py --device cuda --amp bf16

Prints a table of medians and ratios (ours / reference) and writes JSON (--json). Absolute numbers
are noisy on a shared machine: the ratios from one run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKER_FLAG = "--worker"


# --------------------------------------------------------------------------- worker side


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build(spec: dict[str, Any]):  # noqa: ANN202
    import torch

    from ehat.archs import create_model, preset_config

    torch.manual_seed(0)
    ours = create_model(spec["model"], drop_path_rate=0.0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial weights so every pathway matters
        for p in ours.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    if spec["impl"] == "ours":
        return ours
    from spandrel.architectures.HAT.__arch.HAT import HAT as ReferenceHAT

    cfg = {k: v for k, v in preset_config(spec["model"]).items() if k != "type"}
    ref = ReferenceHAT(**{**cfg, "drop_path_rate": 0.0})
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this process: median seconds, peak memory, output saved for comparison."""
    if spec["malloc"] == "tuned":
        from ehat.cpu_allocator import tune_malloc

        tune_malloc()
    import torch

    import ehat  # noqa: F401

    device = spec["device"]
    model = _build(spec).to(device)
    size, amp = spec["size"], spec["amp"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    g = torch.Generator().manual_seed(1)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    times = []
    if spec["mode"] == "infer":
        model.eval()
        x = torch.rand(1, 3, size, size, generator=g).to(device)
        with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            for i in range(spec["warmup"] + spec["runs"]):
                _sync(device)
                t = time.perf_counter()
                y = model(x)
                _sync(device)
                if i >= spec["warmup"]:
                    times.append(time.perf_counter() - t)
        torch.save(y.float().cpu(), spec["out"])
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.99))
        x = torch.rand(spec["batch"], 3, size, size, generator=g).to(device)
        target = torch.rand(spec["batch"], 3, size * 4, size * 4, generator=g).to(device)
        for i in range(spec["warmup"] + spec["runs"]):
            _sync(device)
            t = time.perf_counter()
            with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.l1_loss(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mb() - base
    return {"median_s": statistics.median(times), "times_s": times, "peak_mb": peak}


# --------------------------------------------------------------------------- parent side


def matmul_peak_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 matrix-multiply throughput (GFLOP/s) of an n x n x n product."""
    import torch

    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def attention_inclusive_macs(model_name: str, size: int) -> float:
    """Multiply-adds of one forward at LR size x size, attention included (counted on the meta device)."""
    import ehat  # noqa: F401
    from ehat.archs import create_model
    from ehat.evaluation.complexity import measure_complexity

    return measure_complexity(create_model(model_name), (1, 3, size, size), method="meta").macs_all


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, __file__, WORKER_FLAG, json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        reason = f"exit status {out.returncode}" + (" (killed: out of memory?)" if out.returncode < 0 else "")
        raise RuntimeError(f"worker {spec['impl']}/{spec['malloc']} failed, {reason}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["hat_s", "hat_l"], help="presets (default: hat_s hat_l)")
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128], help="LR sizes for inference")
    p.add_argument("--train-size", type=int, default=64, help="LR patch size of the training step")
    p.add_argument("--batch", type=int, default=2, help="training batch (default 2, the team's)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurements")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast dtype")
    p.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    peak = matmul_peak_gflops(args.device)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "matmul_fp32_gflops": round(peak, 1),
    }
    print(f"machine: {machine}")
    refs = ["stock", "tuned"] if args.device == "cpu" else ["stock"]
    jobs = [("infer", m, s) for m in args.models for s in args.sizes]
    if not args.no_train:
        jobs += [("train", m, args.train_size) for m in args.models]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, model, size in jobs:
            base = dict(mode=mode, model=model, size=size, device=args.device, amp=args.amp, runs=args.runs)
            base.update(warmup=args.warmup, batch=args.batch)
            results = {}
            order = [("reference", refs[0]), ("ours", "tuned")] + [("reference", r) for r in refs[1:]]
            try:
                for impl, malloc in order:
                    spec = dict(base, impl=impl, malloc=malloc, out=f"{tmp}/{impl}_{malloc}.pt")
                    results[f"{impl}_{malloc}"] = _spawn(spec)
            except RuntimeError as err:  # e.g. killed for memory: report it, go on with the next row
                rows.append(dict(mode=mode, model=model, size=size, error=str(err)[-500:]))
                print(f"{mode:5s} {model:6s} {size:4d}  FAILED: {str(err).splitlines()[0]}", flush=True)
                continue
            row: dict[str, Any] = dict(
                mode=mode, model=model, size=size, **{k: v for k, v in results.items()}
            )
            ours = results["ours_tuned"]
            for r in refs:
                ref = results[f"reference_{r}"]
                row[f"speedup_vs_{r}"] = ref["median_s"] / ours["median_s"]
                row[f"memory_ratio_vs_{r}"] = ours["peak_mb"] / max(ref["peak_mb"], 1e-9)
            if mode == "infer":
                a = torch.load(f"{tmp}/ours_tuned.pt", weights_only=True)
                b = torch.load(f"{tmp}/reference_{refs[0]}.pt", weights_only=True)
                row["max_abs_diff"] = (a - b).abs().max().item()
                macs = attention_inclusive_macs(model, size)
                row["gmacs"] = macs / 1e9
                row["achieved_gflops"] = 2 * macs / ours["median_s"] / 1e9
                row["percent_of_matmul_peak"] = 100 * row["achieved_gflops"] / peak
            rows.append(row)
            print(_format_row(row, refs), flush=True)
    args.json.write_text(
        json.dumps(
            {"machine": machine, "args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2
        )
    )
    print(f"wrote {args.json}")
    return 0


def _format_row(row: dict[str, Any], refs: list[str]) -> str:
    o = row["ours_tuned"]
    parts = [
        f"{row['mode']:5s} {row['model']:6s} {row['size']:4d}  ours {o['median_s']:7.2f}s {o['peak_mb']:7.0f}MB"
    ]
    for r in refs:
        ref = row[f"reference_{r}"]
        parts.append(
            f"ref[{r}] {ref['median_s']:7.2f}s {ref['peak_mb']:7.0f}MB  speed-up x{row[f'speedup_vs_{r}']:.2f} "
            f"mem x{row[f'memory_ratio_vs_{r}']:.2f}"
        )
    if "max_abs_diff" in row:
        parts.append(f"diff {row['max_abs_diff']:.1e}  {row['percent_of_matmul_peak']:.0f}% of matmul peak")
    return " | ".join(parts)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_FLAG:
        print(json.dumps(run_worker(json.loads(sys.argv[2]))))
    else:
        sys.exit(main())
