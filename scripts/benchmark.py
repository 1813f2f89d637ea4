#!/usr/bin/env python
"""Side-by-side speed/memory benchmark: our HAT against the reference implementation (spandrel's HAT).

Every measurement runs in a fresh worker process (so peak memory is per configuration) with the
same weights and inputs; the reference and our variants alternate row by row so machine noise
hits all of them. On CPU the reference runs twice: with glibc's stock malloc and with the
allocator tuned as ours is (ehat.cpu_allocator), since that alone changes its CPU time a lot.

Ours runs in one or more *variants* ``PRECISION[+COMPILE][@BACKEND]``: precision fp32 | tf32 |
bf16 | fp16 (autocast), compile blocks | full, attention backend auto | explicit | sdpa | flex.
The reference always runs in fp32, as users run the official code. Every row gives each
variant's speed-up over the reference and over our own fp32, peak memory, compile time (the first
call, apart from the timed runs), achieved TFLOP/s as a share of the bf16 matmul peak measured in
the same run (inference rows), and the max / relative output difference to the reference.

  python scripts/benchmark.py                      # CPU: HAT-S, HAT-L at LR 64, 128; fp32 and bf16
  python scripts/benchmark.py --models hat_s --sizes 64 --runs 2 --no-train   # a quick look
  python scripts/benchmark.py --device cuda        # HAT-L and EHAT-L+DA at 339x510 and 256x256,
                                                   # training batch 4 and 8; fp32 tf32 bf16 bf16+blocks

  python scripts/benchmark.py --cpu-isa avx2 --alternate --no-reference --no-train --models hat_s \
      --sizes 64 --variants fp32@explicit fp32@sdpa bf16@explicit bf16@sdpa   # bf16 emulated (issue 21)

The header names the CPU, ATen's capability and whether bf16/fp16 run natively (ehat.precision).
``--cpu-isa avx2`` / ``avx512_core`` masks this CPU's newer instructions for every worker
(ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA): a CPU without AVX-512, or with AVX-512 but without BF16.
Writes JSON (--json) and a Markdown table (--markdown). Absolute numbers are noisy on a shared
machine: the ratios from one run are what count.
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
MODEL_ALIASES = {"ehat_l_da": ("ehat_l", {"dual_attention": "body"})}
"""Rows that are not a preset as is: EHAT-L with DANet dual attention on the body (no reference)."""
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
CPU_ISA_MASKS = {
    "native": {},
    "avx512_core": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
"""``--cpu-isa``: environment that hides this CPU's newer instructions from ATen and oneDNN."""
DEFAULTS = {
    "cpu": dict(models=["hat_s", "hat_l"], sizes=["64", "128"], batches=[2], variants=["fp32", "bf16"]),
    "cuda": dict(
        models=["hat_l", "ehat_l_da"],
        sizes=["339x510", "256x256"],
        batches=[4, 8],
        variants=["fp32", "tf32", "bf16", "bf16+blocks"],
    ),
}


def parse_variant(text: str) -> dict[str, str]:
    """``bf16+blocks@sdpa`` -> {precision: bf16, compile: blocks, attn_backend: sdpa}."""
    rest, _, backend = text.partition("@")
    precision, _, compile_mode = rest.partition("+")
    if precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: precision must be one of {', '.join(PRECISIONS)}"
        )
    if compile_mode not in ("", "blocks", "full"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: compile must be blocks or full")
    if backend not in ("", "auto", "explicit", "sdpa", "flex"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: backend must be auto, explicit, sdpa or flex")
    return {"precision": precision, "compile": compile_mode or "false", "attn_backend": backend or "auto"}


def parse_size(text: str) -> tuple[int, int]:
    """``128`` -> (128, 128); ``339x510`` -> (339, 510) (H x W, LR pixels)."""
    h, _, w = text.partition("x")
    try:
        return int(h), int(w or h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: use N or HxW") from None


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
    name, extra = MODEL_ALIASES.get(spec["model"], (spec["model"], {}))
    if spec["impl"] == "ours":
        extra = {**extra, "attn_backend": spec["attn_backend"]}
    ours = create_model(name, drop_path_rate=0.0, **extra)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial weights so every pathway matters
        for p in ours.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    if spec["impl"] == "ours":
        return ours
    from spandrel.architectures.HAT.__arch.HAT import HAT as ReferenceHAT

    cfg = {k: v for k, v in preset_config(name).items() if k != "type"}
    ref = ReferenceHAT(**{**cfg, "drop_path_rate": 0.0})
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this process: median seconds, first-call seconds, peak memory; the
    inference output is saved for comparison."""
    if spec["malloc"] == "tuned":
        from ehat.cpu_allocator import tune_malloc

        tune_malloc()
    import torch

    import ehat  # noqa: F401
    from ehat.acceleration import compile_model, enable_tf32

    device = spec["device"]
    enable_tf32(spec["precision"] == "tf32")
    model = _build(spec).to(device)
    compile_model(model, spec["compile"], dynamic=False)
    (h, w), amp = spec["size"], spec["precision"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    g = torch.Generator().manual_seed(1)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    times = []
    if spec["mode"] == "infer":
        model.eval()
        x = torch.rand(1, 3, h, w, generator=g).to(device)

        def step() -> Any:
            with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                return model(x)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.99))
        x = torch.rand(spec["batch"], 3, h, w, generator=g).to(device)
        target = torch.rand(spec["batch"], 3, h * 4, w * 4, generator=g).to(device)

        def step() -> Any:
            with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.l1_loss(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

    first_s = 0.0
    for i in range(spec["warmup"] + spec["runs"]):
        _sync(device)
        t = time.perf_counter()
        y = step()
        _sync(device)
        if i == 0:
            first_s = time.perf_counter() - t
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t)
    if spec["mode"] == "infer":
        torch.save(y.float().cpu(), spec["out"])
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mb() - base
    median = statistics.median(times)
    return {"median_s": median, "times_s": times, "peak_mb": peak, "first_call_s": first_s}


def run_alternating(spec: dict[str, Any]) -> dict[str, Any]:
    """Inference of several implementations/variants in ONE process, one call of each in turn per
    round, so a busy machine slows all of them alike (``--alternate``). Per label: median and min
    seconds, and the process's CPU seconds per call (``cpu_s``: with OMP_NUM_THREADS=1, the work
    itself, unaffected by other jobs taking the core); the process's peak memory is shared, so none
    is reported per label."""
    from ehat.cpu_allocator import tune_malloc

    tune_malloc()
    import torch

    import ehat  # noqa: F401
    from ehat.acceleration import compile_model

    device = spec["device"]
    (h, w) = spec["size"]
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
    steps, times, firsts, cpu = {}, {}, {}, {}
    for item in spec["items"]:
        model = _build({**spec, **item}).to(device).eval()
        compile_model(model, item["compile"], dynamic=False)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(item["precision"])

        def step(model: Any = model, dtype: Any = dtype) -> Any:
            with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                return model(x)

        t, c = time.perf_counter(), time.process_time()
        y = step()
        _sync(device)
        firsts[item["label"]] = time.perf_counter() - t
        cpu[item["label"]] = [time.process_time() - c]  # the first call's CPU time is kept
        torch.save(y.float().cpu(), item["out"])
        steps[item["label"]], times[item["label"]] = step, []
    for _ in range(spec["runs"]):
        for label, step in steps.items():
            _sync(device)
            t, c = time.perf_counter(), time.process_time()
            step()
            _sync(device)
            times[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
    return {
        label: {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "times_s": ts,
            "peak_mb": float("nan"),
            "first_call_s": firsts[label],
            "cpu_s": cpu[label],
            "median_cpu_s": statistics.median(cpu[label]),
        }
        for label, ts in times.items()
    }


# --------------------------------------------------------------------------- parent side


def matmul_peak_tflops(
    device: str = "cpu", dtype_name: str = "bf16", n: int = 4096, repeats: int = 5
) -> float:
    """Measured matrix-multiply throughput (TFLOP/s) of an n x n x n product in ``dtype_name``."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    n = n if device == "cuda" else 1024
    a = torch.rand(n, n, device=device).to(dtype)
    b = torch.rand(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        for _ in range(10 if device == "cuda" else 1):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t) / (10 if device == "cuda" else 1))
    return 2 * n**3 / best / 1e12


def attention_inclusive_macs(model_name: str, size: tuple[int, int]) -> float:
    """Multiply-adds of one forward at LR size (H, W), attention included (counted on the meta device)."""
    import ehat  # noqa: F401
    from ehat.archs import create_model
    from ehat.evaluation.complexity import measure_complexity

    name, extra = MODEL_ALIASES.get(model_name, (model_name, {}))
    return measure_complexity(create_model(name, **extra), (1, 3, *size), method="meta").macs_all


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, __file__, WORKER_FLAG, json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        reason = f"exit status {out.returncode}" + (" (killed: out of memory?)" if out.returncode < 0 else "")
        raise RuntimeError(f"worker {spec['label']} failed, {reason}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", nargs="+", help="presets, or ehat_l_da (default per device, see above)")
    p.add_argument("--sizes", nargs="+", type=parse_size, help="LR sizes for inference: N or HxW")
    p.add_argument("--variants", nargs="+", type=parse_variant, help="ours: PRECISION[+COMPILE][@BACKEND]")
    p.add_argument("--train-size", type=int, default=64, help="LR patch size of the training step")
    p.add_argument("--batches", nargs="+", type=int, help="training batch sizes")
    p.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (the first also compiles)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurements")
    p.add_argument("--no-reference", action="store_true", help="only our variants")
    p.add_argument(
        "--alternate",
        action="store_true",
        help="inference rows: run the reference and every variant in one process, one call of each in "
        "turn (robust to a busy machine; no per-variant peak memory)",
    )
    p.add_argument("--cpu-isa", choices=list(CPU_ISA_MASKS), default="native",
                   help="CPU: mask newer instructions (avx2: no AVX-512; avx512_core: AVX-512 without BF16)")  # fmt: skip
    p.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write the results")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = p.parse_args(argv)
    defaults = DEFAULTS[args.device]
    args.models = args.models or defaults["models"]
    args.sizes = args.sizes or [parse_size(s) for s in defaults["sizes"]]
    args.variants = args.variants or [parse_variant(v) for v in defaults["variants"]]
    args.batches = args.batches or defaults["batches"]
    if args.runs < 1 or args.warmup < 1:
        p.error("--runs and --warmup must be at least 1 (the first call compiles and is reported apart)")
    return args


def variant_label(v: dict[str, str]) -> str:
    label = v["precision"] + ("" if v["compile"] == "false" else f"+{v['compile']}")
    return label + ("" if v["attn_backend"] == "auto" else f"@{v['attn_backend']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(CPU_ISA_MASKS[args.cpu_isa])  # before torch loads; the workers inherit it
    import torch

    from ehat.precision import cpu_support, describe_cpu

    peak_bf16 = matmul_peak_tflops(args.device, "bf16")
    peak_fp32 = matmul_peak_tflops(args.device, "fp32")
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_isa_mask": args.cpu_isa,
        "native_bf16": cpu_support().bf16,
        "native_fp16": cpu_support().fp16,
        "matmul_bf16_tflops": round(peak_bf16, 3),
        "matmul_fp32_tflops": round(peak_fp32, 3),
    }
    print(describe_cpu() + (f"; masked: --cpu-isa {args.cpu_isa}" if args.cpu_isa != "native" else ""))
    print(f"machine: {machine}", flush=True)
    refs = ["stock", "tuned"] if args.device == "cpu" else ["stock"]
    jobs = [("infer", m, s, 1) for m in args.models for s in args.sizes]
    if not args.no_train:
        size = (args.train_size, args.train_size)
        jobs += [("train", m, size, b) for m in args.models for b in args.batches]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, model, size, batch in jobs:
            base = dict(mode=mode, model=model, size=size, batch=batch, device=args.device)
            base.update(runs=args.runs, warmup=args.warmup)
            has_ref = not args.no_reference and model not in MODEL_ALIASES
            plan = [("reference", refs[0], parse_variant("fp32"))] if has_ref else []
            plan += [("ours", "tuned", v) for v in args.variants]
            plan += [("reference", r, parse_variant("fp32")) for r in refs[1:]] if has_ref else []
            row: dict[str, Any] = dict(mode=mode, model=model, size=list(size), batch=batch, results={})
            if args.alternate and mode == "infer":
                plan = [p for p in plan if not (p[0] == "reference" and p[1] != refs[0])]
                items = []
                for impl, malloc, v in plan:
                    label = f"reference[{malloc}]" if impl == "reference" else variant_label(v)
                    items.append(dict(impl=impl, label=label, out=f"{tmp}/{label}.pt", **v))
                spec = dict(base, malloc="tuned", label="alternate", items=items)
                try:
                    row["results"] = _spawn(spec)
                    for item in items:
                        row["results"][item["label"]]["output"] = item["out"]
                except RuntimeError as err:
                    row["results"] = {"alternate": {"error": str(err)[-800:]}}
                _compare(row, refs[0], args, peak_bf16)
                rows.append(row)
                print(_format_row(row), flush=True)
                continue
            for impl, malloc, v in plan:
                label = f"reference[{malloc}]" if impl == "reference" else variant_label(v)
                out = f"{tmp}/{label}.pt"
                spec = dict(base, impl=impl, malloc=malloc, out=out, label=label, **v)
                try:
                    res = _spawn(spec)
                except RuntimeError as err:  # e.g. killed for memory: report it, go on
                    res = {"error": str(err)[-800:]}
                    print(f"  {mode} {model} {size} {label}: FAILED {str(err).splitlines()[0]}", flush=True)
                res["output"] = out
                row["results"][label] = res
            _compare(row, refs[0], args, peak_bf16)
            rows.append(row)
            print(_format_row(row), flush=True)
    report = {"machine": machine, "args": _jsonable(vars(args)), "rows": rows}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown_table(report))
        print(f"wrote {args.markdown}")
    return 0


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _compare(row: dict[str, Any], ref_name: str, args: argparse.Namespace, peak_bf16: float) -> None:
    """Speed-ups, memory ratios, FLOP/s share and output differences, in place."""
    import torch

    res = row["results"]
    ref = res.get(f"reference[{ref_name}]")
    own = res.get("fp32")
    macs = attention_inclusive_macs(row["model"], tuple(row["size"])) if row["mode"] == "infer" else None
    ref_out = None
    if row["mode"] == "infer" and ref and "error" not in ref:
        ref_out = torch.load(ref["output"], weights_only=True)
    for label, r in res.items():
        if "error" in r or label.startswith("reference"):
            continue
        if ref and "error" not in ref:
            r["speedup_vs_reference"] = ref["median_s"] / r["median_s"]
            r["memory_vs_reference"] = r["peak_mb"] / max(ref["peak_mb"], 1e-9)
        if own and "error" not in own:
            r["speedup_vs_our_fp32"] = own["median_s"] / r["median_s"]
        if macs is not None:
            r["tflops"] = 2 * macs / r["median_s"] / 1e12
            r["share_of_bf16_peak"] = r["tflops"] / peak_bf16
        if ref_out is not None:
            out = torch.load(r["output"], weights_only=True)
            r["max_abs_diff"] = (out - ref_out).abs().max().item()
            r["rel_diff"] = ((out - ref_out).norm() / ref_out.norm()).item()
        if row["mode"] == "infer" and own and "error" not in own and label != "fp32":
            out = torch.load(r["output"], weights_only=True)
            base = torch.load(own["output"], weights_only=True)
            r["rel_diff_vs_our_fp32"] = ((out - base).norm() / base.norm()).item()


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _format_row(row: dict[str, Any]) -> str:
    h, w = row["size"]
    head = f"{row['mode']:5s} {row['model']:9s} {h}x{w}" + (
        f" b{row['batch']}" if row["mode"] == "train" else ""
    )
    lines = [head]
    for label, r in row["results"].items():
        if "error" in r:
            lines.append(f"    {label:22s} FAILED")
            continue
        lines.append(
            f"    {label:22s} {r['median_s'] * 1e3:9.1f} ms  first {r['first_call_s']:6.1f} s  "
            f"{r['peak_mb']:8.0f} MB  x{_fmt(r.get('speedup_vs_reference'), '.2f')} vs ref  "
            f"x{_fmt(r.get('speedup_vs_our_fp32'), '.2f')} vs our fp32  "
            f"mem x{_fmt(r.get('memory_vs_reference'), '.2f')}  "
            f"{_fmt(r.get('share_of_bf16_peak', None) and 100 * r['share_of_bf16_peak'], '.1f')}% bf16 peak  "
            f"diff {_fmt(r.get('max_abs_diff'), '.1e')} rel {_fmt(r.get('rel_diff', r.get('rel_diff_vs_our_fp32')), '.1e')}"
            + (f"  cpu {r['median_cpu_s']:.1f} s (all calls)" if "median_cpu_s" in r else "")
        )
    return "\n".join(lines)


def markdown_table(report: dict[str, Any]) -> str:
    """The rows as one Markdown table, the machine named above it."""
    m = report["machine"]
    out = [
        f"Device: {m['device']} ({m['cpu']}, {m['cores']} cores), torch {m['torch']}; measured matmul peak "
        f"bf16 {m['matmul_bf16_tflops']:.2f} / fp32 {m['matmul_fp32_tflops']:.2f} TFLOP/s; ATen capability "
        f"{m.get('cpu_capability', '?')} (--cpu-isa {m.get('cpu_isa_mask', 'native')}), native bf16 "
        f"{'yes' if m.get('native_bf16') else 'no'}, fp16 {'yes' if m.get('native_fp16') else 'no'}.",
        "",
        "| row | variant | median ms | first call s | peak MB | vs reference fp32 | vs our fp32 | "
        "memory vs ref | % bf16 peak | max diff to ref | rel. diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        h, w = row["size"]
        name = f"{row['mode']} {row['model']} {h}x{w}" + (
            f" b{row['batch']}" if row["mode"] == "train" else ""
        )
        for label, r in row["results"].items():
            if "error" in r:
                out.append(f"| {name} | {label} | failed | | | | | | | | |")
                continue
            share = r.get("share_of_bf16_peak")
            rel = r.get("rel_diff", r.get("rel_diff_vs_our_fp32"))
            out.append(
                f"| {name} | {label} | {r['median_s'] * 1e3:.1f} | {r['first_call_s']:.1f} | {r['peak_mb']:.0f} | "
                f"{_fmt(r.get('speedup_vs_reference'), '.2f')} | {_fmt(r.get('speedup_vs_our_fp32'), '.2f')} | "
                f"{_fmt(r.get('memory_vs_reference'), '.2f')} | {_fmt(share and 100 * share, '.2f')} | "
                f"{_fmt(r.get('max_abs_diff'), '.1e')} | {_fmt(rel, '.1e')} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER_FLAG:
        job = json.loads(sys.argv[2])
        print(json.dumps(run_alternating(job) if "items" in job else run_worker(job)))
    else:
        sys.exit(main())
