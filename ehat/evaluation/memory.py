"""Peak memory of an evaluation run: CUDA ``max_memory_allocated`` or the process's peak RSS on CPU.

The two are different quantities and are labelled as such wherever they are reported:

- CUDA (the challenge's number): ``torch.cuda.max_memory_allocated`` in MiB, reset at the start of
  each set (the challenge does not reset it, so its "valid" figure also includes model loading).
- CPU: the process's peak resident set size (``VmHWM``) in MiB. On Linux >= 4.0 it is reset per set
  by writing 5 to ``/proc/self/clear_refs``; elsewhere it is the peak since the process started
  (``ru_maxrss``) and :attr:`PeakMemory.resettable` is False.
"""

from __future__ import annotations

import os
import sys

import torch

MIB = 1024**2


def _read_vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_vmhwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_mib() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Tracks peak memory on ``device`` between :meth:`reset` and :meth:`peak_mib`."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.resettable = True

    @property
    def kind(self) -> str:
        """A label for the number: what was measured, and how."""
        if self.device.type == "cuda":
            return "CUDA max_memory_allocated"
        return "CPU peak RSS (per set)" if self.resettable else "CPU peak RSS (since process start)"

    def reset(self) -> None:
        """Start a new measurement window."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.resettable = os.path.exists("/proc/self/status") and _reset_vmhwm()

    def peak_mib(self) -> float:
        """Peak memory in MiB since :meth:`reset`."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MIB
        kib = _read_vmhwm_kib() if self.resettable else None
        return kib / 1024 if kib is not None else _ru_maxrss_mib()
