#!/usr/bin/env python
"""CUDA side by side: HAT-L training step and inference, ours vs the reference (spandrel's HAT).

Ours runs twice: as shipped (explicit attention on CUDA) and with CUDA attention sent through
``scaled_dot_product_attention`` (what EHAT did before; on CUDA SDPA falls back to its math path
for HAT's shapes). Same weights for all; implementations interleaved; CUDA events; medians.

  python scripts/benchmark_cuda_attention.py                 # fp32 and bf16, batch 4 of 64x64, LR 339x510
  python scripts/benchmark_cuda_attention.py --model hat_s --batch 8

Needs a CUDA device and spandrel (requirements-dev.txt). Prints one line per measurement and the
ratios (reference time / ours: above 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

import ehat  # noqa: F401  (before basicsr)
from ehat.archs import create_model, hat_arch, preset_config


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, dropout: float = 0.0
) -> torch.Tensor:
    """The previous CUDA path (SDPA, i.e. its math fallback for HAT's shapes), for comparison."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)


def build(impl: str, model: str, state: dict) -> torch.nn.Module:
    if impl == "reference":
        from spandrel.architectures.HAT.__arch.HAT import HAT as ReferenceHAT

        net = ReferenceHAT(
            **{k: v for k, v in preset_config(model).items() if k != "type"}, drop_path_rate=0.0
        )
    else:
        net = create_model(model, drop_path_rate=0.0)
    net.load_state_dict(state)
    return net.cuda()


def cuda_median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure(net: torch.nn.Module, dtype: torch.dtype | None, args: argparse.Namespace) -> tuple[float, ...]:
    """(training-step ms, its peak MiB, inference ms, its peak MiB) of ``net`` on CUDA."""
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-5, betas=(0.9, 0.99))
    x = torch.rand(args.batch, 3, args.patch, args.patch, device="cuda")
    target = torch.rand(args.batch, 3, 4 * args.patch, 4 * args.patch, device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            loss = F.l1_loss(net(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.cuda.reset_peak_memory_stats()
    train_ms = cuda_median_ms(step, args.runs, 2)
    train_mib = torch.cuda.max_memory_allocated() / 2**20
    net.eval()
    lr = torch.rand(1, 3, *args.infer_size, device="cuda")

    def forward() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            net(lr)

    torch.cuda.reset_peak_memory_stats()
    infer_ms = cuda_median_ms(forward, max(3, args.runs // 2), 1)
    return train_ms, train_mib, infer_ms, torch.cuda.max_memory_allocated() / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="hat_l")
    p.add_argument("--batch", type=int, default=4, help="training batch of LR patches")
    p.add_argument("--patch", type=int, default=64, help="LR patch size of the training step")
    p.add_argument("--infer-size", type=int, nargs=2, default=[339, 510], metavar=("H", "W"))
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmark_cuda_attention.py needs a CUDA device")
    torch.manual_seed(0)
    state = create_model(args.model, drop_path_rate=0.0).state_dict()
    g = torch.Generator().manual_seed(0)
    state = {
        k: v + torch.randn(v.shape, generator=g) * 0.02 if v.is_floating_point() else v
        for k, v in state.items()
    }
    shipped = hat_arch.masked_attention
    impls = ("reference", "ours (SDPA on CUDA)", "ours")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, model {args.model}")
    for dtype_name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        train_ms, infer_ms = {}, {}
        for impl in impls:
            hat_arch.masked_attention = sdpa_attention if "SDPA" in impl else shipped
            train_ms[impl], train_mib, infer_ms[impl], infer_mib = measure(
                build(impl, args.model, state), dtype, args
            )
            torch.cuda.empty_cache()
            print(
                f"{dtype_name} {impl:22s} train step {train_ms[impl]:8.1f} ms ({train_mib:.0f} MiB)   "
                f"inference {infer_ms[impl]:8.1f} ms ({infer_mib:.0f} MiB)",
                flush=True,
            )
        hat_arch.masked_attention = shipped
        for impl in impls[1:]:
            print(
                f"{dtype_name} reference / {impl}: train {train_ms['reference'] / train_ms[impl]:.2f}x, "
                f"inference {infer_ms['reference'] / infer_ms[impl]:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
