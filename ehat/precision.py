"""Whether this process runs bf16 / fp16 natively, and the one-line warning when it emulates them.

On CPU, bf16/fp16 autocast is fast only where the hardware has the instructions *and* the kernels
may use them: x86 needs AVX512-BF16 or AMX-BF16 (fp16: AVX512-FP16 or AMX-FP16), ATen's kernels
must run at its AVX512 capability (``torch.backends.cpu.get_cpu_capability()``, lowered by
``ATEN_CPU_CAPABILITY``) and oneDNN, which runs the convolutions and matmuls, must not be capped
below those instructions (``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``). Elsewhere the arithmetic
is emulated: HAT-S at LR 64x64 in bf16 autocast took 35x the time of fp32 on a 2-core AMD EPYC
without AVX-512 (issue 21) and 2.2x on AVX-512 without BF16 (fp16: 28x on AVX-512 without
FP16); see docs/performance.md. On ARM the flags are ``bf16`` / ``sve_bf16``
and ``fp16_arith``.
On CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)``; fp16 always runs natively.

Everything is computed once per process (:func:`cpu_support` is cached).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable

import torch

__all__ = [
    "PRECISION_CHOICES",
    "CpuSupport",
    "cpu_support",
    "describe_cpu",
    "emulation_message",
    "is_native",
    "resolve_precision",
    "warn_if_emulated",
]

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
"""``auto`` = bf16 where the device runs it natively, else fp32 (never fp16: it can overflow)."""

# oneDNN's names for ONEDNN_MAX_CPU_ISA that still allow bf16 / fp16 instructions (x86).
_ONEDNN_FP16 = {"AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16"}
_ONEDNN_BF16 = {"AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10_1_512_AMX", *_ONEDNN_FP16}
_ONEDNN_ALL = {"", "ALL", "DEFAULT"}

SLOWDOWN = {
    ("bf16", False): "35x",  # no AVX-512: the 2-core AMD EPYC VM of issue 21 (29x on our Xeon masked to AVX2)
    ("bf16", True): "2.2x",  # AVX-512 without BF16: our Xeon with oneDNN capped at AVX512_CORE
    ("fp16", False): "26x",  # no AVX-512: our Xeon masked to AVX2
    ("fp16", True): "28x",  # AVX-512 without FP16: our Xeon with oneDNN capped at AVX512_CORE
}
"""(precision, CPU has AVX-512) -> HAT-S at LR 64x64 in autocast vs fp32, measured (sdpa, CPU seconds;
docs/performance.md, "CPU bf16 emulated")."""


@dataclasses.dataclass(frozen=True)
class CpuSupport:
    """What this process's CPU runs natively. ``capability``: ATen's (``AVX512``, ``AVX2``, ...);
    ``onednn_isa``: the ``ONEDNN_MAX_CPU_ISA`` cap ('' = none); ``flags``: the relevant CPU flags."""

    name: str
    architecture: str
    capability: str
    onednn_isa: str
    flags: tuple[str, ...]
    bf16: bool
    fp16: bool
    avx512: bool


def _support(caps: dict, capability: str, onednn_isa: str) -> CpuSupport:
    """Decide from torch.cpu.get_capabilities()'s mapping, ATen's capability and the oneDNN cap."""
    arch = str(caps.get("architecture", ""))
    names = ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16", "bf16", "sve_bf16", "fp16_arith")
    flags = tuple(n for n in names if caps.get(n) is True)
    isa = onednn_isa.strip().upper()
    if arch.startswith("x86"):
        aten_ok = capability.upper().startswith("AVX512")
        bf16 = aten_ok and ("avx512_bf16" in flags or "amx_bf16" in flags)
        bf16 = bf16 and (isa in _ONEDNN_ALL or isa in _ONEDNN_BF16)
        fp16 = aten_ok and ("avx512_fp16" in flags or "amx_fp16" in flags)
        fp16 = fp16 and (isa in _ONEDNN_ALL or isa in _ONEDNN_FP16)
        avx512 = bool(caps.get("avx512_bw")) and (isa in _ONEDNN_ALL or isa.startswith(("AVX512", "AVX10")))
    else:
        bf16 = "bf16" in flags or "sve_bf16" in flags
        fp16 = "fp16_arith" in flags
        avx512 = False
    return CpuSupport(str(caps.get("cpu_name", "")) or arch, arch, capability, isa, flags, bf16, fp16, avx512)


@functools.cache
def cpu_support() -> CpuSupport:
    """This process's CPU (cached: the flags and the environment caps do not change in a run)."""
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    return _support(dict(torch.cpu.get_capabilities()), torch.backends.cpu.get_cpu_capability(), onednn)


def is_native(precision: str, device: torch.device) -> bool:
    """Whether ``device`` runs ``precision`` (fp32, bf16, fp16) autocast natively; fp32 always."""
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported(including_emulation=False)
    support = cpu_support()
    return support.bf16 if precision == "bf16" else support.fp16 if precision == "fp16" else False


def resolve_precision(choice: str, device: torch.device) -> str:
    """``auto`` -> bf16 where ``device`` runs it natively, else fp32; any other choice unchanged."""
    if choice != "auto":
        return choice
    return "bf16" if is_native("bf16", device) else "fp32"


def describe_cpu(support: CpuSupport | None = None) -> str:
    """One line: the CPU, ATen's capability, the oneDNN cap and native bf16/fp16 (yes/no)."""
    s = support or cpu_support()
    flags = ", ".join(s.flags) or "none"
    return (
        f"CPU {s.name} ({s.architecture}), ATen capability {s.capability}, oneDNN max ISA "
        f"{s.onednn_isa or 'unrestricted'}; native bf16 {'yes' if s.bf16 else 'no'}, fp16 "
        f"{'yes' if s.fp16 else 'no'} (flags: {flags})"
    )


def emulation_message(precision: str, device: torch.device, fix: str) -> str | None:
    """The one-line warning when ``device`` emulates ``precision``, or None. ``fix``: how to run
    fp32 with this command (``--precision fp32``, ``train.amp: null``)."""
    if precision not in ("bf16", "fp16") or is_native(precision, device):
        return None
    if device.type == "cuda":
        return f"{precision} is emulated on this GPU ({torch.cuda.get_device_name(device)}): expect it slower than fp32; use {fix}"
    s = cpu_support()
    needs = "AVX512-BF16/AMX-BF16" if precision == "bf16" else "AVX512-FP16/AMX-FP16"
    if not s.architecture.startswith("x86"):
        needs = "bf16 instructions" if precision == "bf16" else "fp16 arithmetic"
        return f"this CPU ({s.name}) emulates {precision} (no {needs}): expect it much slower than fp32; use {fix}"
    slower = SLOWDOWN[precision, s.avx512]
    where = "with" if s.avx512 else "without"
    return (
        f"this CPU ({s.name}, ATen {s.capability}{', oneDNN ' + s.onednn_isa if s.onednn_isa else ''}) "
        f"emulates {precision} (no {needs} in use): expect ~{slower} slower than fp32 (HAT-S measured on "
        f"a CPU {where} AVX-512, docs/performance.md); use {fix}"
    )


_warned: set[tuple[str, str]] = set()


def warn_if_emulated(
    precision: str, device: torch.device, fix: str, warn: Callable[[str], object] | None = None
) -> str | None:
    """Say :func:`emulation_message` once per process and precision (``warn``: a logger's warning
    method; default ``logging.getLogger('ehat').warning``). Returns the message when said now."""
    message = emulation_message(precision, device, fix)
    if message is None or (precision, device.type) in _warned:
        return None
    _warned.add((precision, device.type))
    (warn or logging.getLogger("ehat").warning)(message)
    return message
